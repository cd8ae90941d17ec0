"""WSGI entry point (gunicorn ``labelstudio_site.wsgi:application``)."""

from django.core.wsgi import get_wsgi_application

from labelstudio_site.startup import require_valid_settings

require_valid_settings()
application = get_wsgi_application()
