"""Writes of the studio: cover intake, generation rounds, and the variant lifecycle the GPU workers drive.

A variant's batch (round, cover, captioner version) moves queued -> running -> done | failed. A worker claims the
queued variants of a batch by bumping their ``attempts``; only the attempt that claimed them may store results,
so a redelivered task, a duplicate message or a reaped batch never writes twice. One task per cover claims all of
the cover's batches (two in a comparison round, one per captioner version), so they share one retrieval.
"""

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path

import numpy as np
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from rest_framework.authtoken.models import Token

from generation.config import PipelineConfig
from generation.images import CoverImageError, load_cover_image
from generation.loading import ModelLoadError
from labelstudio_site.catalog.models import Album
from labelstudio_site.studio import limits
from labelstudio_site.studio.agreement_sums import agreement_sums_updating
from labelstudio_site.studio.models import (
    Assignment,
    AssignmentStatus,
    Cover,
    CoverEmbedding,
    CoverSource,
    GenerationRound,
    LabelerExclusion,
    LabelTask,
    Rating,
    RoundStatus,
    Variant,
    VariantStatus,
)
from labelstudio_site.studio.roles import LABELERS_GROUP
from labelstudio_site.training.models import ModelKind, ModelVersion

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
# What an admin may set per round; everything else of PipelineConfig comes from the captioner version.
RENDER_SETTINGS = ("renderer", "duration_s", "temperature", "top_k", "rag", "constrained")
DEFAULT_RENDER_SETTINGS = {
    "renderer": "synth",
    "duration_s": 10.0,
    "temperature": 1.0,
    "top_k": 5,
    "rag": True,
    "constrained": True,
}


class RoundError(ValueError):
    """A round that cannot be created, with the reason in one sentence."""


@dataclass
class CoverIntakeReport:
    created: list[Cover] = field(default_factory=list)
    duplicates: list[tuple[str, Cover]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, cover: Cover, *, created: bool) -> None:
        if created:
            self.created.append(cover)
        else:
            self.duplicates.append((name, cover))


def cover_create(
    *,
    data: bytes,
    name: str,
    source: str = CoverSource.UPLOAD,
    title: str = "",
    artist: str = "",
    album: Album | None = None,
    split: str = "new",
    created_by: User | None = None,
) -> tuple[Cover, bool]:
    """Validate an image and store it once; a file already stored (same SHA-256) returns the existing cover.

    Args:
        data: the file's bytes.
        name: the original file name, for the extension only (the stored name is random).

    Returns:
        (cover, created): created is False for a duplicate.

    Raises:
        CoverImageError: not a usable image (nothing is stored).
    """
    image = load_cover_image(data)
    digest = hashlib.sha256(data).hexdigest()
    existing = Cover.objects.filter(sha256=digest).first()
    if existing is not None:
        return existing, False
    suffix = Path(name).suffix.lower() if Path(name).suffix.lower() in IMAGE_SUFFIXES else ".img"
    cover = Cover(
        sha256=digest,
        title=title[:300],
        artist=artist[:300],
        source=source,
        album=album,
        split=split,
        width=image.width,
        height=image.height,
        created_by=created_by,
    )
    cover.image.save(f"{uuid.uuid4().hex}{suffix}", ContentFile(data), save=False)
    with transaction.atomic():
        cover.save()
    return cover, True


def covers_intake(
    *, files: Iterable[tuple[str, bytes]], source: str, created_by: User | None = None
) -> CoverIntakeReport:
    """Store many files; bad images and duplicates are reported, never stored.

    Args:
        files: (name, bytes) pairs.
        source: ``upload`` or ``import``.
    """
    report = CoverIntakeReport()
    for name, data in files:
        try:
            cover, created = cover_create(data=data, name=name, source=source, created_by=created_by)
        except CoverImageError as exc:
            report.rejected.append((name, str(exc)))
            continue
        report.add(name, cover, created=created)
    return report


