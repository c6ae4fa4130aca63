from typing import Any

api_urlpatterns: list[Any] = []
portal_urlpatterns: list[Any] = []
