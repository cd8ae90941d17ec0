import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from labelstudio_site.studio.agreement_sums import agreement_sums_rebuild
from labelstudio_site.studio.models import GenerationRound


class Command(BaseCommand):
    help = (
        "Recompute the agreement sums of rounds from their submitted answers (after rows were deleted outside the "
        "services, e.g. a labeler's account). The services keep them right otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--round", type=int, nargs="+", dest="rounds", metavar="ID", help="round ids (default all)")

    def handle(self, *args: object, **options: Any) -> None:
        rounds = GenerationRound.objects.order_by("pk")
        if options["rounds"]:
            rounds = rounds.filter(pk__in=options["rounds"])
            missing = sorted(set(options["rounds"]) - set(rounds.values_list("pk", flat=True)))
            if missing:
                self.stderr.write(f"agreement_sums_rebuild: there is no round {', '.join(map(str, missing))}.")
                sys.exit(2)
        for round_id in rounds.values_list("pk", flat=True):
            sums = agreement_sums_rebuild(round_id=round_id)
            ratings = sum(row[2] for row in sums.tasks.values())
            self.stdout.write(f"round {round_id}: sums of {ratings} counted ratings rebuilt")