def covers_import_directory(*, directory: Path, created_by: User | None = None) -> CoverIntakeReport:
    """Every image file directly in ``directory`` (by extension), in name order."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a folder")
    paths = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return covers_intake(
        files=((p.name, p.read_bytes()) for p in paths), source=CoverSource.IMPORT, created_by=created_by
    )


def covers_from_catalog(*, split: str | None = None, limit: int | None = None) -> CoverIntakeReport:
    """Covers of the imported catalog's albums (title, artist and split carried over)."""
    albums = Album.objects.exclude(cover="").order_by("musicoset_id")
    if split is not None:
        albums = albums.filter(split=split)
    report = CoverIntakeReport()
    for album in albums[:limit]:
        with album.cover.open("rb") as file:
            data = file.read()
        cover, created = cover_create(
            data=data,
            name=album.cover.name or "",
            source=CoverSource.CATALOG,
            title=album.name,
            artist=", ".join(album.artist_names),
            album=album,
            split=album.split,
        )
        report.add(album.name, cover, created=created)
    return report


def cover_embedding_store(*, cover_id: int, embedder_id: str, vector: Sequence[float] | np.ndarray) -> None:
    """Store a cover's embedding from one embedder once: a second store (a redelivered task) keeps the first row.

    Args:
        cover_id: the cover.
        embedder_id: the ``Embedder.model_id`` that computed the vector.
        vector: the cover's embedding, one dimension; kept as float32.

    Raises:
        ValueError: an empty, multi-dimensional or non-finite vector (nothing is stored).
    """
    values = np.asarray(vector, dtype=np.float32)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"a cover embedding is one non-empty row of numbers, not an array of shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"the embedding of cover {cover_id} by {embedder_id} holds NaN or infinite values")
    CoverEmbedding.objects.get_or_create(
        cover_id=cover_id,
        embedder_id=embedder_id,
        defaults={"dimension": values.size, "vector": values.astype("<f4").tobytes()},
    )


def pipeline_config_for(*, version: ModelVersion, render_settings: dict) -> PipelineConfig:
    """The full pipeline config of a round: the captioner version's model plus the round's render settings.

    Raises:
        ValueError: a setting out of range or unknown.
    """
    unknown = sorted(set(render_settings) - set(RENDER_SETTINGS))
    if unknown:
        raise ValueError(f"unknown render settings: {', '.join(unknown)}")
    return PipelineConfig(
        profile=version.profile,
        captioner=version.base_model_id or None,
        adapter=version.adapter_path or None,
        **{**DEFAULT_RENDER_SETTINGS, **render_settings},
    )


def round_config_mismatch(*, round_id: int) -> str | None:
    """Why this process must not render the round, or None: the round's config resolves here to other checkpoints
    than in the process that created the round (its ``ALBUMGEN_*`` variables or shipped weights differ), so the
    variants would not be what the round's fingerprint says.

    Raises:
        ModelLoadError: a shipped model's weights are missing here.
    """
    generation_round = GenerationRound.objects.select_related("captioner_version").get(pk=round_id)
    config = pipeline_config_for(
        version=generation_round.captioner_version, render_settings=generation_round.render_settings
    )
    fingerprint = config.fingerprint()
    if fingerprint == generation_round.config_fingerprint:
        return None
    return (
        f"this worker resolves the round's models to {config.resolved_checkpoints()} (fingerprint {fingerprint}), "
        f"not to those the round was created with (fingerprint {generation_round.config_fingerprint}); give the "
        "workers the web's ALBUMGEN_EMBEDDER, ALBUMGEN_CAPTIONER, ALBUMGEN_MUSICGEN and shipped weights, then retry"
    )


def _comparison_check(
    *, captioner_version: ModelVersion, comparison_version: ModelVersion, variants_per_cover: int
) -> None:
    if comparison_version.kind != ModelKind.CAPTIONER:
        raise RoundError(f"model version {comparison_version.pk} is a {comparison_version.kind}, not a captioner")
    if comparison_version.pk == captioner_version.pk:
        raise RoundError("a comparison round needs two different captioner versions")
    # Both versions' adapters go onto one loaded base model, and their variants share one retrieval.
    bases = {(v.profile, v.base_model_id) for v in (captioner_version, comparison_version)}
    if len(bases) > 1:
        raise RoundError(
            f"the versions to compare must be captioners on the same base model: {captioner_version.name!r} runs on "
            f"{_base_description(captioner_version)}, {comparison_version.name!r} on "
            f"{_base_description(comparison_version)}"
        )
    low, high = limits.COMPARISON_VARIANTS_PER_COVER
    if variants_per_cover > high:
        raise RoundError(
            f"a comparison round renders the variants per cover from each version, {limits.VARIANTS_PER_TASK[1]} in "
            f"all at most: choose {low}-{high} variants per cover"
        )


