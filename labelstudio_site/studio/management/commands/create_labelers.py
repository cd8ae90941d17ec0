import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from labelstudio_site.studio.services import LabelingError, labeler_create


class Command(BaseCommand):
    help = "Create labeler accounts (labelers group, API token) and print each username, password and token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("usernames", nargs="+")
        parser.add_argument("--password", help="one password for all (default: a random one each)")

    def handle(self, *args: object, **options: Any) -> None:
        for username in options["usernames"]:
            try:
                _, password, token = labeler_create(username=username, password=options["password"])
            except LabelingError as exc:
                self.stderr.write(f"create_labelers: {exc}.")
                sys.exit(2)
            self.stdout.write(f"{username}\tpassword {password}\ttoken {token}")
