"""Celery tasks of training: thin (a run id in, the runner does the work and records the outcome)."""

import logging
import socket

from celery import shared_task
from django.conf import settings

from labelstudio_site.training import services

logger = logging.getLogger(__name__)


# acks_late: a worker killed mid-run leaves the message to be redelivered; the claim then sees the silent heartbeat
# and restarts the run from its snapshot inputs (the reaper does the same when the message is gone too).
@shared_task(name="training.run_task", acks_late=True)
def training_run_task(run_id: int) -> str:
    """Run one training or evaluation run to its end; returns its final status."""
    from labelstudio_site.training.runners import execute

    run = services.training_run_claim(
        run_id=run_id, worker=socket.gethostname(), stale_after_s=settings.ALBUMGEN_RUN_STALE_AFTER_S
    )
    if run is None:
        return "skipped"
    execute(run)
    run.refresh_from_db()
    return run.status


@shared_task(name="training.runs_reap_task")
def training_runs_reap_task() -> int:
    """Requeue runs whose worker died (run periodically by beat)."""
    requeued = services.training_runs_reap_stale(stale_after_s=settings.ALBUMGEN_RUN_STALE_AFTER_S)
    if requeued:
        logger.warning("requeued %d training runs whose worker went silent: %s", len(requeued), requeued)
    return len(requeued)


@shared_task(name="training.preference_export_task")
def preference_export_task(export_id: int) -> str:
    """Write the files of a preference export the web started; its row says ready or failed (with the reason)."""
    from labelstudio_site.training.exports import ExportError, preference_export_build
    from labelstudio_site.training.models import DatasetExport, ExportStatus

    export = DatasetExport.objects.filter(pk=export_id, status=ExportStatus.BUILDING).first()
    if export is None:
        return "skipped"
    try:
        preference_export_build(export=export)
    except ExportError as exc:
        logger.warning("preference export %d failed: %s", export_id, exc)
    return export.status