def _base_description(version: ModelVersion) -> str:
    return f"{version.base_model_id or 'the default captioner'} ({version.profile} profile)"


@transaction.atomic
def round_create(
    *,
    name: str,
    covers: list[Cover],
    captioner_version: ModelVersion,
    variants_per_cover: int,
    comparison_version: ModelVersion | None = None,
    seed: int | None = None,
    render_settings: dict | None = None,
    overlap_k: int = 3,
    gold_rate: float = 0.0,
    created_by: User | None = None,
) -> GenerationRound:
    """Create a round with one queued variant row per (cover, version, index); one GPU task per cover after commit.

    Args:
        variants_per_cover: variants of each cover from each captioner version.
        comparison_version: a second captioner version on the same base model: each cover gets
            ``variants_per_cover`` variants from both versions (16 in all at most), and labelers rank them together.
        seed: the round seed; default a random 31-bit number, recorded on the round.
        render_settings: any of renderer, duration_s, temperature, top_k, rag, constrained.

    Raises:
        RoundError: no covers, a version that is not a captioner, versions to compare on different base models, or
            settings out of range (nothing is created).
    """
    # tasks imports this module; importing it back at the top would be circular.
    from labelstudio_site.studio.tasks import cover_generate_task

    if not covers:
        raise RoundError("a round needs at least one cover")
    if captioner_version.kind != ModelKind.CAPTIONER:
        raise RoundError(f"model version {captioner_version.pk} is a {captioner_version.kind}, not a captioner")
    if not limits.VARIANTS_PER_TASK[0] <= variants_per_cover <= limits.VARIANTS_PER_TASK[1]:
        raise RoundError(
            f"variants per cover must be between {limits.VARIANTS_PER_TASK[0]} and {limits.VARIANTS_PER_TASK[1]}"
        )
    if comparison_version is not None:
        _comparison_check(
            captioner_version=captioner_version,
            comparison_version=comparison_version,
            variants_per_cover=variants_per_cover,
        )
    if not limits.OVERLAP_K[0] <= overlap_k <= limits.OVERLAP_K[1]:
        raise RoundError(f"overlap k must be between {limits.OVERLAP_K[0]} and {limits.OVERLAP_K[1]}")
    if not limits.GOLD_RATE[0] <= gold_rate <= limits.GOLD_RATE[1]:
        raise RoundError(f"the gold rate must be between {limits.GOLD_RATE[0]:g} and {limits.GOLD_RATE[1]:g}")
    if seed is not None and not limits.SEED[0] <= seed <= limits.SEED[1]:
        raise RoundError(f"the seed must be between {limits.SEED[0]} and {limits.SEED[1]}")
    settings = {**DEFAULT_RENDER_SETTINGS, **(render_settings or {})}
    try:
        config = pipeline_config_for(version=captioner_version, render_settings=settings)
    except (TypeError, ValueError) as exc:
        raise RoundError(f"render settings: {exc}") from exc
    try:
        fingerprint = config.fingerprint()
    except ModelLoadError as exc:
        raise RoundError(str(exc)) from exc
    seed = secrets.randbelow(2**31) if seed is None else seed
    generation_round = GenerationRound.objects.create(
        name=name or f"round {timezone.now():%Y-%m-%d %H:%M}",
        captioner_version=captioner_version,
        comparison_version=comparison_version,
        variants_per_cover=variants_per_cover,
        seed=seed,
        render_settings=settings,
        config_fingerprint=fingerprint,
        overlap_k=overlap_k,
        gold_rate=gold_rate,
        created_by=created_by,
    )
    generation_round.covers.set(covers)
    LabelTask.objects.bulk_create(LabelTask(round=generation_round, cover=cover) for cover in covers)
    versions = [captioner_version] if comparison_version is None else [captioner_version, comparison_version]
    Variant.objects.bulk_create(
        Variant(round=generation_round, cover=cover, captioner_version=version, index=index, seed=seed)
        for cover in covers
        for version in versions
        for index in range(variants_per_cover)
    )
    for cover in covers:
        transaction.on_commit(partial(cover_generate_task.delay, generation_round.pk, cover.pk))
    return generation_round


