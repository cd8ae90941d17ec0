import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from generation.config import PROFILES
from generation.loading import ModelLoadError
from labelstudio_site.catalog.services import catalog_index_build


class Command(BaseCommand):
    help = "Embed every catalog cover with the profile's embedder and save the FAISS retrieval index."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--profile",
            choices=PROFILES,
            default=settings.ALBUMGEN_PROFILE,
            help="embedder profile (default ALBUMGEN_PROFILE)",
        )
        parser.add_argument("--embedder", help="CLIP hub id or local path (overrides the profile)")
        parser.add_argument("--out", type=Path, help="index directory (default ALBUMGEN_INDEX_DIR/<profile>)")

    def handle(self, *args: object, **options: object) -> None:
        profile = str(options["profile"])
        out = options["out"] or settings.ALBUMGEN_INDEX_DIR / profile
        try:
            summary = catalog_index_build(profile=profile, embedder=options["embedder"], out_dir=out)  # type: ignore[arg-type]
        except (ValueError, ModelLoadError) as exc:
            self.stderr.write(f"build_index: {str(exc).rstrip('.')}.")
            sys.exit(2)
        self.stdout.write(
            f"indexed {summary['covers']} covers ({summary['genres']} genres) with {summary['embedder_id']} into {out}"
        )
