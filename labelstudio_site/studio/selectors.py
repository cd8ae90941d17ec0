"""Reads of the studio: covers, rounds and their progress for the admin pages."""

from collections import Counter, defaultdict
from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet

from labelstudio_site.studio.agreement import agreement_with_consensus, kendalls_w_per_group, krippendorff_alpha
from labelstudio_site.studio.models import (
    Assignment,
    AssignmentStatus,
    Cover,
    GenerationRound,
    LabelerExclusion,
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


def captioner_version_list() -> QuerySet[ModelVersion]:
    """Captioner versions a round may use, newest first."""
    return ModelVersion.objects.filter(kind=ModelKind.CAPTIONER).order_by("-created_at", "-pk")


def round_list() -> QuerySet[GenerationRound]:
    """Rounds, newest first, each annotated with its variant counts (``n_total``, ``n_done``, ...)."""
    return (
        GenerationRound.objects.select_related("captioner_version")
        .annotate(
            **{
                f"n_{name}": Count("variants", filter=Q(variants__status=status))
                for name, status in (
                    ("queued", VariantStatus.QUEUED),
                    ("running", VariantStatus.RUNNING),
                    ("done", VariantStatus.DONE),
                    ("failed", VariantStatus.FAILED),
                )
            },
            n_total=Count("variants"),
        )
        .order_by("-created_at", "-pk")
    )


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
    counts = variants.aggregate(**_STATUS_COUNTS)
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


def round_cover_progress(*, generation_round: GenerationRound) -> list[dict[str, Any]]:
    """One row per cover of the round: the cover and its variant counts, in cover order."""
    rows = (
        Variant.objects.filter(round_id=generation_round.pk)
        .values("cover_id")
        .annotate(**_STATUS_COUNTS)
        .order_by("cover_id")
    )
    covers = Cover.objects.in_bulk([row["cover_id"] for row in rows])
    return [{**row, "cover": covers[row["cover_id"]]} for row in rows]


def round_variants(*, generation_round: GenerationRound) -> QuerySet[Variant]:
    """The round's variants with their covers, by cover then index."""
    return Variant.objects.filter(round_id=generation_round.pk).select_related("cover").order_by("cover_id", "index")


def round_failures(*, generation_round: GenerationRound) -> QuerySet[Variant]:
    """The round's failed variants, with their reasons."""
    return round_variants(generation_round=generation_round).filter(status=VariantStatus.FAILED)


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

    Returns:
        ``musicality_alpha`` and ``compatibility_alpha`` (Krippendorff's alpha, ordinal, one unit per variant),
        ``ranking_w`` (Kendall's W per cover, averaged over covers), ``ratings`` (count), and ``labelers``: per
        labeler the submitted assignments, the correlation of their ratings with the mean of the other labelers'
        on the same variants (per axis), and whether they are excluded. Values are None where undefined (fewer
        than two labelers on any variant, or no variation).
    """
    ratings: list[dict[str, Any]] = [
        dict(row)
        for row in Rating.objects.filter(
            assignment__task__round=generation_round, assignment__status=AssignmentStatus.SUBMITTED
        ).values(
            "assignment__labeler_id",
            "assignment__labeler__username",
            "assignment__task_id",
            "variant_id",
            "musicality",
            "compatibility",
            "rank",
            "assignment__task__gold_ranking",
        )
    ]
    excluded = set(LabelerExclusion.objects.values_list("labeler_id", flat=True))
    counted = [r for r in ratings if r["assignment__labeler_id"] not in excluded]
    by_variant: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for rating in counted:
        by_variant[rating["variant_id"]].append(rating)
    alphas = {
        axis: krippendorff_alpha([[r[axis] for r in unit] for unit in by_variant.values()], level="ordinal")
        for axis in ("musicality", "compatibility")
    }
    groups: dict[int, dict[int, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for rating in counted:
        groups[rating["assignment__task_id"]][rating["assignment__labeler_id"]][rating["variant_id"]] = rating["rank"]
    rank_groups = []
    for raters in groups.values():
        variant_ids = sorted(next(iter(raters.values())))
        rank_groups.append([[ranks[v] for v in variant_ids] for ranks in raters.values()])
    labelers = []
    names = {r["assignment__labeler_id"]: r["assignment__labeler__username"] for r in ratings}
    submitted = Counter(
        Assignment.objects.filter(task__round=generation_round, status=AssignmentStatus.SUBMITTED).values_list(
            "labeler_id", flat=True
        )
    )
    for labeler_id, name in sorted(names.items(), key=lambda item: item[1]):
        row: dict[str, Any] = {
            "labeler_id": labeler_id,
            "username": name,
            "submitted": submitted[labeler_id],
            "excluded": labeler_id in excluded,
        }
        mine = [r for r in ratings if r["assignment__labeler_id"] == labeler_id]
        for axis in ("musicality", "compatibility"):
            own, consensus = [], []
            for rating in mine:
                # The consensus is the counted labelers' mean, so an excluded labeler is measured against it too.
                others = [
                    r[axis]
                    for r in by_variant.get(rating["variant_id"], [])
                    if r["assignment__labeler_id"] != labeler_id
                ]
                if others:
                    own.append(float(rating[axis]))
                    consensus.append(sum(others) / len(others))
            row[f"{axis}_agreement"] = agreement_with_consensus(own, consensus)
        row["gold_tasks"], row["gold_agreement"] = _gold_agreement(mine)
        labelers.append(row)
    return {
        "ratings": len(counted),
        "musicality_alpha": alphas["musicality"],
        "compatibility_alpha": alphas["compatibility"],
        "ranking_w": kendalls_w_per_group(rank_groups),
        "labelers": labelers,
    }


def _gold_agreement(ratings: list[dict[str, Any]]) -> tuple[int, float | None]:
    """Gold tasks a labeler answered and the mean rank correlation (Spearman) of their rankings with the known ones."""
    by_task: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for rating in ratings:
        if rating["assignment__task__gold_ranking"] is not None:
            by_task[rating["assignment__task_id"]].append(rating)
    scores = []
    for task_ratings in by_task.values():
        gold = task_ratings[0]["assignment__task__gold_ranking"]
        own = [float(r["rank"]) for r in task_ratings]
        known = [float(gold.index(r["variant_id"]) + 1) for r in task_ratings]
        score = agreement_with_consensus(own, known)
        if score is not None:
            scores.append(score)
    return len(by_task), (sum(scores) / len(scores) if scores else None)
