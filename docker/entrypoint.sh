#!/bin/sh
# Every container checks its configuration and connections first, so that a bad DATABASE_URL or broker URL
# stops it with one sentence rather than a traceback from deep inside gunicorn or Celery.
set -e
python manage.py preflight
exec "$@"
