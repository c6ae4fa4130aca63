"""Two admin sites.

``admin.site`` at ``/admin/`` works on the public schema: workspaces, users, memberships,
API keys, global catalogs. ``workspace_admin_site`` is served under ``/w/<slug>/admin/``
with that workspace's schema active, for the data a workspace owns (journal, ledger,
crews...). Only super-admins use either; reaching another workspace's data is explicit in
the URL.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest


class WorkspaceAdminSite(admin.AdminSite):
    site_header = "Quarterdeck workspace administration"
    site_title = "Quarterdeck workspace admin"
    index_title = "Workspace data"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(getattr(request, "workspace", None) and user.is_active and user.is_superuser)

    def each_context(self, request: HttpRequest) -> dict[str, object]:
        context = super().each_context(request)
        workspace = getattr(request, "workspace", None)
        if workspace is not None:
            context["site_header"] = f"{self.site_header}: {workspace.name}"
        return context


workspace_admin_site = WorkspaceAdminSite(name="wsadmin")

admin.site.site_header = "Quarterdeck administration"
admin.site.site_title = "Quarterdeck admin"
admin.site.index_title = "Platform"
