"""Configuration errors surface as system checks with stable IDs (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register


@register()
def quarterdeck_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if len(settings.SECRET_KEY) < 32:
        messages.append(Error("QD_SECRET_KEY must be at least 32 characters.", id="quarterdeck.E001"))
    if len(settings.JOURNAL_HMAC_KEY) < 32:
        messages.append(Error("QD_JOURNAL_KEY must be at least 32 characters.", id="quarterdeck.E002"))
    ring = settings.VAULT_KEYS
    if settings.VAULT_CURRENT_KEY_VERSION not in ring:
        messages.append(
            Error(
                f"QD_VAULT_CURRENT_KEY_VERSION={settings.VAULT_CURRENT_KEY_VERSION} is not in QD_VAULT_KEYS.",
                id="quarterdeck.E003",
            )
        )
    if settings.VAULT_MIN_DECRYPT_VERSION > settings.VAULT_CURRENT_KEY_VERSION:
        messages.append(Error("QD_VAULT_MIN_DECRYPT_VERSION is above the current key version.", id="quarterdeck.E004"))
    if settings.SECRET_KEY.startswith("dev-only-") and not settings.DEBUG and not _is_test():
        messages.append(Warning("QD_SECRET_KEY is the development default; set a real one.", id="quarterdeck.W001"))
    return messages


def _is_test() -> bool:
    return str(getattr(settings, "SETTINGS_MODULE", "")).endswith(".test")
