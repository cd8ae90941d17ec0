"""Reads of the studio: covers, rounds and their progress for the admin pages."""

import math
from collections import defaultdict
from collections.abc import Iterable
from fractions import Fraction
from itertools import groupby
from operator import itemgetter
from typing import Any

import numpy as np
from django.db.models import Count, Max, Min, Q, QuerySet

from labelstudio_site.studio.agreement import krippendorff_alpha_from_coincidences
from labelstudio_site.studio.agreement_sums import AXES as AGREEMENT_AXES
from labelstudio_site.studio.comparison import (
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE,
    ComparedAnswer,
    VariantScores,
    version_win_rates,
)
from labelstudio_site.studio.models import (
    AgreementAxis,
    AgreementConsensus,
    AgreementLabeler,
    AgreementPairs,
    AgreementTasks,
    Assignment,
    AssignmentStatus,
    Cover,
    CoverEmbedding,
    GenerationRound,
    LabelerExclusion,
    LabelTask,
    Rating,
    RoundStatus,
    Variant,
    VariantStatus,
)
from labelstudio_site.studio.services import variant_keys
from labelstudio_site.training.models import ModelKind, ModelVersion

_STATUS_COUNTS = {
    "queued": Count("pk", filter=Q(status=VariantStatus.QUEUED)),
    "running": Count("pk", filter=Q(status=VariantStatus.RUNNING)),
    "done": Count("pk", filter=Q(status=VariantStatus.DONE)),
    "failed": Count("pk", filter=Q(status=VariantStatus.FAILED)),
    "total": Count("pk"),
}
FINISHED_ROUND_STATUSES = (RoundStatus.DONE, RoundStatus.FAILED)


def cover_list() -> QuerySet[Cover]:
    """Every stored cover, newest first."""
    return Cover.objects.order_by("-created_at", "-pk")


def cover_embeddings_get(*, cover_ids: Iterable[int], embedder_id: str) -> dict[int, np.ndarray]:
    """The stored float32 embeddings of the covers by one embedder; covers without one are absent.

    Pass ids a chunk at a time for many covers (512 float32 each: 100k covers hold 200 MB of vectors).
    """
    rows = CoverEmbedding.objects.filter(cover__pk__any_of=set(cover_ids), embedder_id=embedder_id).values_list(
        "cover_id", "vector"
    )
    return {cover_id: np.frombuffer(vector, dtype="<f4").astype(np.float32) for cover_id, vector in rows}


def cover_embedder_ids(*, cover_ids: Iterable[int]) -> dict[int, list[str]]:
    """The embedders that stored an embedding of each cover, sorted; covers without one are absent."""
    found: dict[int, list[str]] = defaultdict(list)
    rows = (
        CoverEmbedding.objects.filter(cover__pk__any_of=set(cover_ids))
        .order_by("cover_id", "embedder_id")
        .values_list("cover_id", "embedder_id")
    )
    for cover_id, embedder_id in rows.iterator(chunk_size=10_000):
        found[cover_id].append(embedder_id)
    return dict(found)


def captioner_version_list() -> QuerySet[ModelVersion]:
    """Captioner versions a round may use, newest first."""
    return ModelVersion.objects.filter(kind=ModelKind.CAPTIONER).order_by("-created_at", "-pk")


def round_list() -> QuerySet[GenerationRound]:
    """Rounds, newest first, with their captioner versions (counts: round_variant_counts, for a page of them)."""
    return GenerationRound.objects.select_related("captioner_version", "comparison_version").order_by(
        "-created_at", "-pk"
    )


