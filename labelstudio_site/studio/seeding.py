"""Writes that fill a database with seeded labeling data at production scale, for benchmarks and load tests.

A seed is rounds of covers (one label task each, ``variants_per_task`` rendered variants per cover) labeled by a
pool of simulated labelers: submitted assignments with ratings and rankings drawn from a hidden quality per variant
and a noise level per labeler (a few rate backwards), some gold tasks, some skipped assignments, and pending work
(ready tasks with free slots, open assignments, covers still rendering or failed) so that next-task has something
to hand out. Rows go in with explicit ids through PostgreSQL's COPY (bulk_create elsewhere), in one transaction.

Seeded rows are marked (covers of source ``seed``, rounds with the fingerprint ``seed``, labelers named
``seed-labeler-NNNN``); a database holding anything else is refused unless forced, so a benchmark never pollutes
real data.
"""

import json
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.utils import timezone

from labelstudio_site.studio import limits
from labelstudio_site.studio.agreement_sums import agreement_sums_rebuild
from labelstudio_site.studio.models import (
    AgreementConsensus,
    AgreementLabeler,
    AgreementPairs,
    AgreementTasks,
    Assignment,
    AssignmentStatus,
    Cover,
    CoverSource,
    GenerationRound,
    LabelTask,
    Rating,
    RoundStatus,
    Variant,
    VariantStatus,
)
from labelstudio_site.studio.roles import LABELERS_GROUP
from labelstudio_site.training.services import model_version_base_ensure

# A real fingerprint is 16 hex digits of a config hash; "seed" can never be one.
SEED_FINGERPRINT = "seed"
SEED_LABELER_PREFIX = "seed-labeler-"
# Rows per COPY/bulk_create call: 20k rows of the widest table (variants, ~2 kB each) stay under ~40 MB of Python.
CHUNK_ROWS = 20_000
SEED_TABLES: tuple[type[models.Model], ...] = (
    Cover,
    GenerationRound,
    LabelTask,
    Variant,
    Assignment,
    Rating,
)


class SeedError(ValueError):
    """Seeding refused or impossible, with the reason in one sentence."""


@dataclass(frozen=True)
class SeedReport:
    rounds: list[int]
    covers: int
    variants: int
    tasks: int
    gold_tasks: int
    pending_tasks: int
    labelers: int
    assignments: int
    submitted: int
    open: int
    ratings: int
    seconds: float


def seed_refusal() -> str | None:
    """Why seeding would touch data that no seed made, or None when the database holds seeded data only.

    Staff accounts do not count (a fresh site has its superuser; the benchmark signs in as one).
    """
    covers = Cover.objects.exclude(source=CoverSource.SEED).count()
    rounds = GenerationRound.objects.exclude(config_fingerprint=SEED_FINGERPRINT).count()
    labelers = (
        User.objects.filter(groups__name=LABELERS_GROUP).exclude(username__startswith=SEED_LABELER_PREFIX).count()
    )
    if not (covers or rounds or labelers):
        return None
    held = ", ".join(
        f"{count} {noun}{'' if count == 1 else 's'}"
        for count, noun in ((covers, "cover"), (rounds, "round"), (labelers, "labeler"))
        if count
    )
    return f"the database holds data that no seed made ({held}); seeding it would mix benchmark rows into real ones"


@dataclass(frozen=True)
class _Plan:
    """Who labels what: per task, its round, state, labelers and counts; drawn up front with numpy."""

    round_of: np.ndarray  # task -> round index
    ready: np.ndarray  # task -> bool
    failed: np.ndarray  # task -> bool (one variant failed)
    rendering: np.ndarray  # task -> bool (variants queued or running)
    gold: np.ndarray  # task -> bool
    pending: np.ndarray  # task -> bool
    assignment_task: np.ndarray  # assignment -> task
    assignment_labeler: np.ndarray  # assignment -> labeler index
    assignment_status: np.ndarray  # assignment -> 0 submitted, 1 skipped, 2 open
    active_count: np.ndarray  # task -> open + submitted assignments


