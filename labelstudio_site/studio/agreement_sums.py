"""Writes of the agreement's running sums: kept in the transaction that changes the answers they sum.

Recomputing agreement from a round's ratings costs seconds at a million ratings (it was 68 s in Python, and still
over 1 s as SQL aggregation on the 2-core box). So every change of answers goes through
:func:`agreement_sums_updating`: it locks the label tasks whose answers change, takes their contribution to the
sums out, lets the change happen, and puts their new contribution back. A task's contribution is computed from its
own ratings only (a few rows), and every sum is an integer, so the sums stay exact however often they change.
selectors.round_agreement turns them into the figures; :func:`agreement_sums_rebuild` recomputes a round from its
ratings (after a seed, or after rows were deleted behind the services' back, e.g. a labeler's account).
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import connection, models, transaction

from labelstudio_site.studio.models import (
    AgreementAxis,
    AgreementConsensus,
    AgreementLabeler,
    AgreementPairs,
    AgreementTasks,
    AssignmentStatus,
    LabelerExclusion,
    LabelTask,
    Rating,
)

AXES = (AgreementAxis.MUSICALITY, AgreementAxis.COMPATIBILITY)
# Task ids per query: SQLite allows 32,766 parameters, and 1,000 tasks are ~12,000 ratings at overlap 3.
TASK_CHUNK = 1_000
UPSERT_CHUNK = 2_000


@dataclass
class AgreementSums:
    """Signed contributions, keyed like the sums tables' unique constraints (round first)."""

    pairs: dict[tuple, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0]))
    tasks: dict[tuple, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    consensus: dict[tuple, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0] * 6))
    labelers: dict[tuple, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0]))

    def tables(self) -> Iterator[tuple[type[models.Model], tuple[str, ...], tuple[str, ...], dict[tuple, list[int]]]]:
        yield AgreementPairs, ("round_id", "axis", "raters", "low", "high"), ("pairs",), self.pairs
        yield AgreementTasks, ("round_id", "raters", "items"), ("tasks", "spread", "ratings"), self.tasks
        yield (
            AgreementConsensus,
            ("round_id", "labeler_id", "axis", "others"),
            ("ratings", "own_sum", "own_squares", "others_sum", "others_squares", "products"),
            self.consensus,
        )
        yield AgreementLabeler, ("round_id", "labeler_id"), ("submitted",), self.labelers


@dataclass(frozen=True)
class _Answer:
    task: int
    round: int
    labeler: int
    variant: int
    values: tuple[int, int]  # musicality, compatibility (AXES order)
    rank: int


def _answers(task_ids: list[int]) -> Iterator[list[_Answer]]:
    """The submitted answers of the tasks, one list per task (tasks without answers are left out)."""
    for start in range(0, len(task_ids), TASK_CHUNK):
        chunk = task_ids[start : start + TASK_CHUNK]
        rows = (
            Rating.objects.filter(assignment__task_id__in=chunk, assignment__status=AssignmentStatus.SUBMITTED)
            .order_by("assignment__task_id")
            .values_list(
                "assignment__task_id",
                "assignment__task__round_id",
                "assignment__labeler_id",
                "variant_id",
                "musicality",
                "compatibility",
                "rank",
            )
        )
        current: list[_Answer] = []
        for task, round_id, labeler, variant, musicality, compatibility, rank in rows.iterator(chunk_size=5_000):
            if current and current[0].task != task:
                yield current
                current = []
            current.append(_Answer(task, round_id, labeler, variant, (musicality, compatibility), rank))
        if current:
            yield current


