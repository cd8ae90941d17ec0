import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from labelstudio_site.studio.seeding import SeedError, labels_seed


class Command(BaseCommand):
    help = (
        "Seed label tasks, labelers, assignments and ratings at scale (default 100,000 tasks and 1,000,000 ratings) "
        "for benchmarks. Refuses a database that holds data no seed made, unless --force."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tasks", type=int, default=100_000, help="label tasks, one cover each (default 100000)")
        parser.add_argument("--ratings", type=int, default=1_000_000, help="ratings (default 1000000)")
        parser.add_argument("--rounds", type=int, default=2, help="rounds the tasks are split over (default 2)")
        parser.add_argument("--variants", type=int, default=4, help="variants per task (default 4)")
        parser.add_argument("--overlap", type=int, default=3, help="overlap k of the rounds (default 3)")
        parser.add_argument("--labelers", type=int, default=200, help="size of the labeler pool (default 200)")
        parser.add_argument("--random-seed", type=int, default=0, help="seed of the simulated answers (default 0)")
        parser.add_argument("--force", action="store_true", help="seed even a database that holds other data")

    def handle(self, *args: object, **options: Any) -> None:
        try:
            report = labels_seed(
                tasks=options["tasks"],
                ratings=options["ratings"],
                rounds=options["rounds"],
                variants_per_task=options["variants"],
                overlap_k=options["overlap"],
                labelers=options["labelers"],
                random_seed=options["random_seed"],
                force=options["force"],
                progress=lambda line: self.stdout.write(f"seed_labels: {line}"),
            )
        except SeedError as exc:
            self.stderr.write(f"seed_labels: {str(exc).rstrip('.')}.")
            sys.exit(2)
        self.stdout.write(
            f"seeded rounds {', '.join(map(str, report.rounds))}: {report.tasks} tasks ({report.gold_tasks} gold, "
            f"{report.pending_tasks} pending), {report.variants} variants, {report.labelers} labelers, "
            f"{report.assignments} assignments ({report.submitted} submitted, {report.open} open), "
            f"{report.ratings} ratings in {report.seconds:.1f} s"
        )
