"""An admin exports preferences and launches a reward-model run from the browser; a worker thread trains it (TRL
RewardTrainer on the cover-aware reward model) while the page polls: the step count reaches the total, the loss and
accuracy curves are drawn, the log fills, the held-out figures appear with the small-evaluation warning, and the
registered reward version is linked."""

import re
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from labelstudio_site.training import tasks
from labelstudio_site.training.models import RunPoint, TrainingRun
from tests.browser.test_round_page import CHROMIUM, ROOT, page  # noqa: F401 - page is the fixture of the browser tests
from tests.training.test_exports import artifacts, build, embed_covers, labeled_round  # noqa: F401 - a fixture

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (dev extra)")
# Under var/ (ignored); benchmarks/results/run_page.png keeps the published copy.
SCREENSHOT = ROOT / "var" / "screenshots" / "run_page.png"


@pytest.fixture
def worker_thread(monkeypatch):
    """Plays the train-queue worker: a queued run is trained on a thread, as a worker process would, while the
    browser polls the live server."""
    threads: list[threading.Thread] = []

    def train(run_id: int) -> None:
        try:
            tasks.training_run_task(run_id)
        finally:
            connection.close()

    def delay(run_id: int) -> None:
        thread = threading.Thread(target=train, args=(run_id,))
        threads.append(thread)
        thread.start()

    monkeypatch.setattr(tasks.training_run_task, "delay", delay)
    yield threads
    for thread in threads:
        thread.join(timeout=120)


def test_an_admin_launches_a_reward_run_and_watches_it_finish(page, live_server, worker_thread, tmp_path):  # noqa: F811
    expect = sync_api.expect
    generation_round = labeled_round({"ann": [2, 1, 0], "bob": [2, 1, 0], "cy": [1, 2, 0]})
    for embedder in ("tiny-clip:clip:seed0", "tiny-internvl:captioner:seed0#image-tokens"):
        embed_covers({cover.pk: embedder for cover in generation_round.covers.all()})
    export = build()
    get_user_model().objects.create_user("boss", password="boss-pass-123", is_staff=True)

    page.goto(f"{live_server.url}/studio/admin/training/launch/reward/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "boss-pass-123")
    page.click("button:has-text('Sign in')")
    page.fill("#id_name", "rm-browser")
    page.select_option("#id_dataset_export", str(export.pk))
    page.fill("#id_option_num_train_epochs", "3")
    page.fill("#id_option_per_device_train_batch_size", "2")
    page.fill("#id_option_eval_fraction", "0.5")
    page.click("button:has-text('Launch on the train queue')")

    expect(page).to_have_url(re.compile(r"/studio/admin/training/runs/\d+/$"))
    expect(page.locator("h1")).to_contain_text("reward")
    # The worker thread trains while the page polls progress.json; it reaches the end without a reload.
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=120_000)
    run = TrainingRun.objects.get(name="rm-browser")
    assert run.total_steps and run.step == run.total_steps
    expect(page.locator("#run-step")).to_have_text(str(run.total_steps))
    expect(page.locator("#run-total")).to_have_text(str(run.total_steps))
    expect(page.locator("#run-result")).to_contain_text("rm-browser")
    expect(page.locator("#cancel-form")).to_have_count(0)

    logged = {name for point in RunPoint.objects.filter(run=run) for name in point.values}
    # Curves of the training metrics; the Trainer's one-off end summary stays in the log.
    assert {"loss", "accuracy", "learning_rate"} <= logged and not logged & {"train_runtime", "total_flos"}
    for metric in logged:
        curve = page.locator(f"figure.curve[data-metric='{metric}'] polyline")
        expect(curve).to_have_count(1)
        points = RunPoint.objects.filter(run=run, values__has_key=metric).count()
        assert len(curve.get_attribute("points").split()) == points
    expect(page.locator("#run-log")).to_contain_text("held-out pair accuracy")
    # The held-out figures: overall with its interval, per cover group, and the warning that one cover means little.
    table = page.locator("#reward-evaluation")
    expect(table.locator("tr.overall")).to_contain_text("All held-out pairs")
    expect(table.locator("tr.group")).to_have_count(1)
    expect(page.locator("#evaluation-warning")).to_contain_text("only 9 held-out pair(s) of 1 cover(s)")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
