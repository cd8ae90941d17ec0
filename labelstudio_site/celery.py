"""The Celery app: queues ``gpu`` (generation), ``train`` (training), ``default``; configured from Django settings."""

from pathlib import Path

from celery import Celery
from celery.signals import worker_ready

from labelstudio_site.startup import require_valid_settings

require_valid_settings()

app = Celery("labelstudio_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _create_broker_folders(sender: Celery, **kwargs: object) -> None:
    """The file-system transport expects its folders to exist, in producers and workers alike."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if key in options:
            Path(options[key]).mkdir(parents=True, exist_ok=True)


@worker_ready.connect
def _reap_on_start(sender: object, **kwargs: object) -> None:
    """A worker starting after a crash requeues the batches its predecessor left running (by task name: the studio
    app is not loaded yet when this module is)."""
    app.send_task("studio.variants_reap_task")
