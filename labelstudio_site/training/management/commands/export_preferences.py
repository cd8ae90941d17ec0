import sys
from typing import NoReturn

from django.core.management.base import BaseCommand, CommandParser

from labelstudio_site.training.exports import (
    ExportError,
    PreferenceExportOptions,
    export_file,
    preference_export_build,
    preference_export_start,
)
from rlhf.pairs import AGGREGATES, AXES, SOURCES, TIES


class Command(BaseCommand):
    help = (
        "Export labelers' rankings and ratings as TRL preference pairs (JSONL + Parquet) and the raw ratings (CSV), "
        "as a stored snapshot with counts and a checksum."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default="", help="snapshot name (default: source and axis)")
        parser.add_argument("--rounds", type=int, nargs="*", default=[], metavar="ID", help="rounds (default all)")
        parser.add_argument("--source", choices=SOURCES, default="ranking", help="pairs from rankings or ratings")
        parser.add_argument("--axis", choices=AXES, default="combined", help="ratings axis (default combined)")
        parser.add_argument("--min-margin", type=float, default=1.0, help="smallest rating difference (default 1)")
        parser.add_argument("--ties", choices=TIES, default="drop", help="drop ties or keep both orders, margin 0")
        parser.add_argument("--aggregate", choices=AGGREGATES, default="none", help="pairs per labeler or of means")
        parser.add_argument("--exclude-labelers", type=int, nargs="*", default=[], metavar="ID")
        parser.add_argument("--min-gold-agreement", type=float, help="leave out labelers below this gold agreement")

    def handle(self, *args: object, **options) -> None:  # noqa: ANN001
        try:
            export_options = PreferenceExportOptions(
                source=options["source"],
                axis=options["axis"],
                min_margin=options["min_margin"],
                ties=options["ties"],
                aggregate=options["aggregate"],
                round_ids=options["rounds"],
                exclude_labeler_ids=options["exclude_labelers"],
                min_gold_agreement=options["min_gold_agreement"],
            )
            export = preference_export_start(name=options["name"], options=export_options)
            preference_export_build(export=export)
        except (ExportError, ValueError) as exc:
            self._stop(str(exc))
        counts = ", ".join(f"{key} {value}" for key, value in export.counts.items())
        self.stdout.write(f"export {export.pk} ({export.name}): {counts}; sha256 {export.checksum}")
        for fmt in export.files:
            self.stdout.write(f"  {fmt}: {export_file(export, fmt)}")

    def _stop(self, message: str) -> NoReturn:
        self.stderr.write(f"export_preferences: {message.rstrip('.')}.")
        sys.exit(2)
