"""Training runs end to end on the tiny profile: SFT registers a captioner version with its evaluation; failed and
cancelled runs register nothing; the reaper restarts runs whose worker died; launches are checked."""

from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from labelstudio_site.training import services, tasks
from labelstudio_site.training.models import DatasetExport, ModelKind, ModelVersion, RunStatus, TrainingRun
from labelstudio_site.training.paths import model_dir, run_log_path
from labelstudio_site.training.runners import execute
from labelstudio_site.training.services import TrainingError, model_version_base_ensure
from rlhf.snapshot import read_jsonl

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "musicoset"
# A quick trial: six covers, three steps, three held-out covers; a learning rate the tiny twin feels.
QUICK_SFT = {
    "max_covers": 6,
    "per_device_train_batch_size": 2,
    "learning_rate": 3e-2,
    "eval_limit": 1,
    "warmup_ratio": 0.0,
}

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def storage(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ALBUMGEN_ARTIFACTS_DIR = tmp_path / "artifacts"
    settings.ALBUMGEN_INDEX_DIR = tmp_path / "index"
    sent: list[int] = []
    monkeypatch.setattr(tasks.training_run_task, "delay", sent.append)
    return sent


@pytest.fixture
def catalog(settings):
    call_command("import_musicoset", str(FIXTURE), stdout=StringIO())
    call_command(
        "build_index", "--profile", "tiny", "--out", str(settings.ALBUMGEN_INDEX_DIR / "tiny"), stdout=StringIO()
    )


def launch_sft(name: str = "sft-1", **config: object) -> TrainingRun:
    base = model_version_base_ensure(profile="tiny")
    return services.training_run_create(kind="sft", name=name, config={**QUICK_SFT, **config}, parent_version=base)


def test_an_sft_run_registers_a_captioner_version_with_lineage_curves_log_and_evaluation(catalog, storage):
    run = launch_sft()
    assert storage == []  # queued after the launch's transaction commits, not before
    assert tasks.training_run_task(run.pk) == RunStatus.SUCCEEDED

    run.refresh_from_db()
    version = run.result_version
    assert version is not None and version.kind == ModelKind.CAPTIONER and version.name == "sft-1"
    assert version.parent == run.parent_version and version.profile == "tiny"
    assert Path(version.adapter_path) == model_dir(run)
    assert (model_dir(run) / "adapter_config.json").is_file()
    assert run.step == run.total_steps == 3
    losses = [p.values["loss"] for p in run.points.order_by("step") if "loss" in p.values]
    assert len(losses) == 3
    assert run.summary["trainable_parameters"] < run.summary["total_parameters"]
    assert "trainable parameters" in run_log_path(run).read_text()

    export = run.dataset_export
    assert export is not None and export.kind == "sft" and export.counts == {"rows": 6, "covers": 6}
    stored = list(read_jsonl(services_path(export)))
    assert len(stored) == 6 and {m["role"] for m in stored[0]["messages"]} == {"user", "assistant"}

    methods = [row["method"] for row in version.metrics["evaluation"]["rows"]]
    assert methods[:4] == ["zero-shot constrained", "zero-shot unconstrained", "RAG constrained", "RAG unconstrained"]
    assert "retrieval baseline K=20" in methods
    constrained = version.metrics["evaluation"]["rows"][0]
    assert constrained["valid"] == constrained["attempted"] == 1
    run.parent_version.refresh_from_db()
    assert "evaluation" in run.parent_version.metrics  # the base is measured once, for comparison


def services_path(export: DatasetExport) -> Path:
    from django.conf import settings

    return settings.ALBUMGEN_ARTIFACTS_DIR / export.directory / export.files["jsonl"]


def test_an_sft_run_on_an_empty_split_fails_with_its_reason_and_registers_nothing(settings):
    run = launch_sft()
    assert tasks.training_run_task(run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert "train split has no album with a cover" in run.failure_reason
    assert run.result_version is None
    assert not ModelVersion.objects.filter(name="sft-1").exists()
    assert not model_dir(run).exists()


def test_a_run_cancelled_while_it_trains_stops_and_registers_nothing(catalog):
    run = launch_sft()
    claimed = services.training_run_claim(run_id=run.pk, worker="test", stale_after_s=60)
    assert claimed is not None
    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    execute(claimed)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.failure_reason == "cancelled by an admin"
    assert not ModelVersion.objects.filter(name="sft-1").exists()
    assert not model_dir(run).exists()


def test_cancel_of_a_queued_run_is_immediate_and_of_a_finished_run_an_error():
    run = launch_sft()
    assert services.training_run_cancel(run=run).status == RunStatus.CANCELLED
    assert tasks.training_run_task(run.pk) == "skipped"
    with pytest.raises(TrainingError, match="has cancelled already; there is nothing to cancel"):
        services.training_run_cancel(run=run)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "give the model version this run registers a name"),
        ({"config": {"lora_r": 0}}, "invalid sft option: lora_r"),
        ({"config": {"epochs": 3}}, "unknown sft option(s): epochs"),
        ({"kind": "ppo"}, "unknown run kind 'ppo'"),
        ({"parent_version": None}, "needs a captioner version to start from"),
    ],
)
def test_bad_launches_are_refused_with_a_sentence_and_write_nothing(changes, message, storage):
    base = model_version_base_ensure(profile="tiny")
    launch = {"kind": "sft", "name": "x", "config": {}, "parent_version": base, **changes}
    with pytest.raises(TrainingError) as error:
        services.training_run_create(**launch)
    assert message in str(error.value)
    assert not TrainingRun.objects.exists() and storage == []


def test_a_name_in_use_and_sft_from_an_adapter_are_refused():
    base = model_version_base_ensure(profile="tiny")
    tuned = ModelVersion.objects.create(kind="captioner", name="tuned", profile="tiny", adapter_path="/x", parent=base)
    with pytest.raises(TrainingError, match="named 'tuned' exists already"):
        services.training_run_create(kind="sft", name="tuned", config={}, parent_version=base)
    with pytest.raises(TrainingError, match="SFT starts from a base captioner version"):
        services.training_run_create(kind="sft", name="again", config={}, parent_version=tuned)


def test_the_reaper_restarts_a_run_whose_worker_died_and_gives_up_after_three_deaths(storage):
    run = launch_sft()
    services.training_run_claim(run_id=run.pk, worker="dead", stale_after_s=60)
    # A live worker's run is left alone; a duplicate delivery does not start it twice.
    assert services.training_runs_reap_stale(stale_after_s=60) == []
    assert services.training_run_claim(run_id=run.pk, worker="other", stale_after_s=60) is None
    for attempt in (1, 2, 3):
        TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
        requeued = services.training_runs_reap_stale(stale_after_s=60)
        run.refresh_from_db()
        if attempt < 3:
            assert requeued == [run.pk] and run.status == RunStatus.QUEUED
            assert services.training_run_claim(run_id=run.pk, worker="next", stale_after_s=60) is not None
        else:
            assert requeued == [] and run.status == RunStatus.FAILED
            assert "stopped answering 3 times" in run.failure_reason
