"""Django settings, built once from the validated environment (signaling_project.config).

Never reads os.environ directly: everything comes from `load_config(read_environment(...))`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import dj_database_url

from signaling_project.config import Config, load_config, read_environment

BASE_DIR = Path(__file__).resolve().parent.parent

SIGNALING: Config = load_config(read_environment(BASE_DIR), data_dir=BASE_DIR)

SECRET_KEY = "django-" + SIGNALING.jwt_secret
DEBUG = False
ALLOWED_HOSTS = list(SIGNALING.allowed_hosts)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "rooms",
    "signaling",
]

MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, API docs, demo assets) before anything else touches the request.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "signaling_project.urls"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "signaling_project.asgi.application"

# Persistent connections: lifecycle writes and room loads run off the event loop many times a
# second under load, and opening a connection for each was most of their cost.
DATABASES = {
    "default": dj_database_url.parse(
        SIGNALING.database_url or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=600,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # Several threads write lifecycle rows: wait for the lock rather than fail.
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            # WAL: readers do not block the writer; NORMAL sync is durable at checkpoints.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

if SIGNALING.redis_url:
    from signaling.redis_options import redis_connection_options

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [redis_connection_options(SIGNALING.redis_url)],
                "prefix": SIGNALING.redis_prefix + ":layer:",
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves /static/: hashed, compressed files after `collectstatic`, else the app
# finders' files under plain names (signaling_project.storage). Development mode always
# serves the source tree, re-read on each request, whatever an earlier collectstatic left.
STATIC_MANIFEST = STATIC_ROOT / "staticfiles.json"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if SIGNALING.dev_mode
        else "signaling_project.storage.StaticStorage"
    },
}
WHITENOISE_USE_FINDERS = SIGNALING.dev_mode or not STATIC_MANIFEST.exists()
WHITENOISE_AUTOREFRESH = SIGNALING.dev_mode
# Before the first collectstatic there is no STATIC_ROOT: the finders serve, nothing is wrong.
warnings.filterwarnings("ignore", message=f"No directory at: {STATIC_ROOT}", category=UserWarning)
# The demo page (/demo/) loads the official socket.io client that npm installs from
# package.json: /static/socket.io-client/socket.io.min.js, never a CDN or a copy.
STATICFILES_DIRS = [("socket.io-client", BASE_DIR / "node_modules" / "socket.io-client" / "dist")]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CORS_ALLOW_ALL_ORIGINS = SIGNALING.cors_allow_all
CORS_ALLOWED_ORIGINS = [] if SIGNALING.cors_allow_all else list(SIGNALING.cors_origins)
CORS_ALLOW_CREDENTIALS = not SIGNALING.cors_allow_all
CORS_URLS_REGEX = r"^/(api|socket\.io)/.*$"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rooms.authentication.AgentTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rooms.parsers.SafeJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "rooms.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SIMPLE_JWT = {
    # Agent-link tokens (docs/protocol.md): HS256, `agentId`, `iat`, `exp` only.
    "ALGORITHM": "HS256",
    "SIGNING_KEY": SIGNALING.jwt_secret,
    "VERIFYING_KEY": None,
    "LEEWAY": SIGNALING.jwt_leeway_s,
    "USER_ID_CLAIM": "agentId",
    "USER_ID_FIELD": "agent_id",
    "TOKEN_TYPE_CLAIM": None,
    "JTI_CLAIM": None,
    "UPDATE_LAST_LOGIN": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "WebRTC signaling server",
    "DESCRIPTION": "REST control plane for voice/video rooms; the wire contract is docs/protocol.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        # LOG_FORMAT=json: one JSON object per line (python-json-logger), for log shippers.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": ["asctime", "levelname", "name", "message"],
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "filters": {"context": {"()": "signaling.log_context.ContextFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": SIGNALING.log_format, "filters": ["context"]}
    },
    "root": {"handlers": ["console"], "level": SIGNALING.log_level.upper()},
    "loggers": {
        "django": {"level": max(logging.INFO, logging.getLevelName(SIGNALING.log_level.upper()))},
        "daphne": {"level": "WARNING"},
    },
}