def _add_task(sums: AgreementSums, answers: list[_Answer], excluded: set[int], sign: int) -> None:
    """Add (sign 1) or take out (sign -1) one task's contribution; mirrors selectors' reading of the sums."""
    round_id = answers[0].round
    for labeler in {a.labeler for a in answers}:  # one assignment per labeler and task
        sums.labelers[(round_id, labeler)][0] += sign
    by_variant: dict[int, list[_Answer]] = defaultdict(list)
    for answer in answers:
        by_variant[answer.variant].append(answer)
    counted_raters = {a.labeler for a in answers if a.labeler not in excluded}
    rank_sums = []
    for variant_answers in by_variant.values():
        counted = [a for a in variant_answers if a.labeler not in excluded]
        if counted:
            rank_sums.append(sum(a.rank for a in counted))
        m = len(counted)
        for i, axis in enumerate(AXES):
            values = [a.values[i] for a in counted]
            total = sum(values)
            if m >= 2:  # Krippendorff: a unit with one value is not pairable
                counts: dict[int, int] = defaultdict(int)
                for value in values:
                    counts[value] += 1
                for low in counts:
                    for high in counts:
                        if low <= high:
                            pairs = counts[low] * (counts[high] - 1 if low == high else counts[high])
                            if pairs:
                                sums.pairs[(round_id, axis, m, low, high)][0] += sign * pairs
            for answer in variant_answers:
                x = answer.values[i]
                is_counted = answer.labeler not in excluded
                # The others are the counted labelers but this one: an excluded labeler is measured against all.
                others, others_sum = (m - 1, total - x) if is_counted else (m, total)
                if others >= 1:
                    row = sums.consensus[(round_id, answer.labeler, axis, others)]
                    for j, value in enumerate((1, x, x * x, others_sum, others_sum * others_sum, x * others_sum)):
                        row[j] += sign * value
    if counted_raters:
        n = len(rank_sums)
        row = sums.tasks[(round_id, len(counted_raters), n)]
        row[0] += sign
        row[1] += sign * (n * sum(r * r for r in rank_sums) - sum(rank_sums) ** 2)
        row[2] += sign * sum(1 for a in answers if a.labeler not in excluded)


def agreement_sums_of(*, task_ids: Iterable[int], sign: int = 1) -> AgreementSums:
    """The tasks' contribution to the sums, from their submitted answers now."""
    sums = AgreementSums()
    excluded = set(LabelerExclusion.objects.values_list("labeler_id", flat=True))
    for answers in _answers(sorted(set(task_ids))):
        _add_task(sums, answers, excluded, sign)
    return sums


def _apply(delta: AgreementSums) -> None:
    """Add the delta to the tables: one upsert per table, keys sorted so that concurrent writers lock in one order."""
    quote = connection.ops.quote_name
    for model, keys, values, rows in delta.tables():
        changed = sorted((key, row) for key, row in rows.items() if any(row))
        if not changed:
            continue
        table = quote(model._meta.db_table)
        columns = ", ".join(quote(c) for c in (*keys, *values))
        row_placeholder = "(" + ", ".join(["%s"] * (len(keys) + len(values))) + ")"
        updates = ", ".join(f"{quote(v)} = {table}.{quote(v)} + excluded.{quote(v)}" for v in values)
        # In chunks that stay under SQLite's 32,766 parameters (10 per row at most), still in key order.
        for start in range(0, len(changed), UPSERT_CHUNK):
            chunk = changed[start : start + UPSERT_CHUNK]
            sql = (
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([row_placeholder] * len(chunk))} "
                f"ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO UPDATE SET {updates}"
            )
            with connection.cursor() as cursor:
                cursor.execute(sql, [value for key, row in chunk for value in (*key, *row)])


@contextmanager
def agreement_sums_updating(*, task_ids: Iterable[int]) -> Iterator[None]:
    """Keep the sums right while the body changes answers of these tasks (ratings, submissions, exclusions).

    Must run inside a transaction. The tasks are locked first (in id order) so that no other change of their answers
    interleaves between the two readings.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("agreement_sums_updating needs a transaction: the tasks' locks must last until commit")
    ids = sorted(set(task_ids))
    for start in range(0, len(ids), TASK_CHUNK):
        list(LabelTask.objects.select_for_update().filter(pk__in=ids[start : start + TASK_CHUNK]).order_by("pk"))
    delta = agreement_sums_of(task_ids=ids, sign=-1)
    yield
    after = agreement_sums_of(task_ids=ids)
    for (_, _, _, before_rows), (_, _, _, after_rows) in zip(delta.tables(), after.tables(), strict=True):
        for key, row in after_rows.items():
            before = before_rows[key]
            for j, value in enumerate(row):
                before[j] += value
    _apply(delta)


@transaction.atomic
def agreement_sums_rebuild(*, round_id: int) -> AgreementSums:
    """Recompute a round's sums from its submitted answers (the round's tasks are locked meanwhile)."""
    task_ids = list(LabelTask.objects.select_for_update().filter(round_id=round_id).values_list("pk", flat=True))
    for model in (AgreementPairs, AgreementTasks, AgreementConsensus, AgreementLabeler):
        model.objects.filter(round_id=round_id).delete()
    sums = agreement_sums_of(task_ids=task_ids)
    _apply(sums)
    return sums
