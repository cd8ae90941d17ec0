"""Training admin pages and API: staff only; launch forms built from the config dataclasses; run page; cancel."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from labelstudio_site.training import services, tasks
from labelstudio_site.training.models import ModelVersion, RunStatus, TrainingRun
from labelstudio_site.training.paths import run_log_path
from labelstudio_site.training.services import model_version_base_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker(settings, tmp_path, monkeypatch):
    settings.ALBUMGEN_ARTIFACTS_DIR = tmp_path / "artifacts"
    sent: list[int] = []
    monkeypatch.setattr(tasks.training_run_task, "delay", sent.append)
    return sent


@pytest.fixture
def admin():
    return get_user_model().objects.create_user("boss", password="boss-pass-123", is_staff=True)


@pytest.fixture
def staff_client(client, admin):
    client.force_login(admin)
    return client


def test_training_pages_are_for_staff_only(client):
    base = model_version_base_ensure(profile="tiny")
    pages = [
        "/studio/admin/training/",
        "/studio/admin/training/launch/sft/",
        f"/studio/admin/training/versions/{base.pk}/",
    ]
    for page in pages:
        assert client.get(page).status_code == 302
    labeler = get_user_model().objects.create_user("lab", password="lab-pass-123")
    client.force_login(labeler)
    for page in pages:
        assert client.get(page).status_code == 403
    assert client.post("/api/training-runs/", {"kind": "sft"}, content_type="application/json").status_code == 403


def test_the_sft_launch_form_shows_every_option_with_the_papers_defaults(staff_client):
    model_version_base_ensure(profile="tiny")
    page = staff_client.get("/studio/admin/training/launch/sft/").content.decode()
    for option, default in [("learning_rate", "4e-05"), ("lora_r", "4"), ("warmup_ratio", "0.03")]:
        assert f'name="option_{option}"' in page
        assert f'value="{default}"' in page
    assert "LoRA rank (paper: 4)." in page


def test_a_launch_from_the_form_queues_a_run_and_shows_its_page(
    staff_client, no_broker, django_capture_on_commit_callbacks
):
    base = model_version_base_ensure(profile="tiny")
    form = {f"option_{k}": v for k, v in services.run_config_validate(kind="sft", config={}).items()}
    form.update({"name": "my-sft", "parent_version": base.pk, "option_lora_r": 8})
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post("/studio/admin/training/launch/sft/", form)
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/studio/admin/training/runs/{run.pk}/"
    assert run.config["lora_r"] == 8 and run.config["learning_rate"] == 4e-5 and run.created_by.username == "boss"
    assert no_broker == [run.pk]
    page = staff_client.get(response["Location"]).content.decode()
    assert "Registers <strong>my-sft</strong>" in page and "Cancel run" in page


def test_a_bad_option_in_the_form_is_a_400_with_the_reason(staff_client):
    base = model_version_base_ensure(profile="tiny")
    form = {f"option_{k}": v for k, v in services.run_config_validate(kind="sft", config={}).items()}
    form.update({"name": "x", "parent_version": base.pk, "option_context": "few-shot"})
    response = staff_client.post("/studio/admin/training/launch/sft/", form)
    assert response.status_code == 400
    assert "context must be one of rag, zero-shot, both" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_the_run_page_and_progress_show_steps_eta_curves_and_log(staff_client):
    run = services.training_run_create(
        kind="sft", name="s", config={}, parent_version=model_version_base_ensure(profile="tiny")
    )
    services.training_run_claim(run_id=run.pk, worker="w", stale_after_s=60)
    for step, loss in [(1, 2.0), (2, 1.5)]:
        services.training_run_progress(run_id=run.pk, step=step, total_steps=4, values={"loss": loss})
    run_log_path(run).parent.mkdir(parents=True)
    run_log_path(run).write_text("step 1/4: loss=2\nstep 2/4: loss=1.5\n")
    progress = staff_client.get(f"/studio/admin/training/runs/{run.pk}/progress.json").json()
    assert progress["status"] == "running" and progress["step"] == 2 and progress["percent"] == 50.0
    assert progress["curves"] == {"loss": [[1, 2.0], [2, 1.5]]}
    assert progress["eta_s"] is not None and progress["log"][-1] == "step 2/4: loss=1.5"
    page = staff_client.get(f"/studio/admin/training/runs/{run.pk}/").content.decode()
    assert "step 2/4: loss=1.5" in page and 'id="curves-data"' in page


def test_cancel_over_the_page_and_the_api(staff_client, admin):
    base = model_version_base_ensure(profile="tiny")
    run = services.training_run_create(kind="sft", name="s", config={}, parent_version=base)
    services.training_run_claim(run_id=run.pk, worker="w", stale_after_s=60)
    staff_client.post(f"/studio/admin/training/runs/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.cancel_requested and run.status == RunStatus.RUNNING  # the worker stops at its next step
    services.training_run_fail(run=run, reason="cancelled by an admin", cancelled=True)
    token = Token.objects.create(user=admin)
    response = staff_client.post(f"/api/training-runs/{run.pk}/cancel/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 409
    assert response.json()["detail"] == f"run {run.pk} has cancelled already; there is nothing to cancel"


def test_the_api_launches_runs_and_refuses_bad_ones(staff_client):
    base = model_version_base_ensure(profile="tiny")
    ok = staff_client.post(
        "/api/training-runs/",
        {"kind": "evaluate", "parent_version_id": base.pk, "config": {"limit": 3}},
        content_type="application/json",
    )
    assert ok.status_code == 201 and ok.json()["status"] == "queued"
    for body, message in [
        ({"kind": "sft", "name": "a", "parent_version_id": 999}, "there is no model version 999"),
        ({"kind": "sft", "name": "a", "parent_version_id": base.pk, "config": {"lr": 1}}, "unknown sft option(s): lr"),
        ({"kind": "reward", "name": "r"}, "a reward run needs a preference export"),
    ]:
        response = staff_client.post("/api/training-runs/", body, content_type="application/json")
        assert response.status_code == 400 and message in response.json()["detail"], response.json()
    assert TrainingRun.objects.count() == 1


def test_the_version_page_shows_lineage_and_the_evaluation_table(staff_client):
    base = model_version_base_ensure(profile="tiny")
    rows = [
        {"method": "RAG constrained", "valid": 3, "attempted": 3, "mse": 0.0421, "genre_accuracy": 0.5},
        {"method": "retrieval baseline K=5", "valid": 3, "attempted": 3, "mse": 0.031, "genre_accuracy": 1 / 3},
    ]
    tuned = ModelVersion.objects.create(
        kind="captioner",
        name="tuned",
        profile="tiny",
        adapter_path="/a",
        parent=base,
        metrics={"evaluation": {"split": "test", "covers": 3, "seed": 0, "rows": rows}},
    )
    page = staff_client.get(f"/studio/admin/training/versions/{tuned.pk}/").content.decode()
    assert "RAG constrained" in page and "3/3" in page and "0.0421" in page and "50%" in page
    assert f'href="/studio/admin/training/versions/{base.pk}/"' in page
    assert "Not evaluated yet" in staff_client.get(f"/studio/admin/training/versions/{base.pk}/").content.decode()


def test_the_reward_launch_form_offers_the_cover_encoders_as_a_choice_and_refuses_another(staff_client):
    page = staff_client.get("/studio/admin/training/launch/reward/").content.decode()
    select = page[
        page.index('name="option_cover_encoder"') : page.index("</select>", page.index("option_cover_encoder"))
    ]
    assert '<option value="clip" selected>' in select and '<option value="captioner">' in select
    form = {f"option_{k}": v for k, v in services.run_config_validate(kind="reward", config={}).items()}
    response = staff_client.post("/studio/admin/training/launch/reward/", {**form, "option_cover_encoder": "pixels"})
    assert response.status_code == 400
    assert "Select a valid choice. pixels is not one of the available choices." in response.content.decode()
    assert not TrainingRun.objects.exists()