@dataclass(frozen=True)
class Claim:
    """A worker's hold on the unfinished variants of one batch."""

    round_id: int
    cover_id: int
    variant_ids: list[int]
    attempt: int
    config: PipelineConfig
    seed: int
    variants_per_cover: int
    cover_image_path: str


@transaction.atomic
def cover_batches_claim(*, round_id: int, cover_id: int, worker: str) -> list[Claim]:
    """Claim every batch of the cover in the round that has queued variants: one per captioner version, in version
    order (a comparison round has two); empty when nothing is left to do."""
    version_ids = (
        Variant.objects.filter(round_id=round_id, cover_id=cover_id, status=VariantStatus.QUEUED)
        .values_list("captioner_version_id", flat=True)
        .distinct()
        .order_by("captioner_version_id")
    )
    claims = (
        batch_claim(round_id=round_id, cover_id=cover_id, version_id=version_id, worker=worker)
        for version_id in list(version_ids)
    )
    return [claim for claim in claims if claim is not None]


@transaction.atomic
def batch_claim(*, round_id: int, cover_id: int, version_id: int, worker: str) -> Claim | None:
    """Mark the batch's queued variants running under a new attempt number; None when nothing is left to do."""
    variants = list(
        Variant.objects.select_for_update()
        .filter(round_id=round_id, cover_id=cover_id, captioner_version_id=version_id)
        .order_by("index")
    )
    queued = [v for v in variants if v.status == VariantStatus.QUEUED]
    if not queued:
        return None
    attempt = max(v.attempts for v in variants) + 1
    now = timezone.now()
    Variant.objects.filter(pk__in=[v.pk for v in queued]).update(
        status=VariantStatus.RUNNING, attempts=attempt, started_at=now, worker=worker, error=""
    )
    generation_round = GenerationRound.objects.get(pk=round_id)
    if generation_round.status == RoundStatus.QUEUED:
        GenerationRound.objects.filter(pk=round_id).update(status=RoundStatus.RUNNING)
    cover = Cover.objects.get(pk=cover_id)
    return Claim(
        round_id=round_id,
        cover_id=cover_id,
        variant_ids=[v.pk for v in queued],
        attempt=attempt,
        config=pipeline_config_for(
            version=ModelVersion.objects.get(pk=version_id), render_settings=generation_round.render_settings
        ),
        seed=generation_round.seed,
        variants_per_cover=generation_round.variants_per_cover,
        cover_image_path=cover.image.path,
    )


@dataclass(frozen=True)
class VariantOutput:
    index: int
    neighbours: list
    raw_text: str
    features: dict | None
    error: str | None
    prompt: str
    audio: bytes | None
    audio_extension: str
    audio_mime: str
    peaks: list[float]
    duration_s: float | None
    timings: dict[str, float]


@transaction.atomic
def batch_store(*, claim: Claim, outputs: list[VariantOutput]) -> int:
    """Store the outputs of the claimed variants; returns how many were stored.

    Only variants still running under this claim's attempt are written, so a stale or duplicate attempt writes
    nothing. Audio goes under a random name, so its URL says nothing about the variant.
    """
    by_index = {output.index: output for output in outputs}
    stored = 0
    now = timezone.now()
    variants = Variant.objects.select_for_update().filter(
        pk__in=claim.variant_ids, status=VariantStatus.RUNNING, attempts=claim.attempt
    )
    for variant in variants:
        output = by_index[variant.index]
        variant.neighbours, variant.raw_text, variant.features = output.neighbours, output.raw_text, output.features
        variant.prompt, variant.peaks, variant.timings = output.prompt, output.peaks, output.timings
        variant.finished_at = now
        if output.audio is None:
            variant.status, variant.error = VariantStatus.FAILED, output.error or "no audio was rendered"
        else:
            variant.audio.save(f"{uuid.uuid4().hex}.{output.audio_extension}", ContentFile(output.audio), save=False)
            variant.audio_mime, variant.duration_s = output.audio_mime, output.duration_s
            variant.status = VariantStatus.DONE
        variant.save()
        stored += 1
    if stored:
        round_status_refresh(round_id=claim.round_id)
        cover_variants = Variant.objects.filter(round_id=claim.round_id, cover_id=claim.cover_id)
        if not cover_variants.exclude(status=VariantStatus.DONE).exists():
            LabelTask.objects.filter(round_id=claim.round_id, cover_id=claim.cover_id).update(ready=True)
    return stored


