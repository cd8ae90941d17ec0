"""Load test of the labeler API: N simulated labelers over HTTP, each asking for the next task and submitting it.

Seeds a round of ready label tasks in the database that DATABASE_URL names (use PostgreSQL: SQLite serialises
every write), starts gunicorn on it, runs the labelers with an async HTTP client, prints p50/p95/p99 of next-task
and submit, the error count, and checks that every accepted submission is stored exactly once. The seeded rows are
deleted afterwards.

Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/albumgen_bench python benchmarks/labeling_load.py \\
           [--labelers 50] [--covers 400] [--variants 4] [--overlap 3] [--duration 30] [--workers 4]
"""

import argparse
import asyncio
import logging
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

# The client logs every request at INFO; the figures are what matters here.
logging.getLogger("httpx").setLevel(logging.WARNING)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelstudio_site.settings.base")


def seed(*, labelers: int, covers: int, variants: int, overlap: int) -> tuple[int, list[str]]:
    """A ready round (variants marked rendered, with fake audio names: the API only hands out URLs)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from labelstudio_site.studio.models import Cover, GenerationRound, LabelTask, Variant, VariantStatus
    from labelstudio_site.studio.roles import LABELERS_GROUP
    from labelstudio_site.training.services import model_version_base_ensure

    version = model_version_base_ensure(profile="tiny")
    generation_round = GenerationRound.objects.create(
        name=f"load test {uuid.uuid4().hex[:6]}",
        captioner_version=version,
        variants_per_cover=variants,
        seed=1,
        render_settings={},
        config_fingerprint="load",
        overlap_k=overlap,
    )
    cover_rows = Cover.objects.bulk_create(
        Cover(
            image=f"covers/{uuid.uuid4().hex}.png", sha256=uuid.uuid4().hex * 2, source="upload", width=256, height=256
        )
        for _ in range(covers)
    )
    Variant.objects.bulk_create(
        Variant(
            round=generation_round,
            cover=cover,
            captioner_version=version,
            index=i,
            seed=1,
            status=VariantStatus.DONE,
            duration_s=10.0,
            peaks=[0.5] * 200,
            audio=f"audio/{uuid.uuid4().hex}.mp3",
        )
        for cover in cover_rows
        for i in range(variants)
    )
    LabelTask.objects.bulk_create(LabelTask(round=generation_round, cover=cover, ready=True) for cover in cover_rows)
    group, _ = Group.objects.get_or_create(name=LABELERS_GROUP)
    tokens = []
    for i in range(labelers):
        user = get_user_model().objects.create_user(f"load-{generation_round.pk}-{i}")
        user.groups.add(group)
        tokens.append(Token.objects.create(user=user).key)
    return generation_round.pk, tokens


def cleanup(round_id: int) -> None:
    from django.contrib.auth import get_user_model

    from labelstudio_site.studio.models import Cover, GenerationRound

    generation_round = GenerationRound.objects.get(pk=round_id)
    cover_ids = list(generation_round.covers.values_list("pk", flat=True)) or list(
        generation_round.label_tasks.values_list("cover_id", flat=True)
    )
    get_user_model().objects.filter(username__startswith=f"load-{round_id}-").delete()
    generation_round.delete()
    Cover.objects.filter(pk__in=cover_ids).delete()


async def labeler(
    client: httpx.AsyncClient, token: str, deadline: float, think: float, timings: dict, counts: dict
) -> None:
    headers = {"Authorization": f"Token {token}"}
    # People do not act in step: start at a random moment and wait a random 0.5-1.5x the think time.
    rng = random.Random(token)
    await asyncio.sleep(rng.uniform(0, think))
    while time.monotonic() < deadline:
        began = time.perf_counter()
        response = await client.post("/api/label/next/", headers=headers)
        timings["next"].append(time.perf_counter() - began)
        if response.status_code == 204:
            return
        if response.status_code != 200:
            counts["errors"] += 1
            continue
        task = response.json()
        await asyncio.sleep(think * rng.uniform(0.5, 1.5))
        keys = [variant["key"] for variant in task["variants"]]
        body = {
            "ratings": {
                key: {"musicality": 1 + i % 5, "compatibility": 5 - i % 5, "listened_s": 10}
                for i, key in enumerate(keys)
            },
            "ranking": keys,
        }
        began = time.perf_counter()
        response = await client.post(
            f"/api/label/assignments/{task['assignment_id']}/submit/", json=body, headers=headers
        )
        timings["submit"].append(time.perf_counter() - began)
        if response.status_code == 200:
            counts["submitted"] += 1
        else:
            counts["errors"] += 1
        await asyncio.sleep(think * rng.uniform(0.5, 1.5))


async def run_labelers(url: str, tokens: list[str], duration: float, think: float) -> tuple[dict, dict]:
    timings: dict[str, list[float]] = {"next": [], "submit": []}
    counts = {"submitted": 0, "errors": 0}
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        deadline = time.monotonic() + duration
        await asyncio.gather(*(labeler(client, token, deadline, think, timings, counts) for token in tokens))
    return timings, counts


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    q = statistics.quantiles(values, n=100)
    return f"p50 {q[49] * 1000:.1f} ms, p95 {q[94] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labelers", type=int, default=50)
    parser.add_argument("--covers", type=int, default=400)
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes (default 4)")
    parser.add_argument("--port", type=int, default=18777)
    # A labeler listens to every variant for 5 s or more before submitting: 1 s between calls already asks the
    # server for 20x the pace of real people. 0 measures raw throughput instead (latency is then queueing).
    parser.add_argument("--think", type=float, default=1.0, help="seconds a labeler waits between calls (default 1)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    from labelstudio_site.studio.models import Assignment, AssignmentStatus, Rating

    print(f"database: {connection.vendor}")
    round_id, tokens = seed(labelers=args.labelers, covers=args.covers, variants=args.variants, overlap=args.overlap)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "labelstudio_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            str(args.workers),
            "--no-control-socket",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
    )
    try:
        url = f"http://127.0.0.1:{args.port}"
        for _ in range(100):
            try:
                httpx.get(f"{url}/livez", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        timings, counts = asyncio.run(run_labelers(url, tokens, args.duration, args.think))
    finally:
        server.terminate()
        server.wait(timeout=30)
    submitted = Assignment.objects.filter(task__round_id=round_id, status=AssignmentStatus.SUBMITTED).count()
    ratings = Rating.objects.filter(assignment__task__round_id=round_id).count()
    requests = len(timings["next"]) + len(timings["submit"])
    print(
        f"{args.labelers} labelers, think {args.think:g} s, {args.workers} gunicorn workers, {args.duration:g} s: "
        f"{requests / args.duration:.0f} requests/s"
    )
    print(f"next-task: {percentiles(timings['next'])}")
    print(f"submit:    {percentiles(timings['submit'])}")
    print(
        f"accepted submissions {counts['submitted']}, errors {counts['errors']}; stored: {submitted} submitted "
        f"assignments, {ratings} ratings (expected {counts['submitted'] * args.variants})"
    )
    ok = submitted == counts["submitted"] and ratings == counts["submitted"] * args.variants and not counts["errors"]
    print("nothing lost or duplicated" if ok else "MISMATCH")
    cleanup(round_id)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
