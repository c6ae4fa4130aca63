from django.contrib import admin

from apps.core.admin_sites import workspace_admin_site

from .models import Notification


@admin.register(Notification, site=workspace_admin_site)
class NotificationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["subject", "kind", "user", "created_at", "read_at"]
    list_filter = ["kind", ("read_at", admin.EmptyFieldListFilter)]
    search_fields = ["subject", "body", "user__username"]
    list_select_related = ["user"]
    readonly_fields = ["user", "kind", "subject", "body", "link", "created_at"]