@transaction.atomic
def batch_fail(*, claim: Claim, reason: str) -> None:
    """Record why the claimed variants failed (only while this attempt still holds them)."""
    variants = Variant.objects.filter(pk__in=claim.variant_ids, status=VariantStatus.RUNNING, attempts=claim.attempt)
    if variants.update(status=VariantStatus.FAILED, error=reason[:2000], finished_at=timezone.now()):
        round_status_refresh(round_id=claim.round_id)


@transaction.atomic
def batch_release(*, claim: Claim) -> None:
    """Hand the claimed variants back to the queue (before a retry)."""
    Variant.objects.filter(pk__in=claim.variant_ids, status=VariantStatus.RUNNING, attempts=claim.attempt).update(
        status=VariantStatus.QUEUED
    )


def round_status_refresh(*, round_id: int) -> None:
    """Derive the round's status from its variants (in the caller's transaction)."""
    counts = Variant.objects.filter(round_id=round_id).aggregate(
        open=Count("pk", filter=Q(status__in=[VariantStatus.QUEUED, VariantStatus.RUNNING])),
        failed=Count("pk", filter=Q(status=VariantStatus.FAILED)),
    )
    if counts["open"]:
        GenerationRound.objects.filter(pk=round_id).update(status=RoundStatus.RUNNING, finished_at=None)
    else:
        status = RoundStatus.FAILED if counts["failed"] else RoundStatus.DONE
        GenerationRound.objects.filter(pk=round_id).update(status=status, finished_at=timezone.now())


def batches_requeue(*, variants: Iterable[Variant]) -> set[tuple[int, int, int]]:
    """Reset variants to queued and enqueue one task per cover after commit; returns the batches (round, cover,
    captioner version)."""
    from labelstudio_site.studio.tasks import cover_generate_task

    batches: set[tuple[int, int, int]] = set()
    ids = []
    for variant in variants:
        ids.append(variant.pk)
        batches.add((variant.round_id, variant.cover_id, variant.captioner_version_id))
    with transaction.atomic():
        Variant.objects.filter(pk__in=ids).update(status=VariantStatus.QUEUED, error="")
        for round_id in {batch[0] for batch in batches}:
            round_status_refresh(round_id=round_id)
        # A cover's task claims all of its queued batches (both versions of a comparison round).
        for round_id, cover_id in sorted({(batch[0], batch[1]) for batch in batches}):
            transaction.on_commit(partial(cover_generate_task.delay, round_id, cover_id))
    return batches


def variants_reap_stale(*, stale_after_s: float) -> set[tuple[int, int, int]]:
    """Requeue variants left running longer than ``stale_after_s`` (their worker died, or its message was lost)."""
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    stale = Variant.objects.filter(status=VariantStatus.RUNNING, started_at__lt=cutoff)
    return batches_requeue(variants=list(stale))


def round_retry_failed(*, generation_round: GenerationRound) -> set[tuple[int, int, int]]:
    """Requeue the round's failed variants (an admin's retry)."""
    return batches_requeue(variants=list(generation_round.variants.filter(status=VariantStatus.FAILED)))


# --- Labeling --------------------------------------------------------------------------------------------------


# Tries before "no task" when every candidate is locked by concurrent labelers (20 ms apart).
NEXT_TASK_TRIES = 25


class LabelingError(ValueError):
    """A submission or skip that cannot be accepted; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def variant_keys(count: int) -> list[str]:
    """The blind names of an assignment's variants, in its order: a, b, c, ..."""
    return [chr(ord("a") + i) for i in range(count)]


def assignments_expire() -> int:
    """Expire open assignments past their deadline and give their slots back to the pool."""
    now = timezone.now()
    with transaction.atomic():
        stale = list(
            Assignment.objects.select_for_update(skip_locked=True).filter(
                status=AssignmentStatus.ASSIGNED, expires_at__lt=now
            )
        )
        for assignment in stale:
            assignment.status = AssignmentStatus.EXPIRED
            assignment.save(update_fields=["status"])
            LabelTask.objects.filter(pk=assignment.task_id).update(active_count=F("active_count") - 1)
    return len(stale)


