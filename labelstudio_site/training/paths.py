"""Where a run's files live in artifact storage (a volume the web and every worker share)."""

from pathlib import Path

from django.conf import settings

from labelstudio_site.training.models import TrainingRun


def run_dir(run: TrainingRun) -> Path:
    return settings.ALBUMGEN_ARTIFACTS_DIR / "runs" / str(run.pk)


def run_log_path(run: TrainingRun) -> Path:
    return run_dir(run) / "run.log"


def model_dir(run: TrainingRun) -> Path:
    """Where a training run stages and keeps the model it registers."""
    return settings.ALBUMGEN_ARTIFACTS_DIR / "models" / run.kind / f"run-{run.pk}"
