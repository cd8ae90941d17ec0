import sys

from django.core.management.base import BaseCommand

from labelstudio_site.core.selectors import broker_check, database_check


class Command(BaseCommand):
    help = "Check that the database and the Celery broker are reachable; exit 2 with one sentence if not."

    def handle(self, *args: object, **options: object) -> None:
        database = database_check()
        if not database.ok:
            self._stop(f"the database (DATABASE_URL) is unreachable: {database.detail}")
        broker = broker_check()
        if not broker.ok:
            self._stop(f"the broker (CELERY_BROKER_URL) is unreachable: {broker.detail}")
        self.stdout.write(f"preflight ok: database {database.detail}, broker {broker.detail}")

    def _stop(self, reason: str) -> None:
        self.stderr.write(f"AlbumGen Studio cannot start: {reason}")
        sys.exit(2)
