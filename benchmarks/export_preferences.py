"""Time and peak memory of a preference export at production scale (default: the 1,000,000 ratings of seed_labels).

Exports every round of the database DATABASE_URL names (seeded with ``python manage.py seed_labels`` first, e.g. by
benchmarks/labeling_scale.py) to TRL JSONL + Parquet + raw CSV, through the same functions as the admin page and
``export_preferences``, and prints the wall time of each phase and the process's peak resident memory. Target: under
60 s and under 1 GB for 1M ratings (Label Studio needed about 4 minutes for 50k records, its issue #5873).
The export's files go to a temporary artifact folder that is removed afterwards, and its row is deleted.

Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/albumgen_scale python benchmarks/export_preferences.py \\
           [--source ranking|ratings] [--aggregate none|mean]
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelstudio_site.settings.base")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("ranking", "ratings"), default="ranking")
    parser.add_argument("--aggregate", choices=("none", "mean"), default="none")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings

    from labelstudio_site.studio.models import Rating
    from labelstudio_site.training.exports import (
        PreferenceExportOptions,
        preference_export_build,
        preference_export_start,
    )

    ratings = Rating.objects.count()
    if not ratings:
        sys.exit("the database holds no ratings: seed it with python manage.py seed_labels")
    with tempfile.TemporaryDirectory(prefix="export-bench-") as artifacts:
        settings.ALBUMGEN_ARTIFACTS_DIR = Path(artifacts)
        before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start, cpu_start = time.perf_counter(), time.process_time()
        options = PreferenceExportOptions(source=args.source, aggregate=args.aggregate)
        export = preference_export_start(name="benchmark", options=options)
        export = preference_export_build(export=export)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sizes = {
            fmt: (Path(artifacts) / export.directory / name).stat().st_size / 1e6 for fmt, name in export.files.items()
        }
        export.delete()
    print(f"{ratings:,} ratings in the database; export {args.source}/{args.aggregate}: {export.counts}")
    print("files: " + ", ".join(f"{fmt} {mb:.0f} MB" for fmt, mb in sizes.items()))
    # CPU time of this process (all its threads) says how much of the wall time was ours on a busy machine.
    print(f"wall time {seconds:.1f} s (CPU {cpu_seconds:.1f} s); peak RSS {peak_mb:.0f} MB (before {before_mb:.0f} MB)")
    print(f"targets: < 60 s {'met' if seconds < 60 else 'MISSED'}, < 1024 MB {'met' if peak_mb < 1024 else 'MISSED'}")


if __name__ == "__main__":
    main()