def round_variant_counts(*, round_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per round, its variants by status (``queued``, ``running``, ``done``, ``failed``) and ``total``.

    One GROUP BY over the (round, status) index: an index-only scan, ~0.1 us per variant.
    """
    counts: dict[int, dict[str, int]] = {
        round_id: {status: 0 for status in (*VariantStatus.values, "total")} for round_id in round_ids
    }
    rows = (
        Variant.objects.filter(round_id__in=round_ids)
        .values_list("round_id", "status")
        .annotate(n=Count("*"))  # COUNT(*), not COUNT(id): the index holds no id
        .order_by()
    )
    for round_id, status, n in rows:
        counts[round_id][status] += n
        counts[round_id]["total"] += n
    return counts


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def round_progress(*, generation_round: GenerationRound) -> dict[str, Any]:
    """Counts of the round's variants by status, percentages and throughput.

    Returns:
        ``status``, ``finished`` (done or failed), ``total``, ``queued``, ``running``, ``done``, ``failed``,
        ``percent_done``, ``percent_failed``, ``percent_finished`` (done + failed) and ``per_minute``: variants done
        per minute between the first start (the round's creation when no start is recorded) and the last finish;
        None until one is done.
    """
    variants = Variant.objects.filter(round_id=generation_round.pk)
    counts = round_variant_counts(round_ids=[generation_round.pk])[generation_round.pk]
    # Both ends come from the (round, status, started_at / finished_at) indexes: two index probes.
    span = variants.filter(status=VariantStatus.DONE).aggregate(
        first_start=Min("started_at"), last_finish=Max("finished_at")
    )
    per_minute = None
    if counts["done"] and span["last_finish"] is not None:
        start = span["first_start"] or generation_round.created_at
        seconds = (span["last_finish"] - start).total_seconds()
        # A batch stored within a second of its start would divide by ~0; a second is the clock's useful grain.
        per_minute = round(counts["done"] * 60.0 / max(seconds, 1.0), 2)
    # The round row's status lags its variants by one transaction at most; read it fresh.
    status = GenerationRound.objects.values_list("status", flat=True).get(pk=generation_round.pk)
    return {
        "round": generation_round.pk,
        "status": status,
        "finished": status in FINISHED_ROUND_STATUSES,
        **counts,
        "percent_done": _percent(counts["done"], counts["total"]),
        "percent_failed": _percent(counts["failed"], counts["total"]),
        "percent_finished": _percent(counts["done"] + counts["failed"], counts["total"]),
        "per_minute": per_minute,
    }


def round_cover_ids(*, generation_round: GenerationRound) -> QuerySet[Any]:
    """The ids of the round's covers, in cover order (a page of them is one page of the round's page)."""
    return (
        GenerationRound.covers.through.objects.filter(generationround_id=generation_round.pk)
        .order_by("cover_id")
        .values_list("cover_id", flat=True)
    )


def round_cover_progress(*, generation_round: GenerationRound, cover_ids: list[int]) -> list[dict[str, Any]]:
    """One row per given cover of the round: the cover and its variant counts, in cover order."""
    rows = (
        Variant.objects.filter(round_id=generation_round.pk, cover_id__in=cover_ids)
        .values("cover_id")
        .annotate(**_STATUS_COUNTS)
        .order_by("cover_id")
    )
    covers = Cover.objects.in_bulk([row["cover_id"] for row in rows])
    return [{**row, "cover": covers[row["cover_id"]]} for row in rows]


def round_variants(*, generation_round: GenerationRound, cover_ids: list[int] | None = None) -> QuerySet[Variant]:
    """The round's variants (of the given covers only, if given) with their covers and captioner versions, by cover,
    version, then index."""
    variants = Variant.objects.filter(round_id=generation_round.pk)
    if cover_ids is not None:
        variants = variants.filter(cover_id__in=cover_ids)
    return variants.select_related("cover", "captioner_version").order_by("cover_id", "captioner_version_id", "index")


def round_failures(*, generation_round: GenerationRound) -> QuerySet[Variant]:
    """The round's failed variants, with their reasons, covers and versions (fetched for the page's variants only)."""
    return (
        Variant.objects.filter(round_id=generation_round.pk, status=VariantStatus.FAILED)
        .prefetch_related("cover", "captioner_version")
        .order_by("cover_id", "captioner_version_id", "index")
    )


def round_comparison(*, generation_round: GenerationRound) -> dict[str, Any] | None:
    """The newer captioner version's win rate over the older one in a comparison round; None for other rounds.

    Every submitted answer of the round counts (gold tasks too), except those of labelers excluded on the agreement
    page. See studio.comparison for the definition and the cluster bootstrap.

    Returns:
        ``newer`` and ``older`` (``id``, ``name``; newer = created later), ``answers`` (counted answers),
        ``confidence``, ``resamples``, and per axis (``ranking``, ``musicality``, ``compatibility``) ``win_rate``,
        ``ci_low``, ``ci_high`` (None until an answer compares them), ``covers`` and ``comparisons``.
    """
    if generation_round.comparison_version_id is None:
        return None
    older, newer = sorted(
        ModelVersion.objects.filter(
            pk__in=[generation_round.captioner_version_id, generation_round.comparison_version_id]
        ),
        key=lambda version: (version.created_at, version.pk),
    )
    rows = (
        Rating.objects.filter(
            assignment__task__round_id=generation_round.pk, assignment__status=AssignmentStatus.SUBMITTED
        )
        .exclude(assignment__labeler_id__in=LabelerExclusion.objects.values("labeler_id"))
        .order_by("assignment_id")
        .values_list(
            "assignment_id",
            "assignment__task__cover_id",
            "variant__captioner_version_id",
            "rank",
            "musicality",
            "compatibility",
        )
    )
    answers = []
    for _, group in groupby(rows.iterator(chunk_size=5000), key=itemgetter(0)):
        ratings = list(group)
        scores: dict[int, list[VariantScores]] = {newer.pk: [], older.pk: []}
        for _, _, version_id, rank, musicality, compatibility in ratings:
            scores[version_id].append(VariantScores(rank=rank, musicality=musicality, compatibility=compatibility))
        answers.append(ComparedAnswer(cover=ratings[0][1], newer=scores[newer.pk], older=scores[older.pk]))
    rates = version_win_rates(answers)
    return {
        "newer": {"id": newer.pk, "name": newer.name},
        "older": {"id": older.pk, "name": older.name},
        "answers": len(answers),
        "confidence": CONFIDENCE,
        "resamples": BOOTSTRAP_RESAMPLES,
        **{
            axis: {
                "win_rate": rate.rate,
                "ci_low": rate.low,
                "ci_high": rate.high,
                "covers": rate.covers,
                "comparisons": rate.comparisons,
            }
            for axis, rate in rates.items()
        },
    }


def assignment_view(*, assignment: Assignment, min_listen_s: float) -> dict[str, Any]:
    """What a labeler's page shows of an assignment: the cover and the variants by blind key, nothing else."""
    variants = Variant.objects.in_bulk(assignment.order)
    cover = Cover.objects.get(pk=assignment.task.cover_id)
    return {
        "assignment_id": assignment.pk,
        "status": assignment.status,
        "expires_at": assignment.expires_at,
        "cover_url": cover.image.url,
        "min_listen_s": min_listen_s,
        "variants": [
            {
                "key": key,
                "audio_url": variants[variant_id].audio.url,
                "duration_s": variants[variant_id].duration_s,
                "peaks": variants[variant_id].peaks,
            }
            for key, variant_id in zip(variant_keys(len(assignment.order)), assignment.order, strict=True)
        ],
    }


