"""AlbumGen Studio's Django project; importing it makes the Celery app the current app for ``@shared_task``."""

from labelstudio_site.celery import app as celery_app

__all__ = ["celery_app"]
