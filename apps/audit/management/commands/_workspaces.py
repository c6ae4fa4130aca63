"""Shared by the journal commands: which workspaces a command works on."""

from __future__ import annotations

from django.core.management.base import CommandError

from apps.tenants.models import Workspace


def selected_workspaces(slug: str | None) -> list[Workspace]:
    if slug:
        workspace = Workspace.objects.filter(slug=slug).first()
        if workspace is None:
            raise CommandError(f"No workspace {slug!r}.")
        return [workspace]
    # Every workspace: these commands are the operator's cross-workspace tools.
    return list(Workspace.objects.filter(is_active=True).order_by("slug"))