def labeler_progress(*, labeler: Any) -> dict[str, int]:
    """The labeler's submitted, skipped and open assignments."""
    counts = Assignment.objects.filter(labeler=labeler).aggregate(
        submitted=Count("pk", filter=Q(status=AssignmentStatus.SUBMITTED)),
        skipped=Count("pk", filter=Q(status=AssignmentStatus.SKIPPED)),
        open=Count("pk", filter=Q(status=AssignmentStatus.ASSIGNED)),
    )
    return {name: int(value) for name, value in counts.items()}


def round_agreement(*, generation_round: GenerationRound) -> dict[str, Any]:
    """Agreement of the round's submitted answers, excluded labelers left out of the consensus.

    Read from the round's running sums (studio.agreement_sums), a few hundred rows whatever the number of ratings;
    the figures equal those of studio.agreement's functions on the answers themselves (tests/studio prove it).

    Returns:
        ``musicality_alpha`` and ``compatibility_alpha`` (Krippendorff's alpha, ordinal, one unit per variant),
        ``ranking_w`` (Kendall's W per cover, averaged over covers), ``ratings`` (count), and ``labelers``: per
        labeler the submitted assignments, the correlation of their ratings with the mean of the other labelers'
        on the same variants (per axis), and whether they are excluded. Values are None where undefined (fewer
        than two labelers on any variant, or no variation).
    """
    round_id = generation_round.pk
    values = np.arange(1, 6, dtype=np.float64)
    coincidences: dict[str, np.ndarray] = {axis: np.zeros((5, 5)) for axis in AGREEMENT_AXES}
    for axis, raters, low, high, pairs in AgreementPairs.objects.filter(round_id=round_id, raters__gte=2).values_list(
        "axis", "raters", "low", "high", "pairs"
    ):
        # o[c, k] sums n_c * n_k / (m_u - 1) over units; the sums hold the numerators grouped by m_u.
        coincidences[axis][low - 1, high - 1] += pairs / (raters - 1)
        if low != high:
            coincidences[axis][high - 1, low - 1] += pairs / (raters - 1)
    alphas = {
        axis: krippendorff_alpha_from_coincidences(values, o, level="ordinal") for axis, o in coincidences.items()
    }
    ratings, w_sum, w_tasks = 0, 0.0, 0
    for m, n, tasks, spread, counted in AgreementTasks.objects.filter(round_id=round_id).values_list(
        "raters", "items", "tasks", "spread", "ratings"
    ):
        ratings += counted
        if m >= 2 and n >= 2 and tasks:
            # Kendall's W of one task is 12 S / (m^2 (n^3 - n)) (no ties: ranks are a permutation); spread = sum n S.
            w_sum += 12.0 * spread / (n * m * m * (n**3 - n))
            w_tasks += tasks
    excluded = set(LabelerExclusion.objects.values_list("labeler_id", flat=True))
    consensus: dict[tuple[int, str], list[tuple[int, ...]]] = defaultdict(list)
    for labeler_id, axis, *sums in AgreementConsensus.objects.filter(round_id=round_id, ratings__gt=0).values_list(
        "labeler_id", "axis", "others", "ratings", "own_sum", "own_squares", "others_sum", "others_squares", "products"
    ):
        consensus[(labeler_id, axis)].append(tuple(sums))
    gold = _gold_answers(generation_round=generation_round)
    labelers = []
    for labeler_id, name, submitted in (
        AgreementLabeler.objects.filter(round_id=round_id, submitted__gt=0)
        .order_by("labeler__username")
        .values_list("labeler_id", "labeler__username", "submitted")
    ):
        row: dict[str, Any] = {
            "labeler_id": labeler_id,
            "username": name,
            "submitted": submitted,
            "excluded": labeler_id in excluded,
        }
        for axis in AGREEMENT_AXES:
            row[f"{axis}_agreement"] = _correlation_from_sums(consensus.get((labeler_id, axis), []))
        row["gold_tasks"], row["gold_agreement"] = _gold_agreement(gold.get(labeler_id, {}))
        labelers.append(row)
    return {
        "ratings": ratings,
        "musicality_alpha": alphas[AgreementAxis.MUSICALITY],
        "compatibility_alpha": alphas[AgreementAxis.COMPATIBILITY],
        "ranking_w": w_sum / w_tasks if w_tasks else None,
        "labelers": labelers,
    }


