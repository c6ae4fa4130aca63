"""Registry of per-workspace defaults, run inside a new workspace's schema at provisioning.

An app that needs rows in every workspace (a default retention policy, a default budget)
registers one function from its ``AppConfig.ready``; the provisioning service calls each in
the same transaction that creates the owner membership, so a failure rolls all of it back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Workspace

DefaultsFunc = Callable[["Workspace"], None]
_defaults: dict[str, DefaultsFunc] = {}


def register_defaults(name: str, func: DefaultsFunc) -> None:
    _defaults[name] = func


def registered_defaults() -> list[tuple[str, DefaultsFunc]]:
    return sorted(_defaults.items())
