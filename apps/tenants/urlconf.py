"""Per-workspace URL configurations.

Browser routes live under ``/w/<slug>/``. Rather than passing a ``workspace`` argument to
every view (which the Django admin cannot accept), each workspace gets a generated urlconf
whose prefix is the literal ``w/<slug>/``; ``reverse()`` inside a workspace request then
yields that workspace's URLs with no extra arguments.
"""

from __future__ import annotations

import types
from typing import Any

from django.urls import NoReverseMatch, include, path, reverse

_cache: dict[str, types.ModuleType] = {}


def workspace_urlconf(slug: str) -> types.ModuleType:
    module = _cache.get(slug)
    if module is None:
        from config import urls as root

        module = types.ModuleType(f"config.urls_w_{slug.replace('-', '_')}")
        module.urlpatterns = [  # type: ignore[attr-defined]
            path(f"w/{slug}/", include("config.urls_workspace")),
            *root.urlpatterns,
        ]
        module.handler404 = root.handler404  # type: ignore[attr-defined]
        module.handler500 = root.handler500  # type: ignore[attr-defined]
        module.handler403 = root.handler403  # type: ignore[attr-defined]
        module.handler400 = root.handler400  # type: ignore[attr-defined]
        _cache[slug] = module
    return module


def workspace_reverse(slug: str, viewname: str, **kwargs: Any) -> str:
    """Reverse a workspace route from anywhere (e.g. a public page or an email)."""
    try:
        urlconf: Any = workspace_urlconf(slug)
        return reverse(viewname, urlconf=urlconf, kwargs=kwargs or None)
    except NoReverseMatch:
        raise