SUBMITTED, SKIPPED, OPEN = 0, 1, 2


def _plan(
    rng: np.random.Generator,
    *,
    tasks: int,
    submitted: int,
    rounds: int,
    overlap_k: int,
    labelers: int,
    gold_share: float,
    pending_share: float,
) -> _Plan:
    round_of = np.arange(tasks) * rounds // tasks
    newest = np.flatnonzero(round_of == rounds - 1)
    # Pending work sits in the newest round: covers still rendering, failed ones, and ready tasks with free slots.
    n_pending = min(max(1, round(tasks * pending_share)), len(newest)) if pending_share > 0 else 0
    pending = np.zeros(tasks, dtype=bool)
    pending_ids = rng.choice(newest, size=n_pending, replace=False)
    pending[pending_ids] = True
    failed = np.zeros(tasks, dtype=bool)
    rendering = np.zeros(tasks, dtype=bool)
    not_ready = min(n_pending, max(2, n_pending // 5))  # at least one failed cover and one still rendering
    failed[pending_ids[: not_ready // 2]] = True
    rendering[pending_ids[not_ready // 2 : not_ready]] = True
    ready = ~(failed | rendering)
    open_ids = pending_ids[not_ready : not_ready + min((n_pending - not_ready) // 3, labelers // 2)]

    labeled = np.flatnonzero(~pending)
    if submitted and not len(labeled):
        raise SeedError("there are no tasks left to label once the pending share is set aside")
    base, extra = divmod(submitted, len(labeled)) if len(labeled) else (0, 0)
    if base > overlap_k or (base == overlap_k and extra):
        capacity = len(labeled) * overlap_k
        raise SeedError(
            f"{submitted} submitted assignments do not fit {len(labeled)} labeled tasks at overlap k {overlap_k} "
            f"(at most {capacity}); seed more tasks or fewer ratings"
        )
    per_task = np.zeros(tasks, dtype=np.int64)
    per_task[labeled] = base
    per_task[rng.choice(labeled, size=extra, replace=False)] += 1
    gold = np.zeros(tasks, dtype=bool)
    with_answers = np.flatnonzero(per_task > 0)
    if gold_share > 0 and len(with_answers):
        gold[
            rng.choice(with_answers, size=max(1, min(len(with_answers), round(tasks * gold_share))), replace=False)
        ] = True
    # 1% of labeled tasks also carry an assignment that a labeler skipped.
    skipped = np.zeros(tasks, dtype=np.int64)
    skipped[rng.choice(labeled, size=len(labeled) // 100, replace=False)] = 1
    open_per_task = np.zeros(tasks, dtype=np.int64)
    open_per_task[open_ids] = 1
    slots = per_task + skipped
    if int(slots.max(initial=0)) + 1 > labelers:
        raise SeedError(f"{labelers} labelers are too few for overlap k {overlap_k}; seed at least {overlap_k + 2}")

    # Distinct labelers per task: consecutive ones from a random start. Open assignments go to the first
    # labelers of the pool, one each, and never to a labeler already on that task.
    task_of_slot = np.repeat(np.arange(tasks), slots)
    first_slot = np.repeat(np.cumsum(slots) - slots, slots)
    start = rng.integers(0, labelers, size=tasks)
    labeler_of_slot = (start[task_of_slot] + np.arange(len(task_of_slot)) - first_slot) % labelers
    status_of_slot = np.where(np.arange(len(task_of_slot)) - first_slot < per_task[task_of_slot], SUBMITTED, SKIPPED)
    open_tasks = np.flatnonzero(open_per_task)
    return _Plan(
        round_of=round_of,
        ready=ready,
        failed=failed,
        rendering=rendering,
        gold=gold,
        pending=pending,
        assignment_task=np.concatenate([task_of_slot, open_tasks]),
        assignment_labeler=np.concatenate([labeler_of_slot, np.arange(len(open_tasks))]),
        assignment_status=np.concatenate([status_of_slot, np.full(len(open_tasks), OPEN)]),
        active_count=per_task + open_per_task,
    )


class _Writer:
    """Inserts rows with explicit ids: COPY on PostgreSQL, bulk_create elsewhere (small seeds in tests)."""

    def __init__(self) -> None:
        self.postgres = connection.vendor == "postgresql"

    def write(
        self, model: type[models.Model], columns: Sequence[str], rows: Iterable[tuple], *, table: str | None = None
    ) -> int:
        """Rows are tuples in ``columns`` order (field attnames); JSON columns hold JSON text already.

        Args:
            table: on PostgreSQL, COPY into this (staging) table instead of the model's.
        """
        fields = {field.attname: field for field in model._meta.concrete_fields}
        json_columns = [i for i, name in enumerate(columns) if isinstance(fields[name], models.JSONField)]
        count = 0
        chunk: list[tuple] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= CHUNK_ROWS:
                count += self._flush(model, columns, json_columns, chunk, table)
                chunk = []
        if chunk:
            count += self._flush(model, columns, json_columns, chunk, table)
        return count

    def _flush(
        self, model: type[models.Model], columns: Sequence[str], json_columns: list[int], rows: list, table: str | None
    ) -> int:
        if self.postgres:
            quoted = ", ".join(connection.ops.quote_name(_column(model, name)) for name in columns)
            target = connection.ops.quote_name(table or model._meta.db_table)
            with connection.cursor() as cursor:
                raw = cursor.cursor  # psycopg's own cursor: Django's wrapper has no copy()
                with raw.copy(f"COPY {target} ({quoted}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            return len(rows)
        objects = []
        for row in rows:
            values = list(row)
            for i in json_columns:
                values[i] = None if values[i] is None else json.loads(values[i])
            objects.append(model(**dict(zip(columns, values, strict=True))))
        # Here auto_now_add gives created_at the insert time; seeds at scale run on PostgreSQL, where COPY keeps it.
        model._default_manager.bulk_create(objects, batch_size=500)
        return len(rows)


def _column(model: type[models.Model], attname: str) -> str:
    return next(str(field.column) for field in model._meta.concrete_fields if field.attname == attname)


def _next_ids() -> dict[type[models.Model], int]:
    return {
        model: (model._default_manager.aggregate(top=models.Max("pk"))["top"] or 0) + 1
        for model in (*SEED_TABLES, GenerationRound.covers.through)
    }


# Pools of realistic payloads: the pages show them, their sizes matter for scans, their variety does not.
_GENRES = ("jazz", "rock", "electronic", "folk", "hip hop", "classical", "pop", "ambient")


def _payload_pool(rng: np.random.Generator, size: int = 16) -> list[dict[str, str]]:
    pool = []
    for i in range(size):
        genre = _GENRES[i % len(_GENRES)]
        tempo = float(rng.integers(70, 160))
        features = {
            "genre": genre,
            "key": "CDEFGAB"[i % 7],
            "mode": "minor" if i % 2 else "major",
            "time_signature": 4,
            "tempo": tempo,
            "loudness": round(float(rng.uniform(-14, -4)), 1),
            "acousticness": round(float(rng.random()), 2),
            "danceability": round(float(rng.random()), 2),
            "energy": round(float(rng.random()), 2),
            "instrumentalness": round(float(rng.random()), 2),
            "liveness": round(float(rng.random()), 2),
            "speechiness": round(float(rng.random()), 2),
            "valence": round(float(rng.random()), 2),
        }
        features_json = json.dumps(features)
        pool.append(
            {
                "features": features_json,
                "raw_text": features_json,
                "prompt": f"{features['mode']}-key {genre} at {tempo:.0f} bpm, energy {features['energy']}",
                "peaks": json.dumps([round(float(p), 2) for p in rng.random(200)]),  # the player's 200 bins
                "neighbours": json.dumps(
                    [
                        # Shaped as generation.retrieve.Neighbour.to_dict(): exports rebuild the instruction from them.
                        {
                            "album_id": f"seed-{genre}",
                            "name": f"Seed album ({genre})",
                            "genre": genre,
                            "distance": 0.4 + j / 10,
                            "features": features,
                        }
                        for j in range(2)
                    ]
                ),
                "timings": json.dumps({"embed": 0.012, "retrieve": 0.001, "caption": 0.84, "render": 0.35}),
            }
        )
    return pool


def _seed_labelers(count: int) -> list[int]:
    """The seed's labeler accounts (existing ones are reused), without usable passwords; their ids in name order."""
    names = [f"{SEED_LABELER_PREFIX}{i:04d}" for i in range(count)]
    existing = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    unusable = make_password(None)
    User.objects.bulk_create(User(username=name, password=unusable) for name in names if name not in existing)
    ids = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    group, _ = Group.objects.get_or_create(name=LABELERS_GROUP)
    members = set(group.user_set.filter(pk__in=ids.values()).values_list("pk", flat=True))
    User.groups.through.objects.bulk_create(
        User.groups.through(user_id=pk, group_id=group.pk) for pk in ids.values() if pk not in members
    )
    return [ids[name] for name in names]


def _seed_catalog() -> None:
    """One catalog album per seeded genre: the genre vocabulary the seeded neighbours and outputs use."""
    from labelstudio_site.catalog.models import Album

    features = {
        "genre": "", "key": "C", "mode": "major", "time_signature": 4, "tempo": 100.0, "loudness": -8.0,
        "acousticness": 0.5, "danceability": 0.5, "energy": 0.5, "instrumentalness": 0.1, "liveness": 0.1,
        "speechiness": 0.1, "valence": 0.5,
    }  # fmt: skip
    for genre in _GENRES:
        Album.objects.get_or_create(
            musicoset_id=f"seed-{genre}",
            defaults={
                "name": f"Seed album ({genre})",
                "genre": genre,
                "split": "train",
                "features": {**features, "genre": genre},
            },
        )


def labels_seed(
    *,
    tasks: int = 100_000,
    ratings: int = 1_000_000,
    rounds: int = 2,
    variants_per_task: int = 4,
    overlap_k: int = 3,
    labelers: int = 200,
    gold_share: float = 0.002,
    gold_rate: float = 0.05,
    pending_share: float = 0.1,
    random_seed: int = 0,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SeedReport:
    """Seed label tasks and ratings (see the module's docstring for their structure).

    Args:
        tasks: label tasks (one cover each), split evenly over ``rounds``; default 100,000.
        ratings: ratings to store, ``variants_per_task`` per submitted assignment (rounded down); default 1,000,000.
        rounds: generation rounds, oldest first; the newest holds the pending work. Default 2.
        variants_per_task: variants per cover, 2-16; default 4.
        overlap_k: the rounds' overlap k; default 3.
        labelers: the labeler pool; default 200.
        gold_share: share of tasks that are gold (known ranking); default 0.002.
        gold_rate: the rounds' gold rate; default 0.05.
        pending_share: share of tasks left to label (ready with free slots, open, rendering or failed); default 0.1.
        random_seed: numpy seed of the simulated answers; default 0.
        force: seed even when the database holds data that no seed made.
        progress: called with one line per stage.

    Raises:
        SeedError: refused (real data and not forced) or sizes that do not fit together.
    """
    began = time.monotonic()
    say = progress or (lambda line: None)
    if tasks < 1 or not 1 <= rounds <= tasks:
        raise SeedError("seed at least one task and between 1 and that many rounds")
    if not 2 <= variants_per_task <= limits.VARIANTS_PER_TASK[1]:
        raise SeedError(f"variants per task must be between 2 and {limits.VARIANTS_PER_TASK[1]}")
    if overlap_k < 1 or ratings < 0:
        raise SeedError("overlap k must be at least 1 and ratings at least 0")
    rng = np.random.default_rng(random_seed)
    n_submitted = ratings // variants_per_task
    plan = _plan(
        rng,
        tasks=tasks,
        submitted=n_submitted,
        rounds=rounds,
        overlap_k=overlap_k,
        labelers=labelers,
        gold_share=gold_share,
        pending_share=pending_share,
    )
    writer = _Writer()
    with transaction.atomic():
        if writer.postgres:
            # Explicit ids below: keep other writers out of these tables until the seed commits (reads go on).
            tables = [m._meta.db_table for m in SEED_TABLES] + [GenerationRound.covers.through._meta.db_table]
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {', '.join(tables)} IN SHARE ROW EXCLUSIVE MODE")
        refusal = seed_refusal()
        if refusal is not None and not force:
            raise SeedError(f"refusing to seed: {refusal}. Pass --force to seed it anyway")
        labeler_ids = np.asarray(_seed_labelers(labelers), dtype=np.int64)
        _seed_catalog()
        version = model_version_base_ensure(profile=settings.ALBUMGEN_PROFILE)
        now = timezone.now()
        start_at = now - timedelta(days=7 * rounds)
        round_rows = _write_rounds(
            plan=plan,
            rounds=rounds,
            version_id=version.pk,
            variants_per_task=variants_per_task,
            overlap_k=overlap_k,
            gold_rate=gold_rate,
            start_at=start_at,
        )
        ids = _next_ids()
        say(f"rounds {', '.join(str(r.pk) for r in round_rows)}: writing {tasks} covers and tasks")
        quality = _hidden_quality(rng, tasks, variants_per_task)
        _write_covers_and_tasks(
            writer, plan=plan, ids=ids, round_rows=round_rows, variants=variants_per_task, quality=quality
        )
        say(f"writing {tasks * variants_per_task} variants")
        _write_variants(writer, plan=plan, ids=ids, round_rows=round_rows, version_id=version.pk, rng=rng)
        say(f"writing {len(plan.assignment_task)} assignments and {n_submitted * variants_per_task} ratings")
        counts = _write_answers(
            writer,
            plan=plan,
            ids=ids,
            round_rows=round_rows,
            labeler_ids=labeler_ids,
            variants=variants_per_task,
            quality=quality,
            rng=rng,
        )
        if writer.postgres:
            with connection.cursor() as cursor:
                for statement in connection.ops.sequence_reset_sql(no_style(), [*SEED_TABLES, User]):
                    cursor.execute(statement)
        say("committing (foreign keys are checked now)")
    _vacuum(writer, [*SEED_TABLES, GenerationRound.covers.through], say)
    for generation_round in round_rows:
        say(f"agreement sums of round {generation_round.pk}")
        agreement_sums_rebuild(round_id=generation_round.pk)
    _vacuum(writer, [AgreementPairs, AgreementTasks, AgreementConsensus, AgreementLabeler], say)
    return SeedReport(
        rounds=[r.pk for r in round_rows],
        covers=tasks,
        variants=tasks * variants_per_task,
        tasks=tasks,
        gold_tasks=int(plan.gold.sum()),
        pending_tasks=int(plan.pending.sum()),
        labelers=labelers,
        assignments=len(plan.assignment_task),
        submitted=counts["submitted"],
        open=counts["open"],
        ratings=counts["ratings"],
        seconds=time.monotonic() - began,
    )


def _vacuum(writer: _Writer, tables: list[type[models.Model]], say: Callable[[str], None]) -> None:
    """Statistics for the planner and visibility maps for index-only scans (PostgreSQL; VACUUM runs outside a
    transaction)."""
    if not writer.postgres:
        return
    # Inside a caller's transaction (a test's) VACUUM is refused; ANALYZE alone still gives the statistics.
    command = "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
    say(f"{command.lower()} {len(tables)} tables")
    with connection.cursor() as cursor:
        for model in tables:
            cursor.execute(f"{command} {connection.ops.quote_name(model._meta.db_table)}")


def _write_rounds(
    *,
    plan: _Plan,
    rounds: int,
    version_id: int,
    variants_per_task: int,
    overlap_k: int,
    gold_rate: float,
    start_at: datetime,
) -> list[GenerationRound]:
    rows = []
    for index in range(rounds):
        mine = plan.round_of == index
        status = (
            RoundStatus.RUNNING
            if plan.rendering[mine].any()
            else RoundStatus.FAILED
            if plan.failed[mine].any()
            else RoundStatus.DONE
        )
        created = start_at + timedelta(days=7 * index)
        generation_round = GenerationRound.objects.create(
            name=f"seed round {index + 1} of {rounds}",
            captioner_version_id=version_id,
            variants_per_cover=variants_per_task,
            seed=index + 1,
            render_settings={"renderer": "synth", "duration_s": 10.0, "seeded": True},
            config_fingerprint=SEED_FINGERPRINT,
            overlap_k=overlap_k,
            gold_rate=gold_rate,
            status=status,
        )
        finished = None if status == RoundStatus.RUNNING else created + timedelta(hours=6)
        GenerationRound.objects.filter(pk=generation_round.pk).update(created_at=created, finished_at=finished)
        generation_round.created_at, generation_round.finished_at = created, finished
        rows.append(generation_round)
    return rows


def _task_time(plan: _Plan, round_rows: list[GenerationRound], task: int) -> datetime:
    return round_rows[int(plan.round_of[task])].created_at


def _write_covers_and_tasks(
    writer: _Writer,
    *,
    plan: _Plan,
    ids: dict,
    round_rows: list[GenerationRound],
    variants: int,
    quality: np.ndarray,
) -> None:
    tasks = len(plan.round_of)
    cover0, task0, link0, variant0 = ids[Cover], ids[LabelTask], ids[GenerationRound.covers.through], ids[Variant]
    writer.write(
        Cover,
        ("id", "image", "sha256", "title", "artist", "split", "source", "width", "height", "created_at"),
        (
            (
                cover0 + t,
                f"covers/seed/{secrets.token_hex(16)}.png",
                secrets.token_hex(32),
                f"Seeded album {cover0 + t}",
                f"Seed artist {(cover0 + t) % 997}",
                "new",
                CoverSource.SEED,
                256,
                256,
                _task_time(plan, round_rows, t),
            )
            for t in range(tasks)
        ),
    )
    writer.write(
        GenerationRound.covers.through,
        ("id", "generationround_id", "cover_id"),
        ((link0 + t, round_rows[int(plan.round_of[t])].pk, cover0 + t) for t in range(tasks)),
    )
    # A gold task's known ranking: its variants ordered by the hidden quality the simulated labelers judge.
    gold_rows = {
        int(t): json.dumps([int(variant0 + t * variants + i) for i in np.argsort(-quality.sum(axis=2)[t])])
        for t in np.flatnonzero(plan.gold)
    }
    writer.write(
        LabelTask,
        ("id", "round_id", "cover_id", "ready", "active_count", "gold_ranking", "created_at"),
        (
            (
                task0 + t,
                round_rows[int(plan.round_of[t])].pk,
                cover0 + t,
                bool(plan.ready[t]),
                int(plan.active_count[t]),
                gold_rows.get(t),
                _task_time(plan, round_rows, t),
            )
            for t in range(tasks)
        ),
    )


def _hidden_quality(rng: np.random.Generator, tasks: int, variants: int) -> np.ndarray:
    """Per task and variant, the (musicality, compatibility) a careful labeler would give, on the 1-5 scale."""
    musicality = rng.uniform(1, 5, size=(tasks, variants))
    compatibility = np.clip(0.5 * musicality + 0.5 * rng.uniform(1, 5, size=(tasks, variants)), 1, 5)
    return np.stack([musicality, compatibility], axis=2)


def _write_variants(
    writer: _Writer,
    *,
    plan: _Plan,
    ids: dict,
    round_rows: list[GenerationRound],
    version_id: int,
    rng: np.random.Generator,
) -> None:
    tasks = len(plan.round_of)
    variants = round_rows[0].variants_per_cover
    cover0, variant0 = ids[Cover], ids[Variant]
    pool = _payload_pool(rng)
    failed_index = rng.integers(0, variants, size=tasks)
    columns = (
        "id",
        "round_id",
        "cover_id",
        "captioner_version_id",
        "index",
        "seed",
        "status",
        "attempts",
        "worker",
        "neighbours",
        "raw_text",
        "features",
        "prompt",
        "audio",
        "audio_mime",
        "peaks",
        "duration_s",
        "timings",
        "error",
        "started_at",
        "finished_at",
    )

    # On PostgreSQL the peaks (200 numbers) are parsed once per pool entry and copied as jsonb values: parsing them
    # row by row took ~70 s of a 230 s seed. Rows then carry the pool index, -1 for none.
    pooled_peaks = writer.postgres

    def peaks(index: int) -> int | str:
        if index < 0:
            return -1 if pooled_peaks else "[]"
        return index if pooled_peaks else pool[index]["peaks"]

    def rows() -> Iterable[tuple]:
        for t in range(tasks):
            generation_round = round_rows[int(plan.round_of[t])]
            started = generation_round.created_at + timedelta(seconds=t % 20_000)
            for i in range(variants):
                pool_index = (t + i) % len(pool)
                payload = pool[pool_index]
                if plan.rendering[t]:
                    status = VariantStatus.RUNNING if i < variants // 2 else VariantStatus.QUEUED
                    yield (
                        *(variant0 + t * variants + i, generation_round.pk, cover0 + t, version_id, i),
                        *(generation_round.seed, status, int(status == VariantStatus.RUNNING), ""),
                        *("[]", "", None, "", "", "", peaks(-1), None, "{}", ""),
                        *(started if status == VariantStatus.RUNNING else None, None),
                    )
                    continue
                failed = bool(plan.failed[t]) and i == failed_index[t]
                yield (
                    *(variant0 + t * variants + i, generation_round.pk, cover0 + t, version_id, i),
                    *(generation_round.seed, VariantStatus.FAILED if failed else VariantStatus.DONE, 1),
                    f"gpu-worker-{t % 4 + 1}",
                    *(payload["neighbours"], payload["raw_text"], payload["features"], payload["prompt"]),
                    "" if failed else f"audio/seed/{secrets.token_hex(16)}.mp3",
                    "" if failed else "audio/mpeg",
                    peaks(-1 if failed else pool_index),
                    None if failed else 10.0,
                    payload["timings"],
                    "the renderer ran out of GPU memory (CUDA OOM) after 3 attempts" if failed else "",
                    started,
                    started + timedelta(seconds=4),
                )

    if not pooled_peaks:
        writer.write(Variant, columns, rows())
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE seed_peaks (id integer PRIMARY KEY, peaks jsonb NOT NULL) ON COMMIT DROP")
        cursor.executemany("INSERT INTO seed_peaks VALUES (%s, %s)", [(i, p["peaks"]) for i, p in enumerate(pool)])
        cursor.execute(f"CREATE TEMP TABLE seed_variant (LIKE {quote(Variant._meta.db_table)}) ON COMMIT DROP")
        cursor.execute("ALTER TABLE seed_variant ALTER COLUMN peaks TYPE integer USING NULL")
    writer.write(Variant, columns, rows(), table="seed_variant")
    names = [_column(Variant, name) for name in columns]
    selected = ", ".join("COALESCE(p.peaks, '[]'::jsonb)" if n == "peaks" else f"s.{quote(n)}" for n in names)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(Variant._meta.db_table)} ({', '.join(quote(n) for n in names)}) "
            f"SELECT {selected} FROM seed_variant s LEFT JOIN seed_peaks p ON p.id = s.peaks"
        )
        cursor.execute("DROP TABLE seed_variant, seed_peaks")


def _write_answers(
    writer: _Writer,
    *,
    plan: _Plan,
    ids: dict,
    round_rows: list[GenerationRound],
    labeler_ids: np.ndarray,
    variants: int,
    quality: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, int]:
    task0, variant0, assignment0, rating0 = ids[LabelTask], ids[Variant], ids[Assignment], ids[Rating]
    n = len(plan.assignment_task)
    order = np.argsort(rng.random((n, variants)), axis=1)  # each assignment's own random order of its variants
    ttl = timedelta(seconds=settings.LABEL_ASSIGNMENT_TTL_S)
    now = timezone.now()
    statuses = {
        SUBMITTED: AssignmentStatus.SUBMITTED,
        SKIPPED: AssignmentStatus.SKIPPED,
        OPEN: AssignmentStatus.ASSIGNED,
    }

    def assignment_rows() -> Iterable[tuple]:
        for a in range(n):
            t = int(plan.assignment_task[a])
            status = int(plan.assignment_status[a])
            created = (
                now - timedelta(minutes=5)
                if status == OPEN
                else _task_time(plan, round_rows, t) + timedelta(hours=6, seconds=a % 86_400)
            )
            yield (
                assignment0 + a,
                task0 + t,
                int(labeler_ids[plan.assignment_labeler[a]]),
                statuses[status],
                json.dumps([int(variant0 + t * variants + i) for i in order[a]]),
                created + ttl,
                "cannot judge" if status == SKIPPED else "",
                created,
                created + timedelta(minutes=3) if status == SUBMITTED else None,
            )

    writer.write(
        Assignment,
        ("id", "task_id", "labeler_id", "status", "order", "expires_at", "skip_reason", "created_at", "submitted_at"),
        assignment_rows(),
    )

    # Answers: hidden quality plus the labeler's noise (sd 0.3-1.2), rounded to 1-5; 3% of labelers rate backwards.
    submitted = np.flatnonzero(plan.assignment_status == SUBMITTED)
    labeler_rng = np.random.default_rng(int(rng.integers(2**31)))
    noise_sd = labeler_rng.uniform(0.3, 1.2, size=len(labeler_ids))
    backwards = labeler_rng.random(len(labeler_ids)) < 0.03
    who = plan.assignment_labeler[submitted]
    task = plan.assignment_task[submitted]
    seen = quality[task] + rng.normal(size=(len(submitted), variants, 2)) * noise_sd[who][:, None, None]
    seen = np.where(backwards[who][:, None, None], 6 - seen, seen)
    scores = np.clip(np.rint(seen), 1, 5).astype(np.int64)
    rank = np.argsort(np.argsort(-seen.sum(axis=2), axis=1), axis=1) + 1
    listened = np.round(rng.uniform(5, 12, size=(len(submitted), variants)), 3)

    def rating_rows() -> Iterable[tuple]:
        for j, a in enumerate(submitted.tolist()):
            t = int(plan.assignment_task[a])
            for i in range(variants):
                yield (
                    rating0 + j * variants + i,
                    assignment0 + a,
                    variant0 + t * variants + i,
                    int(scores[j, i, 0]),
                    int(scores[j, i, 1]),
                    float(listened[j, i]),
                    int(rank[j, i]),
                )

    written = writer.write(
        Rating,
        ("id", "assignment_id", "variant_id", "musicality", "compatibility", "listened_s", "rank"),
        rating_rows(),
    )
    return {"submitted": len(submitted), "open": int((plan.assignment_status == OPEN).sum()), "ratings": written}
