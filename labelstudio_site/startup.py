"""What every entry point (manage.py, WSGI, Celery) does first: load the settings or stop with one sentence."""

import os
import sys

from django.core.exceptions import ImproperlyConfigured

DEFAULT_SETTINGS_MODULE = "labelstudio_site.settings.base"


def require_valid_settings() -> None:
    """Import the settings module now; on a configuration error print one sentence and exit with status 2.

    Settings are otherwise loaded lazily, deep inside Django or Celery, where a bad variable would surface
    as a long traceback.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS_MODULE)
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - touching a setting imports the module
    except (ImproperlyConfigured, ValueError) as exc:
        message = str(exc).rstrip(".")
        print(f"AlbumGen Studio cannot start: {message}.", file=sys.stderr)  # noqa: T201
        sys.exit(2)
