from typing import Any

from django.urls import re_path

from .consumers import JournalTailConsumer

websocket_urlpatterns: list[Any] = [
    re_path(r"^ws/w/(?P<slug>[a-z][a-z0-9-]{1,39})/journal/$", JournalTailConsumer.as_asgi()),
]
