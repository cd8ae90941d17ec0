"""Reward runs from the platform: a preference export (pairs and the covers' stored embeddings) -> TRL RewardTrainer
-> a reward model version with its lineage and held-out figures; bad exports are refused with nothing registered."""

import pytest

from labelstudio_site.training import services, tasks
from labelstudio_site.training.exports import PreferenceExportOptions, preference_export_build, preference_export_start
from labelstudio_site.training.models import DatasetExport, ModelKind, ModelVersion, RunStatus
from labelstudio_site.training.services import TrainingError
from tests.training.test_exports import embed_covers, labeled_round

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker(artifacts, monkeypatch):
    monkeypatch.setattr(tasks.training_run_task, "delay", lambda run_id: None)


@pytest.fixture
def artifacts(settings, tmp_path):
    from labelstudio_site.catalog.models import Album
    from tests.training.test_exports import POP

    settings.ALBUMGEN_ARTIFACTS_DIR = tmp_path / "artifacts"
    Album.objects.create(musicoset_id="a1", name="a1", genre="pop", split="train", features=POP.to_dict())
    return settings.ALBUMGEN_ARTIFACTS_DIR


CLIP, CAPTIONER = "tiny-clip:clip:seed0", "tiny-internvl:captioner:seed0#image-tokens"


def test_a_reward_run_registers_a_reward_version_with_its_export_and_accuracy():
    generation_round = labeled_round({"ann": [2, 1, 0], "bob": [2, 1, 0]})
    for embedder in (CLIP, CAPTIONER):
        embed_covers({cover.pk: embedder for cover in generation_round.covers.all()})
    export = preference_export_build(export=preference_export_start(name="p", options=PreferenceExportOptions()))
    config = {"eval_fraction": 0.5, "num_train_epochs": 2, "per_device_train_batch_size": 4}
    run = services.training_run_create(kind="reward", name="rm-1", config=config, dataset_export=export)
    assert tasks.training_run_task(run.pk) == RunStatus.SUCCEEDED
    run.refresh_from_db()
    version = run.result_version
    # It reads the covers through the CLIP by default.
    assert version.kind == ModelKind.REWARD and version.base_model_id == CLIP
    assert version.metrics["export_id"] == export.pk
    assert version.metrics["captioner_base_model_id"] == "tiny-internvl:captioner:seed0"
    assert version.metrics["eval_covers"] == 1 and version.metrics["train_covers"] == 1
    after = version.metrics["reward_evaluation"]["after"]
    assert after["overall"]["accuracy"] == version.metrics["eval_accuracy_after"]
    # One held-out cover: the run says its figure means little.
    assert after["warning"].startswith("only 6 held-out pair(s) of 1 cover(s)")
    assert run.points.filter(values__has_key="loss").exists()


def test_a_captioner_reader_trains_on_the_captioners_embeddings_or_fails_with_a_sentence_without_them():
    generation_round = labeled_round({"ann": [2, 1, 0], "bob": [2, 1, 0]})
    embed_covers({cover.pk: CLIP for cover in generation_round.covers.all()})  # rendered before a release stored both
    export = preference_export_build(export=preference_export_start(name="p", options=PreferenceExportOptions()))
    config = {"eval_fraction": 0.5, "num_train_epochs": 1, "cover_encoder": "captioner"}
    run = services.training_run_create(kind="reward", name="rm-1", config=config, dataset_export=export)
    assert tasks.training_run_task(run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert f"hold no captioner embeddings (only {CLIP};" in run.failure_reason
    assert not ModelVersion.objects.filter(kind=ModelKind.REWARD).exists()
    embed_covers({cover.pk: CAPTIONER for cover in generation_round.covers.all()})
    export = preference_export_build(export=preference_export_start(name="q", options=PreferenceExportOptions()))
    run = services.training_run_create(kind="reward", name="rm-2", config=config, dataset_export=export)
    assert tasks.training_run_task(run.pk) == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert run.result_version.base_model_id == CAPTIONER


def test_a_reward_run_on_covers_without_embeddings_fails_and_registers_nothing():
    labeled_round({"ann": [2, 1, 0]})
    export = preference_export_build(export=preference_export_start(name="p", options=PreferenceExportOptions()))
    run = services.training_run_create(kind="reward", name="rm-1", config={}, dataset_export=export)
    assert tasks.training_run_task(run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert "2 cover(s) of the pairs have no stored embedding" in run.failure_reason
    assert not ModelVersion.objects.filter(kind=ModelKind.REWARD).exists()


def test_a_reward_run_on_an_export_of_another_format_is_refused():
    sft = DatasetExport.objects.create(kind="sft", name="s", directory="x", checksum="0")
    with pytest.raises(TrainingError, match="is a sft set, not preference pairs in albumgen-preferences-v1"):
        services.training_run_create(kind="reward", name="rm", config={}, dataset_export=sft)
    old = DatasetExport.objects.create(kind="preferences", name="p", options={"format": "v0"})
    with pytest.raises(TrainingError, match="is v0, not preference pairs"):
        services.training_run_create(kind="reward", name="rm", config={}, dataset_export=old)


def test_a_reward_run_on_an_export_without_covers_or_of_one_cover_is_refused_at_launch():
    from labelstudio_site.training.models import ExportStatus, TrainingRun
    from rlhf.pairs import PREFERENCE_FORMAT

    fields = {"kind": "preferences", "options": {"format": PREFERENCE_FORMAT}, "status": ExportStatus.READY}
    before = DatasetExport.objects.create(name="old", files={"jsonl": "pairs.jsonl"}, counts={"covers": 9}, **fields)
    with pytest.raises(TrainingError, match="made before exports held the covers' embeddings"):
        services.training_run_create(kind="reward", name="rm", config={}, dataset_export=before)
    one = DatasetExport.objects.create(
        name="one", files={"jsonl": "pairs.jsonl", "covers": "covers.parquet"}, counts={"covers": 1}, **fields
    )
    with pytest.raises(TrainingError, match="has pairs of 1 cover"):
        services.training_run_create(kind="reward", name="rm", config={}, dataset_export=one)
    assert not TrainingRun.objects.exists()


def test_an_rl_run_with_a_reward_model_of_another_captioner_base_is_refused():
    from labelstudio_site.training.services import model_version_base_ensure

    base = model_version_base_ensure(profile="tiny")
    other = ModelVersion.objects.create(
        kind="reward", name="rm-other", profile="tiny", metrics={"captioner_base_model_id": "org/other-vlm"}
    )
    with pytest.raises(TrainingError, match="judged outputs of the captioner base 'org/other-vlm'"):
        services.training_run_create(kind="rl", name="rl-1", config={}, parent_version=base, reward_version=other)
    same = ModelVersion.objects.create(
        kind="reward", name="rm", profile="tiny", metrics={"captioner_base_model_id": "tiny-internvl:captioner:seed0"}
    )
    run = services.training_run_create(
        kind="rl", name="rl-1", config={"beta": 0.1}, parent_version=base, reward_version=same
    )
    assert run.config["beta"] == 0.1 and run.status == RunStatus.QUEUED
