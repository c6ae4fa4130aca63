"""Settings shared by every environment. Values that differ per deployment come from env.py."""

from __future__ import annotations

from pathlib import Path

from .env import env_bool, env_database, env_int, env_key_ring, env_list, env_redis_url, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env_str("QD_SECRET_KEY")
DEBUG = env_bool("QD_DEBUG", default=False)
ALLOWED_HOSTS = env_list("QD_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("QD_CSRF_TRUSTED_ORIGINS", ["http://127.0.0.1:8000", "http://localhost:8000"])

# --- tenancy -----------------------------------------------------------------------------
# Public schema: who exists and what they may do, plus global catalogs.
SHARED_APPS = [
    "django_tenants",  # first: it replaces `migrate` with a schema-aware one
    "daphne",  # before staticfiles: its runserver serves ASGI
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "apps.core",
    "apps.tenants",
    "apps.llm.catalog",
]
# Workspace schema: everything a workspace owns.
TENANT_APPS = [
    "apps.audit",
    "apps.llm",
    "apps.budgets",
    "apps.approvals",
    "apps.vault",
    "apps.memory",
    "apps.crews",
    "apps.notifications",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Workspace"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# Workspaces are provisioned by apps.tenants.services, which migrates the schema itself.
TENANT_CREATION_FAKES_MIGRATIONS = False
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.core.middleware.RequestContextMiddleware",
    "apps.core.middleware.UnstorableQueryMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.tenants.middleware.WorkspaceMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.tenants.context_processors.workspace",
                "apps.notifications.context_processors.unread_notifications",
            ],
        },
    },
]

# --- data ----------------------------------------------------------------------------------
DATABASES = {
    "default": {
        "ENGINE": "django_tenants.postgresql_backend",
        **env_database("DATABASE_URL"),
        "CONN_MAX_AGE": env_int("QD_DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
    }
}

# --- keys ------------------------------------------------------------------------------------
# HMAC key for the journal's hash chain and its signed checkpoints.
JOURNAL_HMAC_KEY = env_str("QD_JOURNAL_KEY")
# AES-256-GCM key ring for the vault: "1:<base64>,2:<base64>"; writes use the current version.
VAULT_KEYS = env_key_ring("QD_VAULT_KEYS")
VAULT_CURRENT_KEY_VERSION = env_int("QD_VAULT_CURRENT_KEY_VERSION", max(VAULT_KEYS))
VAULT_MIN_DECRYPT_VERSION = env_int("QD_VAULT_MIN_DECRYPT_VERSION", min(VAULT_KEYS))
# Where signed journal checkpoints are exported, outside the database.
JOURNAL_CHECKPOINT_DIR = Path(env_str("QD_JOURNAL_CHECKPOINT_DIR", str(BASE_DIR / "var" / "checkpoints")))

# --- auth ------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal-home"
LOGOUT_REDIRECT_URL = "login"

# --- i18n ------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- static ----------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- requests ----------------------------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("QD_MAX_REQUEST_BYTES", 1024 * 1024)

# --- REST API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.tenants.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["apps.core.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.KeysetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.core.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "apps.tenants.drf.WorkspaceAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Quarterdeck API",
    "DESCRIPTION": (
        "Governance for production AI agent crews. Authenticate with a workspace API key "
        "(`Authorization: Bearer qdk_...`); the key decides the workspace. Browser sessions "
        "name the workspace in the `X-Workspace` header. Every error has the shape "
        '`{"error": {"code", "message", "details"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Security schemes come from the authentication classes (apps.tenants.openapi for API keys).
    # Choice sets that share a field name get names of their own instead of hashed ones.
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "apps.core.permissions.Role",
        "SecretKindEnum": "apps.vault.models.SecretKind",
        "BudgetModeEnum": "apps.budgets.models.Mode",
        "ApprovalModeEnum": "apps.approvals.models.RequestMode",
        "ApprovalStatusEnum": "apps.approvals.models.RequestStatus",
        "MissionStatusEnum": "apps.crews.models.MissionStatus",
        "SourceTypeEnum": "apps.memory.models.SourceType",
    },
}

# --- email -----------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("QD_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("QD_EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("QD_EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("QD_DEFAULT_FROM_EMAIL", "quarterdeck@localhost")

