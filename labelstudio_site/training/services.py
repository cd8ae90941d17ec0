"""Writes of model versions, dataset snapshots and training runs."""

import dataclasses
import functools
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labelstudio_site.training.models import (
    DatasetExport,
    ExportKind,
    ExportStatus,
    ModelKind,
    ModelVersion,
    RunKind,
    RunPoint,
    RunStatus,
    TrainingRun,
)
from labelstudio_site.training.run_configs import config_class

# A run whose worker died this many times is not requeued again: the fault is probably the run's own (it runs out
# of memory, say), and another restart would only repeat it.
RUN_MAX_ATTEMPTS = 3


class TrainingError(ValueError):
    """A launch or a change of a run that cannot be done; the message says why in a sentence."""


def model_version_base_ensure(*, profile: str, created_by: User | None = None) -> ModelVersion:
    """The captioner version that is the profile's base model without an adapter; created on first use.

    Args:
        profile: ``tiny`` or ``full``.
        created_by: who asked for it first; empty for the system.
    """
    version, _ = ModelVersion.objects.get_or_create(
        kind=ModelKind.CAPTIONER,
        name=f"base ({profile})",
        defaults={"profile": profile, "created_by": created_by},
    )
    return version


def run_config_validate(*, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The run's algorithm config with defaults filled in, checked by the rlhf dataclass itself.

    Raises:
        TrainingError: an unknown option or a value the dataclass rejects.
    """
    cls = config_class(kind)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise TrainingError(f"unknown {kind} option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return dataclasses.asdict(cls(**config))
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"invalid {kind} option: {exc}") from exc


@transaction.atomic
def training_run_create(
    *,
    kind: str,
    name: str,
    config: dict[str, Any],
    parent_version: ModelVersion | None = None,
    reward_version: ModelVersion | None = None,
    dataset_export: DatasetExport | None = None,
    created_by: User | None = None,
) -> TrainingRun:
    """Check a launch and queue it on the train queue (after the transaction commits).

    Args:
        kind: sft, reward, rl or evaluate.
        name: the name of the model version it registers (unique per kind); evaluate runs register none.
        config: the algorithm's options (see ``python -m rlhf <command> --help``); missing ones take defaults.
        parent_version: the captioner to fine-tune, tune or evaluate.
        reward_version: the reward model an RL run optimises.
        dataset_export: the preference snapshot a reward run trains on.
        created_by: the admin who launched it.

    Raises:
        TrainingError: with a sentence, and nothing is written.
    """
    if kind not in RunKind.values:
        raise TrainingError(f"unknown run kind {kind!r}; choose one of {', '.join(RunKind.values)}")
    name = name.strip()
    if kind != RunKind.EVALUATE:
        if not name:
            raise TrainingError("give the model version this run registers a name")
        result_kind = ModelKind.REWARD if kind == RunKind.REWARD else ModelKind.CAPTIONER
        if ModelVersion.objects.filter(kind=result_kind, name=name).exists():
            raise TrainingError(f"a {result_kind} version named {name!r} exists already; choose another name")
        pending = TrainingRun.objects.filter(name=name, status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
        if pending.filter(kind__in=[RunKind.REWARD] if kind == RunKind.REWARD else [RunKind.SFT, RunKind.RL]).exists():
            raise TrainingError(f"a queued or running run will register {name!r} already; choose another name")
    if kind in (RunKind.SFT, RunKind.RL, RunKind.EVALUATE):
        if parent_version is None or parent_version.kind != ModelKind.CAPTIONER:
            raise TrainingError(f"a {kind} run needs a captioner version to start from")
    if kind == RunKind.SFT and parent_version is not None and parent_version.adapter_path:
        raise TrainingError("SFT starts from a base captioner version (one without an adapter)")
    if kind == RunKind.REWARD:
        _check_preference_export(dataset_export)
    if kind == RunKind.RL:
        if reward_version is None or reward_version.kind != ModelKind.REWARD:
            raise TrainingError("an RL run needs a reward model version")
        assert parent_version is not None
        from labelstudio_site.training.exports import captioner_base_id

        judged = reward_version.metrics.get("captioner_base_model_id")
        if judged != captioner_base_id(parent_version):
            raise TrainingError(
                f"the reward model {reward_version.name!r} judged outputs of the captioner base {judged!r}; "
                f"{parent_version.name!r} is on {captioner_base_id(parent_version)!r}"
            )
    checked = run_config_validate(kind=kind, config=config)
    run = TrainingRun.objects.create(
        kind=kind,
        name=name,
        config=checked,
        parent_version=parent_version,
        reward_version=reward_version,
        dataset_export=dataset_export,
        created_by=created_by,
    )
    transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def _check_preference_export(export: DatasetExport | None) -> None:
    from rlhf.pairs import PREFERENCE_FORMAT

    if export is None:
        raise TrainingError("a reward run needs a preference export to train on")
    found = export.options.get("format") if export.kind == ExportKind.PREFERENCES else f"a {export.kind} set"
    if found != PREFERENCE_FORMAT:
        raise TrainingError(
            f"export {export.pk} is {found or 'of an unknown format'}, not preference pairs in {PREFERENCE_FORMAT}"
        )
    if export.status != ExportStatus.READY:
        raise TrainingError(f"export {export.pk} is {export.status}, not ready")
    if "covers" not in export.files:
        raise TrainingError(
            f"export {export.pk} was made before exports held the covers' embeddings, which the reward model reads: "
            "export the rounds again"
        )
    if export.counts.get("covers", 0) < 2:
        raise TrainingError(
            f"export {export.pk} has pairs of {export.counts.get('covers', 0)} cover(s): a reward model that reads "
            "the cover needs pairs of several covers; label more covers"
        )


def _enqueue(run_id: int) -> None:
    from labelstudio_site.training.tasks import training_run_task

    training_run_task.delay(run_id)


@transaction.atomic
def training_run_claim(*, run_id: int, worker: str, stale_after_s: float) -> TrainingRun | None:
    """Mark a queued run running for this worker; None when it finished, was cancelled or is alive elsewhere."""
    run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None or run.finished:
        return None
    now = timezone.now()
    if run.cancel_requested:
        run.status, run.finished_at = RunStatus.CANCELLED, now
        run.save(update_fields=["status", "finished_at"])
        return None
    alive = run.heartbeat_at is not None and run.heartbeat_at > now - timedelta(seconds=stale_after_s)
    if run.status == RunStatus.RUNNING and alive:
        return None  # a duplicate delivery while the first worker still trains
    run.status = RunStatus.RUNNING
    run.attempts += 1
    run.worker = worker
    run.heartbeat_at = run.started_at = now
    run.step = 0
    run.save(update_fields=["status", "attempts", "worker", "heartbeat_at", "started_at", "step"])
    # Curves of an attempt whose worker died would mix with this attempt's.
    run.points.all().delete()
    return run


def training_run_progress(*, run_id: int, step: int, total_steps: int, values: dict[str, float] | None) -> bool:
    """Record a step (and a curve point when ``values``); True when an admin asked the run to stop."""
    now = timezone.now()
    with transaction.atomic():
        TrainingRun.objects.filter(pk=run_id).update(step=step, total_steps=total_steps, heartbeat_at=now)
        if values:
            RunPoint.objects.create(run_id=run_id, step=step, values=values)
    return TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists()


@transaction.atomic
def training_run_succeed(
    *, run: TrainingRun, summary: dict[str, Any], version: dict[str, Any] | None
) -> ModelVersion | None:
    """Finish a run: store its summary and, for training runs, register the model version it made.

    Args:
        run: the claimed run.
        summary: final metrics shown on the run page.
        version: ModelVersion fields (kind, profile, base_model_id, adapter_path, metrics); None for evaluation.
    """
    registered = None
    if version is not None:
        registered = ModelVersion.objects.create(
            name=run.name, parent=run.parent_version, created_by=run.created_by, **version
        )
    run.status = RunStatus.SUCCEEDED
    run.summary = summary
    run.result_version = registered
    run.finished_at = run.heartbeat_at = timezone.now()
    run.save(update_fields=["status", "summary", "result_version", "finished_at", "heartbeat_at"])
    return registered


def training_run_fail(*, run: TrainingRun, reason: str, cancelled: bool = False) -> None:
    """Finish a run as failed (or cancelled) with its reason; it registers nothing."""
    TrainingRun.objects.filter(pk=run.pk).update(
        status=RunStatus.CANCELLED if cancelled else RunStatus.FAILED,
        failure_reason=reason[:2000],
        finished_at=timezone.now(),
    )


@transaction.atomic
def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Stop a run: a queued one at once, a running one at its next step.

    Raises:
        TrainingError: the run has finished already.
    """
    run = TrainingRun.objects.select_for_update().get(pk=run.pk)
    if run.finished:
        raise TrainingError(f"run {run.pk} has {run.status} already; there is nothing to cancel")
    run.cancel_requested = True
    fields = ["cancel_requested"]
    if run.status == RunStatus.QUEUED:
        run.status, run.finished_at = RunStatus.CANCELLED, timezone.now()
        fields += ["status", "finished_at"]
    run.save(update_fields=fields)
    return run


def training_runs_reap_stale(*, stale_after_s: float) -> list[int]:
    """Requeue runs whose worker went silent (it died); fail those that died ``RUN_MAX_ATTEMPTS`` times.

    Returns the ids of requeued runs. Nothing is lost: a requeued run starts again from its inputs, which are
    snapshots, and a run registers its model version only in the transaction that marks it succeeded.
    """
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    requeued = []
    stale = TrainingRun.objects.filter(status=RunStatus.RUNNING).filter(Q(heartbeat_at__lt=cutoff))
    for run_id in stale.values_list("pk", flat=True):
        with transaction.atomic():
            run = TrainingRun.objects.select_for_update().get(pk=run_id)
            if run.status != RunStatus.RUNNING or (run.heartbeat_at and run.heartbeat_at >= cutoff):
                continue
            if run.attempts >= RUN_MAX_ATTEMPTS:
                run.status, run.finished_at = RunStatus.FAILED, timezone.now()
                run.failure_reason = f"its worker stopped answering {run.attempts} times (killed or out of memory)"
                run.save(update_fields=["status", "finished_at", "failure_reason"])
                continue
            run.status = RunStatus.QUEUED
            run.save(update_fields=["status"])
            transaction.on_commit(functools.partial(_enqueue, run.pk))
            requeued.append(run.pk)
    return requeued


@transaction.atomic
def dataset_export_register(
    *,
    kind: str,
    name: str,
    options: dict[str, Any],
    counts: dict[str, Any],
    directory: str,
    files: dict[str, str],
    checksum: str,
    captioner_base_model_id: str,
    created_by: User | None = None,
) -> DatasetExport:
    """Record a snapshot whose files are written and complete (the caller writes, then registers)."""
    return DatasetExport.objects.create(
        kind=kind,
        name=name,
        options=options,
        counts=counts,
        directory=directory,
        files=files,
        checksum=checksum,
        captioner_base_model_id=captioner_base_model_id,
        created_by=created_by,
    )


def training_run_attach_export(*, run: TrainingRun, export: DatasetExport) -> None:
    TrainingRun.objects.filter(pk=run.pk).update(dataset_export=export)
    run.dataset_export = export


def model_version_metrics_update(*, version: ModelVersion, metrics: dict[str, Any]) -> None:
    """Merge new metrics (an evaluation table, say) into a version's."""
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        locked.metrics = {**locked.metrics, **metrics}
        locked.save(update_fields=["metrics"])