def _correlation_from_sums(groups: list[tuple[int, ...]]) -> float | None:
    """agreement_with_consensus from sums: Pearson's r of x and y = o / others, in exact integers.

    Each group is (others, count, sum x, sum x^2, sum o, sum o^2, sum x o) over the values with that many others.

    Scaled by D, the least common multiple of the groups' ``others``, every sum is an integer, so "no variation"
    is decided exactly, as agreement_with_consensus decides it on the values themselves.
    """
    n = sum(group[1] for group in groups)
    if n < 2:
        return None
    scale = math.lcm(*(group[0] for group in groups))
    sx, sxx = sum(group[2] for group in groups), sum(group[3] for group in groups)
    sy = sum(group[4] * (scale // group[0]) for group in groups)  # sum of y, times D
    syy = sum(group[5] * (scale // group[0]) ** 2 for group in groups)  # sum of y^2, times D^2
    sxy = sum(group[6] * (scale // group[0]) for group in groups)  # sum of x y, times D
    var_x, var_y, cov = n * sxx - sx * sx, n * syy - sy * sy, n * sxy - sx * sy
    if var_x == 0 or var_y == 0:
        return None
    # r^2 as one exact fraction: D can be large (many labelers on gold tasks), the integers beyond a float's range.
    r = math.copysign(math.sqrt(float(Fraction(cov * cov, var_x * var_y))), cov)
    return max(-1.0, min(1.0, r))


def _gold_answers(*, generation_round: GenerationRound) -> dict[int, dict[int, list[tuple[int, int]]]]:
    """Per labeler and gold task of the round, their (rank, known place) per variant; gold tasks are a small share."""
    known = {
        task_id: {variant_id: place for place, variant_id in enumerate(ranking or [], start=1)}
        for task_id, ranking in LabelTask.objects.filter(
            round=generation_round, gold_ranking__isnull=False
        ).values_list("pk", "gold_ranking")
    }
    rows = Rating.objects.filter(
        assignment__task_id__in=list(known), assignment__status=AssignmentStatus.SUBMITTED
    ).values_list("assignment__labeler_id", "assignment__task_id", "variant_id", "rank")
    answers: dict[int, dict[int, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    for labeler_id, task_id, variant_id, rank in rows:
        answers[labeler_id][task_id].append((rank, known[task_id][variant_id]))
    return answers


def _gold_agreement(tasks: dict[int, list[tuple[int, int]]]) -> tuple[int, float | None]:
    """Gold tasks a labeler answered and the mean rank correlation (Spearman) of their rankings with the known ones.

    Each task's correlation is agreement_with_consensus of the ranks and the known places, from exact integer sums.
    """
    scores = []
    for pairs in tasks.values():
        sums = (
            1,
            len(pairs),
            sum(rank for rank, _ in pairs),
            sum(rank * rank for rank, _ in pairs),
            sum(place for _, place in pairs),
            sum(place * place for _, place in pairs),
            sum(rank * place for rank, place in pairs),
        )
        score = _correlation_from_sums([sums])
        if score is not None:
            scores.append(score)
    return len(tasks), (sum(scores) / len(scores) if scores else None)
