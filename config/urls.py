from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from apps.approvals import urls as approvals_urls
from apps.audit import urls as audit_urls
from apps.budgets import urls as budgets_urls
from apps.crews import urls as crews_urls
from apps.llm import urls as llm_urls
from apps.memory import urls as memory_urls
from apps.notifications import urls as notifications_urls
from apps.tenants import urls as tenants_urls
from apps.tenants import views as tenant_views
from apps.vault import urls as vault_urls

api_patterns = [
    *tenants_urls.api_urlpatterns,
    *audit_urls.api_urlpatterns,
    *llm_urls.api_urlpatterns,
    *budgets_urls.api_urlpatterns,
    *approvals_urls.api_urlpatterns,
    *vault_urls.api_urlpatterns,
    *memory_urls.api_urlpatterns,
    *crews_urls.api_urlpatterns,
    *notifications_urls.api_urlpatterns,
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include(api_patterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("", tenant_views.workspace_chooser, name="portal-home"),
]

handler400 = "apps.core.views.bad_request"
handler403 = "apps.core.views.forbidden"
handler404 = "apps.core.views.not_found"
handler500 = "apps.core.views.server_error"
