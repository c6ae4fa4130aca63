"""Error reports that never show a secret, even with DEBUG on.

Django hides ``sensitive_variables``/``sensitive_post_parameters`` only when DEBUG is off
("if DEBUG is True your site is not safe anyway"). A developer's debug page is still a page
someone may screenshot or paste into a ticket, so the vault keeps the filter active always.
Installed as ``DEFAULT_EXCEPTION_REPORTER_FILTER`` (config/settings/base.py, vault block).
"""

from __future__ import annotations

from typing import Any

from django.views.debug import SafeExceptionReporterFilter


class VaultExceptionReporterFilter(SafeExceptionReporterFilter):
    def is_active(self, request: Any) -> bool:
        return True
