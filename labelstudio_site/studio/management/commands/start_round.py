import sys
from typing import NoReturn

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from labelstudio_site.studio.models import Cover, GenerationRound
from labelstudio_site.studio.services import RoundError, covers_from_catalog, round_create
from labelstudio_site.training.models import ModelKind, ModelVersion
from labelstudio_site.training.selectors import captioner_version_latest
from labelstudio_site.training.services import model_version_base_ensure


class Command(BaseCommand):
    help = "Start a generation round: one GPU task per cover, all variants of a cover in one batch."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default="", help="round name (default: the date)")
        covers = parser.add_mutually_exclusive_group(required=True)
        covers.add_argument("--covers", type=int, nargs="+", metavar="ID", help="cover ids")
        covers.add_argument("--all-covers", action="store_true", help="every stored cover")
        covers.add_argument("--catalog-split", choices=("train", "test"), help="covers of the catalog's albums")
        parser.add_argument("--limit", type=int, help="at most this many covers")
        parser.add_argument("--variants", type=int, default=4, help="variants per cover (default 4)")
        parser.add_argument("--seed", type=int, help="round seed (default random)")
        parser.add_argument("--captioner-version", type=int, help="model version id (default: the newest captioner)")
        parser.add_argument(
            "--compare-version",
            type=int,
            metavar="ID",
            help="a second captioner version on the same base: a comparison round, --variants from each version",
        )
        parser.add_argument("--renderer", choices=("synth", "musicgen"), default="synth")
        parser.add_argument("--duration", type=float, default=10.0, help="seconds per variant (default 10)")
        parser.add_argument("--overlap", type=int, default=3, help="labelers per cover (default 3)")
        parser.add_argument("--gold-rate", type=float, default=0.0, help="share of gold tasks served (default 0)")
        parser.add_argument("--unless-any", action="store_true", help="do nothing if a round exists (the demo's start)")

    def handle(self, *args: object, **options) -> None:  # noqa: ANN001
        if options["unless_any"] and GenerationRound.objects.exists():
            self.stdout.write("a round exists already; none started")
            return
        if options["captioner_version"] is not None:
            version = self._captioner(options["captioner_version"])
        else:
            version = captioner_version_latest(profile=settings.ALBUMGEN_PROFILE) or model_version_base_ensure(
                profile=settings.ALBUMGEN_PROFILE
            )
        comparison = self._captioner(options["compare_version"]) if options["compare_version"] is not None else None
        if options["catalog_split"]:
            report = covers_from_catalog(split=options["catalog_split"], limit=options["limit"])
            covers = report.created + [cover for _, cover in report.duplicates]
        elif options["all_covers"]:
            covers = list(Cover.objects.order_by("pk")[: options["limit"]])
        else:
            covers = list(Cover.objects.filter(pk__in=options["covers"]).order_by("pk"))
            missing = sorted(set(options["covers"]) - {cover.pk for cover in covers})
            if missing:
                self._stop(f"there are no covers {', '.join(map(str, missing))}")
        try:
            generation_round = round_create(
                name=options["name"],
                covers=covers,
                captioner_version=version,
                comparison_version=comparison,
                variants_per_cover=options["variants"],
                seed=options["seed"],
                render_settings={"renderer": options["renderer"], "duration_s": options["duration"]},
                overlap_k=options["overlap"],
                gold_rate=options["gold_rate"],
            )
        except RoundError as exc:
            self._stop(str(exc))
        versions = f"{version}" if comparison is None else f"each of {version} and {comparison}"
        self.stdout.write(
            f"round {generation_round.pk} started: {len(covers)} covers x {generation_round.variants_per_cover} "
            f"variants with {versions}, seed {generation_round.seed}"
        )

    def _captioner(self, version_id: int) -> ModelVersion:
        version = ModelVersion.objects.filter(pk=version_id, kind=ModelKind.CAPTIONER).first()
        if version is None:
            self._stop(f"there is no captioner version {version_id}")
        return version

    def _stop(self, reason: str) -> NoReturn:
        self.stderr.write(f"start_round: {reason.rstrip('.')}.")
        sys.exit(2)