def assignment_next_for(*, labeler: User, ttl_s: float) -> Assignment | None:
    """The labeler's open assignment, or a new one on the ready task with the fewest labelers so far.

    A task goes to at most ``round.overlap_k`` labelers at a time and never twice to one labeler; concurrent
    callers skip each other's locked tasks instead of waiting (PostgreSQL ``SKIP LOCKED``).

    Args:
        labeler: a member of the labelers group.
        ttl_s: seconds before an unsubmitted assignment expires and its slot returns to the pool.
    """
    open_assignment = Assignment.objects.filter(
        labeler=labeler, status=AssignmentStatus.ASSIGNED, expires_at__gte=timezone.now()
    ).first()
    if open_assignment is not None:
        return open_assignment
    assignments_expire()
    # A gold task (known answer) comes with its round's gold rate; it goes to every labeler, outside overlap k.
    gold = (
        LabelTask.objects.filter(
            ready=True, gold_ranking__isnull=False, round__gold_rate__gt=secrets.SystemRandom().random()
        )
        .exclude(assignments__labeler=labeler)
        .order_by("pk")
        .first()
    )
    if gold is not None:
        try:
            with transaction.atomic():
                return _assignment_create(task=gold, labeler=labeler, ttl_s=ttl_s)
        except IntegrityError:  # the same labeler asked twice at once: one of the two calls made it
            return Assignment.objects.get(task=gold, labeler=labeler)
    candidates = (
        LabelTask.objects.filter(ready=True, gold_ranking__isnull=True, active_count__lt=F("round__overlap_k"))
        .exclude(assignments__labeler=labeler)
        .order_by("active_count", "pk")
    )
    for _ in range(NEXT_TASK_TRIES):
        with transaction.atomic():
            task = candidates.select_for_update(skip_locked=True, of=("self",)).first()
            if task is not None:
                return _assignment_create(task=task, labeler=labeler, ttl_s=ttl_s)
        if not candidates.exists():
            return None
        # Every candidate is locked by labelers taking a slot this instant; they commit within milliseconds.
        # Waiting on the lock instead could deadlock (a blocked FOR UPDATE scan keeps rows it then rejects).
        time.sleep(0.02)
    return None


def _assignment_create(*, task: LabelTask, labeler: User, ttl_s: float) -> Assignment:
    variant_ids = list(
        Variant.objects.filter(round_id=task.round_id, cover_id=task.cover_id).values_list("pk", flat=True)
    )
    # An order of its own per assignment, from the OS's randomness: nothing about it can be predicted.
    order = secrets.SystemRandom().sample(variant_ids, len(variant_ids))
    assignment = Assignment.objects.create(
        task=task, labeler=labeler, order=order, expires_at=timezone.now() + timedelta(seconds=ttl_s)
    )
    LabelTask.objects.filter(pk=task.pk).update(active_count=F("active_count") + 1)
    return assignment


@dataclass(frozen=True)
class VariantAnswer:
    musicality: int
    compatibility: int
    listened_s: float


def _owned_assignment_for_update(*, assignment_id: int, labeler: User) -> Assignment:
    assignment = Assignment.objects.select_for_update().filter(pk=assignment_id, labeler=labeler).first()
    if assignment is None:
        # Another labeler's assignment looks exactly like a missing one.
        raise LabelingError(f"there is no assignment {assignment_id} of yours", status=404)
    if assignment.status == AssignmentStatus.EXPIRED or (
        assignment.status == AssignmentStatus.ASSIGNED and assignment.expires_at < timezone.now()
    ):
        raise LabelingError("the assignment expired; ask for the next task", status=409)
    if assignment.status == AssignmentStatus.SKIPPED:
        raise LabelingError("the assignment was skipped", status=409)
    return assignment


