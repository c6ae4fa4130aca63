"""WebSocket routes. Every route is under /ws/w/<slug>/, resolved by WorkspaceScopeMiddleware."""

from __future__ import annotations

from typing import Any

from apps.approvals import routing as approvals_routing
from apps.audit import routing as audit_routing
from apps.crews import routing as crews_routing

websocket_urlpatterns: list[Any] = [
    *audit_routing.websocket_urlpatterns,
    *approvals_routing.websocket_urlpatterns,
    *crews_routing.websocket_urlpatterns,
]
