import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from labelstudio_site.studio.services import covers_import_directory


class Command(BaseCommand):
    help = "Store every image in DIR as a cover; duplicates and bad images are reported, not stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)

    def handle(self, *args: object, **options: Path) -> None:
        try:
            report = covers_import_directory(directory=options["directory"])
        except FileNotFoundError as exc:
            self.stderr.write(f"import_covers: {exc}.")
            sys.exit(2)
        for name, cover in report.duplicates:
            self.stdout.write(f"{name}: duplicate of cover {cover.pk}, not stored again")
        for name, reason in report.rejected:
            self.stdout.write(f"{name}: rejected: {reason}")
        stored, duplicates, rejected = len(report.created), len(report.duplicates), len(report.rejected)
        self.stdout.write(f"covers: {stored} stored, {duplicates} duplicates, {rejected} rejected")