@transaction.atomic
def assignment_submit(
    *, assignment_id: int, labeler: User, answers: dict[str, VariantAnswer], ranking: list[str], min_listen_s: float
) -> Assignment:
    """Store a labeler's ratings and ranking; a resubmission replaces the earlier answers in the same transaction.

    Args:
        answers: per blind key (a, b, ...), the two 1-5 ratings and the seconds listened.
        ranking: every key once, best first.
        min_listen_s: each variant must have been listened to this long, or to its end if shorter.

    Raises:
        LabelingError: with status 404 (not the labeler's), 409 (expired or skipped) or 400 (invalid answers).
    """
    assignment = _owned_assignment_for_update(assignment_id=assignment_id, labeler=labeler)
    keys = variant_keys(len(assignment.order))
    variant_of = dict(zip(keys, assignment.order, strict=True))
    if sorted(answers) != keys:
        raise LabelingError(f"rate every variant exactly once: expected {', '.join(keys)}")
    if sorted(ranking) != keys or len(ranking) != len(keys):
        raise LabelingError(f"the ranking must list each of {', '.join(keys)} exactly once")
    durations = dict(Variant.objects.filter(pk__in=assignment.order).values_list("pk", "duration_s"))
    for key in keys:
        answer = answers[key]
        for axis in ("musicality", "compatibility"):
            value = getattr(answer, axis)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
                raise LabelingError(f"{axis} of {key} must be a whole number from 1 to 5")
        needed = min(min_listen_s, max((durations[variant_of[key]] or 0) - 0.25, 0))
        if answer.listened_s < needed:
            raise LabelingError(f"listen to {key} for at least {needed:g} s before rating it")
    with agreement_sums_updating(task_ids=[assignment.task_id]):
        assignment.ratings.all().delete()
        Rating.objects.bulk_create(
            Rating(
                assignment=assignment,
                variant_id=variant_of[key],
                musicality=answers[key].musicality,
                compatibility=answers[key].compatibility,
                listened_s=answers[key].listened_s,
                rank=ranking.index(key) + 1,
            )
            for key in keys
        )
        assignment.status = AssignmentStatus.SUBMITTED
        assignment.submitted_at = timezone.now()
        assignment.save(update_fields=["status", "submitted_at"])
    return assignment


@transaction.atomic
def assignment_skip(*, assignment_id: int, labeler: User, reason: str) -> Assignment:
    """Give a task back with a reason (broken audio, cannot judge, ...); it returns to the pool for others."""
    if not reason.strip():
        raise LabelingError("say why you skip (e.g. broken audio)")
    assignment = _owned_assignment_for_update(assignment_id=assignment_id, labeler=labeler)
    if assignment.status == AssignmentStatus.SUBMITTED:
        raise LabelingError("the assignment is already submitted", status=409)
    assignment.status = AssignmentStatus.SKIPPED
    assignment.skip_reason = reason.strip()[:300]
    assignment.save(update_fields=["status", "skip_reason"])
    LabelTask.objects.filter(pk=assignment.task_id).update(active_count=F("active_count") - 1)
    return assignment


@transaction.atomic
def labeler_exclusion_set(*, labeler: User, excluded: bool, by: User | None, reason: str = "") -> None:
    """Exclude a labeler's answers from consensus and exports, or include them again.

    The agreement sums of every task the labeler answered change with it, in this transaction.
    """
    answered = Assignment.objects.filter(labeler=labeler, status=AssignmentStatus.SUBMITTED).values_list(
        "task_id", flat=True
    )
    with agreement_sums_updating(task_ids=list(answered)):
        if excluded:
            LabelerExclusion.objects.update_or_create(
                labeler=labeler, defaults={"reason": reason[:300], "excluded_by": by}
            )
        else:
            LabelerExclusion.objects.filter(labeler=labeler).delete()


@transaction.atomic
def labeler_create(*, username: str, email: str = "", password: str | None = None) -> tuple[User, str, str]:
    """A labeler account with an API token; a random password unless one is given.

    Returns:
        (user, password, token key).

    Raises:
        LabelingError: the username is taken.
    """
    if User.objects.filter(username=username).exists():
        raise LabelingError(f"the username {username} is taken")
    password = password or secrets.token_urlsafe(12)
    user = User.objects.create_user(username=username, email=email, password=password)
    user.groups.add(Group.objects.get(name=LABELERS_GROUP))
    return user, password, Token.objects.create(user=user).key


@transaction.atomic
def label_task_gold_set(*, task: LabelTask, ranking: list[int] | None) -> LabelTask:
    """Make a task gold with its known ranking (variant ids, best first), or an ordinary task again (None).

    Raises:
        LabelingError: the ranking is not a permutation of the task's variants.
    """
    if ranking is not None:
        variant_ids = set(
            Variant.objects.filter(round_id=task.round_id, cover_id=task.cover_id).values_list("pk", flat=True)
        )
        if len(ranking) != len(variant_ids) or set(ranking) != variant_ids:
            raise LabelingError(f"the gold ranking must list each of the task's variants once: {sorted(variant_ids)}")
    task.gold_ranking = ranking
    task.save(update_fields=["gold_ranking"])
    return task
