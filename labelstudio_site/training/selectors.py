"""Reads of model versions, dataset snapshots and training runs."""

from collections import deque
from pathlib import Path
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from labelstudio_site.training.models import DatasetExport, ModelKind, ModelVersion, TrainingRun

LOG_TAIL_LINES = 200


def captioner_version_latest(*, profile: str) -> ModelVersion | None:
    """The newest captioner version of a profile: what a round uses when none is named."""
    return ModelVersion.objects.filter(kind=ModelKind.CAPTIONER, profile=profile).order_by("-created_at", "-pk").first()


def model_version_list(*, kind: str | None = None) -> QuerySet[ModelVersion]:
    versions = ModelVersion.objects.select_related("parent").order_by("-created_at", "-pk")
    return versions.filter(kind=kind) if kind else versions


def dataset_export_list(*, kind: str | None = None) -> QuerySet[DatasetExport]:
    exports = DatasetExport.objects.order_by("-created_at", "-pk")
    return exports.filter(kind=kind) if kind else exports


def training_run_list() -> QuerySet[TrainingRun]:
    return TrainingRun.objects.select_related("parent_version", "result_version", "created_by").order_by(
        "-created_at", "-pk"
    )


def training_run_progress(*, run: TrainingRun, log_path: Path | None = None) -> dict[str, Any]:
    """What the run page shows and polls: status, step/total with ETA, the curves and the log's tail."""
    eta_s = None
    elapsed_s = None
    if run.started_at is not None:
        end = run.finished_at or timezone.now()
        elapsed_s = max((end - run.started_at).total_seconds(), 0.0)
        if not run.finished and run.step and run.total_steps > run.step:
            eta_s = elapsed_s / run.step * (run.total_steps - run.step)
    curves: dict[str, list[list[float]]] = {}
    for step, values in run.points.order_by("step", "pk").values_list("step", "values"):
        for name, value in values.items():
            curves.setdefault(name, []).append([step, value])
    return {
        "id": run.pk,
        "kind": run.kind,
        "status": run.status,
        "finished": run.finished,
        "step": run.step,
        "total_steps": run.total_steps,
        "percent": round(100 * run.step / run.total_steps, 1) if run.total_steps else 0.0,
        "elapsed_s": round(elapsed_s, 1) if elapsed_s is not None else None,
        "eta_s": round(eta_s, 1) if eta_s is not None else None,
        "cancel_requested": run.cancel_requested,
        "failure_reason": run.failure_reason,
        "curves": curves,
        "log": log_tail(log_path) if log_path else [],
        "result_version_id": run.result_version_id,
        "summary": run.summary,
    }


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a run's log (empty before the worker starts it)."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", errors="replace") as log:
        return [line.rstrip("\n") for line in deque(log, maxlen=lines)]
