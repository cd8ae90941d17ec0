"""Server time of the labeling and admin pages at production scale (default 100,000 label tasks, 1,000,000 ratings).

Seeds the database that DATABASE_URL names with ``seed_labels`` (unless it already holds a seed: then it is reused;
--seed adds one anyway), then times each page in-process with Django's test Client: the wall time around the
request, i.e. URL routing, middleware, session, view, queries and template, without a network or a web server.
Each page is asked once to warm caches, then --repeat times; the median and the slowest are printed. The writes
(next task, submit) run inside a transaction that is rolled back, so the seeded database stays as it was.

Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/albumgen_scale python benchmarks/labeling_scale.py \\
           [--seed] [--tasks 100000] [--ratings 1000000] [--repeat 7] [--explain]
"""

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelstudio_site.settings.base")

TARGET_MS = 300.0


class Rollback(Exception):
    """Raised inside a timed write so that its transaction is rolled back."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", action="store_true", help="seed even when the database already holds a seed")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per page (default 7)")
    parser.add_argument("--queries", action="store_true", help="also print each page's query count")
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection, reset_queries, transaction
    from django.db.models import Count
    from django.test import Client

    from labelstudio_site.studio.models import Assignment, AssignmentStatus, GenerationRound, Rating
    from labelstudio_site.studio.seeding import SEED_FINGERPRINT, SEED_LABELER_PREFIX, SeedError, labels_seed
    from labelstudio_site.studio.services import assignments_expire

    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    seeded = GenerationRound.objects.filter(config_fingerprint=SEED_FINGERPRINT)
    if args.seed or not seeded.exists():
        try:
            report = labels_seed(tasks=args.tasks, ratings=args.ratings, rounds=args.rounds, progress=print)
        except SeedError as exc:
            raise SystemExit(f"labeling_scale: {exc}.") from exc
        print(f"seeded {report.tasks} tasks, {report.ratings} ratings in {report.seconds:.1f} s")
    rounds = list(seeded.annotate(tasks=Count("label_tasks")).order_by("pk"))
    print(
        f"reusing: {len(rounds)} seeded rounds, {sum(r.tasks for r in rounds)} tasks, "
        f"{Rating.objects.count()} ratings, {Assignment.objects.count()} assignments"
    )
    # The oldest seeded round is fully labeled: the largest agreement; the newest holds the pending work.
    labeled, newest = rounds[0], rounds[-1]
    ratings_in = Rating.objects.filter(assignment__task__round=labeled).count()
    print(f"round {labeled.pk}: {labeled.tasks} tasks, {ratings_in} ratings; round {newest.pk} holds the pending work")

    # The seed's open assignments expire after the TTL. The first next-task expires them (one query pair each); do
    # it once here, or every rolled-back timing below would do it again.
    print(f"expired {assignments_expire()} open assignments past their deadline")
    admin, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True})
    staff = Client(HTTP_HOST="localhost")
    staff.force_login(admin)
    busy = Assignment.objects.filter(status=AssignmentStatus.ASSIGNED).values_list("labeler_id", flat=True)
    free = list(User.objects.filter(username__startswith=SEED_LABELER_PREFIX).exclude(pk__in=busy).order_by("username"))
    labelers = []
    for user in free[: args.repeat + 1]:
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        labelers.append(client)

    def timed(call: Callable[[int], object]) -> tuple[list[float], int]:
        times, queries = [], 0
        for i in range(args.repeat + 1):
            reset_queries()
            began = time.perf_counter()
            call(i)
            elapsed = (time.perf_counter() - began) * 1000
            if i:  # the first request warms caches and connections
                times.append(elapsed)
                queries = len(connection.queries)
        return times, queries

    def get(client: Client, url: str) -> Callable[[int], object]:
        def call(_: int) -> object:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            return response

        return call

    def next_task(i: int) -> object:
        try:
            with transaction.atomic():
                response = labelers[i].post("/api/label/next/")
                assert response.status_code == 200, response.status_code
                raise Rollback
        except Rollback:
            return None

    submit_times: list[float] = []

    def submit(i: int) -> object:
        try:
            with transaction.atomic():
                task = labelers[i].post("/api/label/next/").json()
                keys = [v["key"] for v in task["variants"]]
                body = {
                    "ratings": {k: {"musicality": 3, "compatibility": 4, "listened_s": 11.0} for k in keys},
                    "ranking": keys,
                }
                url = f"/api/label/assignments/{task['assignment_id']}/submit/"
                began = time.perf_counter()
                response = labelers[i].post(url, body, content_type="application/json")
                submit_times.append((time.perf_counter() - began) * 1000)
                assert response.status_code == 200, response.content
                raise Rollback
        except Rollback:
            return None

    detail, agreement = f"/studio/admin/rounds/{newest.pk}/", f"/studio/admin/rounds/{labeled.pk}/agreement/"
    pages: list[tuple[str, Callable[[int], object]]] = [
        ("labeler page  GET /label/", lambda i: get(labelers[i], "/label/")(i)),
        ("next task     POST /api/label/next/", next_task),
        ("progress      GET /api/label/progress/", lambda i: get(labelers[i], "/api/label/progress/")(i)),
        ("rounds list   GET /studio/admin/rounds/", get(staff, "/studio/admin/rounds/")),
        ("round detail  GET /studio/admin/rounds/R/", get(staff, detail)),
        ("  page 500    GET /studio/admin/rounds/R/?page=500", get(staff, f"{detail}?page=500")),
        ("progress.json GET /studio/admin/rounds/R/progress.json", get(staff, f"{detail}progress.json")),
        ("progress API  GET /api/rounds/R/", get(staff, f"/api/rounds/{newest.pk}/")),
        ("agreement     GET /studio/admin/rounds/R/agreement/", get(staff, agreement)),
        ("agreement API GET /api/rounds/R/agreement/", get(staff, f"/api/rounds/{labeled.pk}/agreement/")),
    ]
    settings_debug = connection.force_debug_cursor
    connection.force_debug_cursor = args.queries
    print(f"\nserver time per request, ms (median and slowest of {args.repeat}; target {TARGET_MS:.0f} ms)")
    slow = []
    try:
        for name, call in pages:
            times, queries = timed(call)
            median = statistics.median(times)
            note = f"  {queries} queries" if args.queries else ""
            print(f"{name:58s} {median:8.1f} {max(times):8.1f}{note}")
            if median > TARGET_MS:
                slow.append(name)
        submit_times.clear()
        timed(submit)
        times = submit_times[1:]
        median = statistics.median(times)
        print(f"{'submit        POST /api/label/assignments/A/submit/':58s} {median:8.1f} {max(times):8.1f}")
        if median > TARGET_MS:
            slow.append("submit")
    finally:
        connection.force_debug_cursor = settings_debug
    # An admin action, outside the 300 ms list: the agreement sums of every task the labeler answered change.
    excluded = User.objects.filter(username__startswith=SEED_LABELER_PREFIX).order_by("username")[3]
    answered = Assignment.objects.filter(labeler=excluded, status=AssignmentStatus.SUBMITTED).count()
    url = f"/studio/admin/rounds/{labeled.pk}/labelers/{excluded.pk}/exclusion/"

    def exclude(_: int) -> object:
        try:
            with transaction.atomic():
                assert staff.post(url, {"excluded": "true"}).status_code == 302
                raise Rollback
        except Rollback:
            return None

    times, _ = timed(exclude)
    label = f"exclude a labeler ({answered} answered tasks), POST"
    print(f"{label:58s} {statistics.median(times):8.1f} {max(times):8.1f}  (admin action, not in the target)")
    print("all pages under the target" if not slow else f"OVER THE TARGET: {', '.join(slow)}")
    raise SystemExit(1 if slow else 0)


if __name__ == "__main__":
    main()
