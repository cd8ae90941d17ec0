"""Base settings: safe embedded defaults (SQLite, a file-system Celery broker) unless the environment says otherwise."""

import secrets
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES

from generation.config import PROFILES

BASE_DIR = Path(__file__).resolve().parents[2]

env = environ.Env()

# Everything the platform writes by default (SQLite, broker folders, media, logs) lives under one folder.
VAR_DIR = Path(env.str("ALBUMGEN_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()


def _secret_key_from_var_dir() -> str:
    """A per-checkout random key, so that no secret is committed and the demo's sessions survive restarts."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _secret_key_from_var_dir()
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "labelstudio_site.core",
    "labelstudio_site.catalog",
    "labelstudio_site.studio",
    "labelstudio_site.training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "labelstudio_site.urls"
WSGI_APPLICATION = "labelstudio_site.wsgi.application"

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


def _database_from_env() -> dict:
    default_url = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    url = env.str("DATABASE_URL", default=default_url)
    expected = "expected e.g. postgres://user:pass@host:5432/name, or sqlite:////absolute/path.sqlite3"
    if urlsplit(url).scheme not in environ.Env.DB_SCHEMES:
        raise ImproperlyConfigured(f"DATABASE_URL {redact_url(url)!r} names no database Django knows; {expected}")
    try:
        config = environ.Env.db_url_config(url)
    except (KeyError, ValueError, ImproperlyConfigured) as exc:
        raise ImproperlyConfigured(
            f"DATABASE_URL {redact_url(url)!r} is not a database URL ({exc}); {expected}"
        ) from exc
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the web process read while the worker writes; the timeout rides out short write locks.
        # IMMEDIATE: a transaction takes the write lock when it begins, so two labelers asking for the next task at
        # once cannot both read a free slot and then both take it.
        config["OPTIONS"] = {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"}
    else:
        config["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
        config["CONN_HEALTH_CHECKS"] = True
        config.setdefault("OPTIONS", {})["connect_timeout"] = 5
    return config


def redact_url(url: str) -> str:
    """The URL with its password replaced, safe to print in errors and health reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


DATABASES = {"default": _database_from_env()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "landing"
LOGOUT_REDIRECT_URL = "landing"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
# WhiteNoise warns on every start when the folder is missing, even while it serves from the finders.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Without collectstatic (demo, tests) WhiteNoise serves straight from the apps' static folders.
WHITENOISE_USE_FINDERS = True
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))

REST_FRAMEWORK = {
    # Tokens for API clients (scripts, simulated labelers); sessions for the browser.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AlbumGen Studio API",
    "DESCRIPTION": "Labeling, generation rounds and training runs of AlbumGen Studio.",
    "VERSION": "v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -------------------------------------------------------------------------------------

BROKER_FOLDER = VAR_DIR / "broker"


def _broker_url_from_env() -> str:
    url = env.str("CELERY_BROKER_URL", default="filesystem://localhost//")
    scheme, sep, _ = url.partition("://")
    transport = scheme.split("+", 1)[0]
    if not sep or transport not in TRANSPORT_ALIASES:
        raise ImproperlyConfigured(
            f"CELERY_BROKER_URL {redact_url(url)!r} is not a broker URL Celery knows; "
            "expected e.g. redis://localhost:6379/0, or filesystem://localhost// for the embedded broker"
        )
    return url


CELERY_BROKER_URL = _broker_url_from_env()
CELERY_BROKER_IS_FILESYSTEM = CELERY_BROKER_URL.startswith("filesystem://")
if CELERY_BROKER_IS_FILESYSTEM:
    # Absolute folders: the transport's defaults are relative to whatever directory a process starts in.
    # A 0.05 s poll brings the per-task latency from ~1 s (kombu's default) to ~0.07 s (measured).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_FOLDER / "queue"),
        "data_folder_out": str(BROKER_FOLDER / "queue"),
        "processed_folder": str(BROKER_FOLDER / "processed"),
        "control_folder": str(BROKER_FOLDER / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
else:
    # Longer than the longest task, or Redis hands a running task to a second worker (it redelivers an unacknowledged
    # task this long after delivery).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=7200),
        "unacked_restore_interval": 5,
    }
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

CELERY_QUEUE_GPU = "gpu"
CELERY_QUEUE_TRAIN = "train"
CELERY_QUEUE_DEFAULT = "default"
CELERY_TASK_DEFAULT_QUEUE = CELERY_QUEUE_DEFAULT
CELERY_TASK_CREATE_MISSING_QUEUES = False
CELERY_TASK_QUEUES = [Queue(name) for name in (CELERY_QUEUE_GPU, CELERY_QUEUE_TRAIN, CELERY_QUEUE_DEFAULT)]
CELERY_TASK_ROUTES = {
    "studio.cover_generate_task": {"queue": CELERY_QUEUE_GPU},
    "studio.variants_reap_task": {"queue": CELERY_QUEUE_DEFAULT},
    "training.run_task": {"queue": CELERY_QUEUE_TRAIN},
    "training.runs_reap_task": {"queue": CELERY_QUEUE_DEFAULT},
    "training.preference_export_task": {"queue": CELERY_QUEUE_DEFAULT},
}
# Long GPU tasks: acknowledge only when finished, hand the task back if the worker dies, and take one at a time so
# that a busy worker does not sit on tasks another GPU could run.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Results live in our own rows (variants, runs), so Celery keeps none.
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True

HEALTHZ_PING_TIMEOUT = env.float("HEALTHZ_PING_TIMEOUT", default=1.0)

# --- Labeling -----------------------------------------------------------------------------------

# Music Arena's rule: a variant counts as heard after 5 s of listening, or at its end if shorter.
LABEL_MIN_LISTEN_S = env.float("LABEL_MIN_LISTEN_S", default=5.0)
# An assignment not submitted within this time returns its slot to the pool (rating 4 clips of 10 s takes minutes).
LABEL_ASSIGNMENT_TTL_S = env.float("LABEL_ASSIGNMENT_TTL_S", default=1800.0)

# --- Pipeline -----------------------------------------------------------------------------------

# The pipeline profile (generation.config.PROFILES): ``tiny`` random twins, ``small`` the models trained in-house in
# fixtures/small, ``full`` the pretrained checkpoints (GPU workers). Individual checkpoints: ALBUMGEN_EMBEDDER,
# ALBUMGEN_CAPTIONER, ALBUMGEN_MUSICGEN, read by generation.pipeline itself so that the CLI and the workers agree.
ALBUMGEN_PROFILE = env.str("ALBUMGEN_PROFILE", default="tiny")
if ALBUMGEN_PROFILE not in PROFILES:
    raise ImproperlyConfigured(f"ALBUMGEN_PROFILE is {ALBUMGEN_PROFILE!r}; expected one of {', '.join(PROFILES)}")
# One retrieval index per profile below this folder (an index is tied to the embedder that built it).
ALBUMGEN_INDEX_DIR = Path(env.str("ALBUMGEN_INDEX_DIR", default=str(VAR_DIR / "index")))
# A batch still "running" after this long lost its worker (killed, or its message lost with it): the reaper
# requeues it. Longer than the slowest batch: 4 x 10 s variants take ~12 s on an H200 and ~3 s on the tiny profile.
ALBUMGEN_STALE_AFTER_S = env.float("ALBUMGEN_STALE_AFTER_S", default=600.0)
ALBUMGEN_REAP_INTERVAL_S = env.float("ALBUMGEN_REAP_INTERVAL_S", default=60.0)
CELERY_BEAT_SCHEDULE = {
    "reap-stale-variants": {"task": "studio.variants_reap_task", "schedule": ALBUMGEN_REAP_INTERVAL_S},
    "reap-stale-training-runs": {"task": "training.runs_reap_task", "schedule": ALBUMGEN_REAP_INTERVAL_S},
}
# Trained adapters and reward models, dataset snapshots and run logs; a volume every worker and the web share.
ALBUMGEN_ARTIFACTS_DIR = Path(env.str("ALBUMGEN_ARTIFACTS_DIR", default=str(VAR_DIR / "artifacts")))
# A training run's worker reports at least every optimizer step; silence this long means it died. A tiny step
# takes ~0.5 s on CPU and a 1B captioner's GRPO step ~30 s on an H100, so 15 minutes leaves room for evaluation.
ALBUMGEN_RUN_STALE_AFTER_S = env.float("ALBUMGEN_RUN_STALE_AFTER_S", default=900.0)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
