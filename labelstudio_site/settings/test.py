"""Test settings: the base settings with a fast password hasher and a private media and broker folder."""

from pathlib import Path

from .base import *  # noqa: F403
from .base import BROKER_FOLDER, CELERY_BROKER_IS_FILESYSTEM, CELERY_BROKER_TRANSPORT_OPTIONS, DATABASES, VAR_DIR, env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media-test")))

if CELERY_BROKER_IS_FILESYSTEM:
    # Tests start their own workers; keep their messages apart from a demo running from the same checkout.
    _test_broker = BROKER_FOLDER.with_name("broker-test")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,
        "data_folder_in": str(_test_broker / "queue"),
        "data_folder_out": str(_test_broker / "queue"),
        "processed_folder": str(_test_broker / "processed"),
        "control_folder": str(_test_broker / "control"),
    }

CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule-test")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not SQLite's default in-memory test database: tests start real worker processes that must see it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
