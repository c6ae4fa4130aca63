"""Production: everything secret must come from the environment; HTTPS assumed at the proxy."""

from .base import *  # noqa: F403
from .env import env_bool, env_int

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("QD_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("QD_HSTS_SECONDS", 0)
SECURE_CONTENT_TYPE_NOSNIFF = True