# --- logging ---------------------------------------------------------------------------------
SILENCED_SYSTEM_CHECKS = env_list("QD_SILENCED_CHECKS")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("QD_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- llm -------------------------------------------------------------------------------------
# Provider keys come from here until the vault serves them (apps.llm.credentials is the seam).
# Never from an agent's environment.
LLM_ANTHROPIC_API_KEY = env_str("QD_ANTHROPIC_API_KEY", "")
LLM_ANTHROPIC_BASE_URL = env_str("QD_ANTHROPIC_BASE_URL", "")  # empty: the SDK's default
# OpenAI-compatible chat completions (Ollama, vLLM, llama.cpp server); a model's own endpoint wins.
LLM_OPENAI_COMPAT_BASE_URL = env_str("QD_OPENAI_COMPAT_BASE_URL", "http://127.0.0.1:11434/v1")
LLM_OPENAI_COMPAT_API_KEY = env_str("QD_OPENAI_COMPAT_API_KEY", "")
LLM_PROVIDER_TIMEOUT_SECONDS = env_int("QD_LLM_PROVIDER_TIMEOUT_SECONDS", 120)
LLM_CATALOG_CACHE_SECONDS = env_int("QD_LLM_CATALOG_CACHE_SECONDS", 30)
# Per-workspace default model and routing rules, cached per process (changes made through the
# services apply at once in that process, elsewhere within this many seconds).
LLM_ROUTING_CACHE_SECONDS = env_int("QD_LLM_ROUTING_CACHE_SECONDS", 5)
# Simulated latency of the offline provider (the demo feels more real with a little).
LLM_OFFLINE_LATENCY_MS = env_int("QD_LLM_OFFLINE_LATENCY_MS", 0)

# --- budgets ---------------------------------------------------------------------------------
BUDGETS_DEFAULT_WARN_PERCENT = env_int("QD_BUDGETS_DEFAULT_WARN_PERCENT", 80)
BUDGETS_DEFAULT_SOFT_CEILING_PERCENT = env_int("QD_BUDGETS_DEFAULT_SOFT_CEILING_PERCENT", 120)
# A reservation not settled after this long (its process died) is settled at its worst case.
BUDGETS_STALE_RESERVATION_SECONDS = env_int("QD_BUDGETS_STALE_RESERVATION_SECONDS", 3600)
# Budget transactions commit without waiting for the disk, so row locks are never held
# through an fsync. With DURABLE_RESERVATIONS a reservation is flushed (a lock-free barrier)
# before its call leaves. Settlements are not waited for: one lost in a database crash leaves
# its reservation open, and the stale sweep settles it at the worst case (never under-counts).
BUDGETS_DURABLE_RESERVATIONS = env_bool("QD_BUDGETS_DURABLE_RESERVATIONS", True)
BUDGETS_DURABLE_SETTLEMENTS = env_bool("QD_BUDGETS_DURABLE_SETTLEMENTS", False)
# Reservations (and closes) that a process's threads make while one of theirs is in flight go
# to the database together, one statement per batch, each decided as if it came alone.
BUDGETS_COMBINE_CONCURRENT_CALLS = env_bool("QD_BUDGETS_COMBINE_CONCURRENT_CALLS", True)
# --- crews ---------------------------------------------------------------------------------
# The crew runtime (apps.crews): where crews keep files, and how workers wake and claim.
CREWS_VOLUME_ROOT = Path(env_str("QD_CREWS_VOLUME_ROOT", str(BASE_DIR / "var" / "crews")))
CREWS_HTTP_TIMEOUT_S = env_int("QD_CREWS_HTTP_TIMEOUT_S", 20)
# Postgres LISTEN/NOTIFY channel that wakes workers (new missions, decided approvals).
CREWS_WAKE_CHANNEL = "quarterdeck_wake"
# Fallback sweep when no notification arrives (a lost NOTIFY, a dead worker's missions).
CREWS_SWEEP_SECONDS = env_int("QD_CREWS_SWEEP_SECONDS", 5)
# A claim's lease; renewed every sweep, so only a stuck worker loses its missions this way.
CREWS_LEASE_SECONDS = env_int("QD_CREWS_LEASE_SECONDS", 120)
CREWS_WORKER_CONCURRENCY = env_int("QD_CREWS_WORKER_CONCURRENCY", 4)
# Dotted paths of callables the worker runs on each sweep (approval timeouts, budget windows).
CREWS_WORKER_PERIODIC = env_list("QD_CREWS_WORKER_PERIODIC", [])

# --- memory ---
# django.contrib.postgres renders OpClass() in index expressions (memory's HNSW index over
# `embedding::vector(384)` and its JSONB index); it has no models or migrations.
if "django.contrib.postgres" not in SHARED_APPS:
    SHARED_APPS = [*SHARED_APPS, "django.contrib.postgres"]
    INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.postgres"]
# Which embedder new workspaces start with (a name in apps.memory.embedders' registry), and
# the OpenAI-compatible /v1/embeddings endpoint a workspace may switch to.
MEMORY_DEFAULT_EMBEDDER = env_str("QD_MEMORY_EMBEDDER", "local-minilm")
# Load the default embedder's model when the server or the worker starts, not on the first
# request that needs it (the local model takes seconds to load).
MEMORY_PRELOAD_EMBEDDER = env_bool("QD_MEMORY_PRELOAD_EMBEDDER", True)
MEMORY_OPENAI_BASE_URL = env_str("QD_MEMORY_OPENAI_BASE_URL", "")
MEMORY_OPENAI_MODEL = env_str("QD_MEMORY_OPENAI_MODEL", "text-embedding-3-small")
MEMORY_OPENAI_DIMENSIONS = env_int("QD_MEMORY_OPENAI_DIMENSIONS", 1536)
MEMORY_OPENAI_API_KEY = env_str("QD_MEMORY_OPENAI_API_KEY", "")
# HNSW search breadth; recall@10 >= 0.95 on the benchmark corpus at this value.
MEMORY_HNSW_EF_SEARCH = env_int("QD_MEMORY_HNSW_EF_SEARCH", 100)

# --- vault ---------------------------------------------------------------------------------
# Who judges L2/L3 credential requests: "gateway" (a model through apps.llm) or "rules".
# The judge model runs locally by default (the offline provider); name an OpenAI-compatible
# catalog model (Ollama, vLLM...) or any other here; empty lets the gateway's routing choose.
VAULT_JUDGE = env_str("QD_VAULT_JUDGE", "gateway")
VAULT_JUDGE_MODEL = env_str("QD_VAULT_JUDGE_MODEL", "offline-small")
# OAuth: refresh this long before expiry; attempts and backoff for transient failures.
VAULT_OAUTH_REFRESH_SKEW_SECONDS = env_int("QD_VAULT_OAUTH_REFRESH_SKEW_SECONDS", 60)
VAULT_OAUTH_ATTEMPTS = env_int("QD_VAULT_OAUTH_ATTEMPTS", 3)
VAULT_OAUTH_BACKOFF_MS = env_int("QD_VAULT_OAUTH_BACKOFF_MS", 500)
VAULT_OAUTH_MAX_BACKOFF_MS = env_int("QD_VAULT_OAUTH_MAX_BACKOFF_MS", 10_000)
VAULT_OAUTH_TIMEOUT_SECONDS = env_int("QD_VAULT_OAUTH_TIMEOUT_SECONDS", 10)
VAULT_ROTATE_BATCH_SIZE = env_int("QD_VAULT_ROTATE_BATCH_SIZE", 500)
# Error pages and reports hide variables marked sensitive even with DEBUG on.
DEFAULT_EXCEPTION_REPORTER_FILTER = "apps.vault.debug.VaultExceptionReporterFilter"
# --- end vault -----------------------------------------------------------------------------

# --- approvals ---------------------------------------------------------------------------
# Timeout of a request opened by a crew's autonomy default (no policy matched), in seconds.
APPROVALS_DEFAULT_TIMEOUT_SECONDS = env_int("QD_APPROVALS_DEFAULT_TIMEOUT_SECONDS", 3600)
# The crews worker applies approval timeouts on each sweep (apps.approvals.gate.sweep_timeouts);
# `manage.py approvals_sweep [--loop N]` does the same where no worker runs.
# --- end approvals -----------------------------------------------------------------------
