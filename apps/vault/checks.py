"""Vault configuration errors as system checks (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register


@register()
def vault_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from .judges import judge_names

    messages: list[CheckMessage] = []
    judge = getattr(settings, "VAULT_JUDGE", "gateway")
    if judge not in judge_names():
        messages.append(
            Error(
                f"QD_VAULT_JUDGE={judge!r} names no registered judge (known: {', '.join(judge_names())}).",
                id="vault.E001",
            )
        )
    keys = list(settings.VAULT_KEYS.values())
    if len(set(keys)) != len(keys):
        messages.append(Error("QD_VAULT_KEYS uses the same key under two versions.", id="vault.E002"))
    if getattr(settings, "VAULT_OAUTH_ATTEMPTS", 3) < 1:
        messages.append(Error("QD_VAULT_OAUTH_ATTEMPTS must be at least 1.", id="vault.E003"))
    if judge == "rules" and not settings.DEBUG and not str(settings.SETTINGS_MODULE).endswith(".test"):
        messages.append(
            Warning(
                "The vault judges L2/L3 requests with fixed rules; set QD_VAULT_JUDGE=gateway to use a model.",
                id="vault.W002",
            )
        )
    return messages
