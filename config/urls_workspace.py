"""Routes under /w/<slug>/ (mounted per workspace by apps.tenants.urlconf).

Each app's pages live in its own namespace: reverse("crews:mission-detail", ...).
"""

from django.urls import include, path

from apps.approvals import urls as approvals_urls
from apps.audit import urls as audit_urls
from apps.budgets import urls as budgets_urls
from apps.core.admin_sites import workspace_admin_site
from apps.crews import urls as crews_urls
from apps.llm import urls as llm_urls
from apps.memory import urls as memory_urls
from apps.notifications import urls as notifications_urls
from apps.tenants import views as tenant_views
from apps.vault import urls as vault_urls

portal_patterns = [
    path("", tenant_views.workspace_home, name="home"),
]

urlpatterns = [
    path("admin/", workspace_admin_site.urls),
    path("", include((portal_patterns, "portal"))),
    path("", include((audit_urls.portal_urlpatterns, "audit"))),
    path("", include((llm_urls.portal_urlpatterns, "llm"))),
    path("", include((budgets_urls.portal_urlpatterns, "budgets"))),
    path("", include((approvals_urls.portal_urlpatterns, "approvals"))),
    path("", include((vault_urls.portal_urlpatterns, "vault"))),
    path("", include((memory_urls.portal_urlpatterns, "memory"))),
    path("", include((crews_urls.portal_urlpatterns, "crews"))),
    path("", include((notifications_urls.portal_urlpatterns, "notifications"))),
]
