from typing import Any

from django.urls import path

from . import apis, views

api_urlpatterns: list[Any] = [
    path("notifications/", apis.NotificationListApi.as_view(), name="notification-list"),
    path("notifications/read/", apis.NotificationMarkReadApi.as_view(), name="notification-read"),
]
portal_urlpatterns: list[Any] = [
    path("notifications/", views.notification_list, name="list"),
    path("notifications/read/", views.notification_mark_all_read, name="read-all"),
]
