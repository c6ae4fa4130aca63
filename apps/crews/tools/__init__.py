"""The tool registry: every module in this package (except ``base``) is one tool.

Adding a tool is adding one module; see ``base`` for what a module declares. Tools whose
``available()`` is false (memory tools before the memory app is installed) are not offered.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading

from .base import ToolContext, ToolError, ToolSpec, spec_from_module

__all__ = ["ToolContext", "ToolError", "ToolSpec", "all_tools", "get_tool", "register", "tool_names"]

_registry: dict[str, ToolSpec] = {}
_lock = threading.Lock()
_discovered = False
_NOT_TOOLS = frozenset({"base"})


def register(spec: ToolSpec) -> ToolSpec:
    existing = _registry.get(spec.name)
    if existing is not None and existing is not spec and existing.run is not spec.run:
        raise ValueError(f"tool {spec.name!r} is registered twice")
    _registry[spec.name] = spec
    return spec


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    with _lock:
        if _discovered:
            return
        for info in pkgutil.iter_modules(__path__):
            if info.name.startswith("_") or info.name in _NOT_TOOLS:
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            register(spec_from_module(module))
        _discovered = True


def get_tool(name: str) -> ToolSpec | None:
    """The tool called ``name`` if it exists and is available here, else None."""
    _discover()
    spec = _registry.get(name)
    if spec is None or not spec.available():
        return None
    return spec


def all_tools() -> list[ToolSpec]:
    _discover()
    return [spec for _, spec in sorted(_registry.items()) if spec.available()]


def tool_names() -> list[str]:
    return [spec.name for spec in all_tools()]
