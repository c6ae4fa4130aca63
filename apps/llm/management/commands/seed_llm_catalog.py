"""``manage.py seed_llm_catalog``: add missing seed models, prices, fallbacks and the global
default (idempotent; never overwrites a super-admin's changes)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.llm.catalog.services import catalog_seed


class Command(BaseCommand):
    help = "Seed the model catalog (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        created = catalog_seed()
        self.stdout.write(", ".join(f"{k}: {v}" for k, v in created.items()))
