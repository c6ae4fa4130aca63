from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.core.errors import NotFound

from .models import ApiKey
from .services import API_KEY_PREFIX, api_key_authenticate


class ApiKeyPrincipalUser:
    """Stands in for ``request.user`` when a request is authenticated by an API key."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.username = f"apikey:{api_key.prefix}"

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer qdk_<prefix>_<secret>``; the key decides the workspace."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not token.strip().startswith(API_KEY_PREFIX):
            return None
        try:
            api_key = api_key_authenticate(token=token.strip())
        except NotFound as exc:
            raise exceptions.AuthenticationFailed(exc.message) from exc
        return ApiKeyPrincipalUser(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="quarterdeck"'
