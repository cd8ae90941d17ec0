"""Test settings: the base settings with a fast password hasher and a private media and broker folder."""

from .base import *  # noqa: F403
from .base import BROKER_FOLDER, CELERY_BROKER_IS_FILESYSTEM, CELERY_BROKER_TRANSPORT_OPTIONS, VAR_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = VAR_DIR / "media-test"

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
