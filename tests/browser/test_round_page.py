"""An admin signs in, uploads covers, starts a round and watches its page reach 100% as variants finish."""

import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone

from generation.encode import encode_audio, waveform_peaks
from generation.features import AcousticFeatures
from generation.render import RenderRequest
from generation.synth import SynthRenderer
from labelstudio_site.studio import services, tasks
from labelstudio_site.studio.models import GenerationRound, Variant, VariantStatus

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# Under var/ (ignored): a test run must not change tracked files; benchmarks/results keeps the published copy.
SCREENSHOT = ROOT / "var" / "screenshots" / "round_page.png"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-dev-shm-usage",
]
COVERS = [
    ROOT / "fixtures" / "musicoset" / "covers" / name
    for name in ("01MOM6s0zqy8QZPGhCazAs.png", "08vMvfs2fl9bOzR5Hj08X1.png")
]

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (dev extra)")


@pytest.fixture
def page(live_server, monkeypatch, settings, tmp_path):
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.MEDIA_ROOT = tmp_path / "media"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(15_000)
        yield page
        browser.close()


@pytest.fixture
def sent_tasks(monkeypatch):
    """No worker runs here: the round's GPU tasks are recorded, and the test plays the worker."""
    sent: list[tuple] = []
    monkeypatch.setattr(tasks.cover_generate_task, "delay", lambda *args: sent.append(args))
    return sent


def finish_like_a_worker(round_id: int) -> None:
    """Store what a worker would: neighbours, raw JSON, prompt, timings and a real 1.5 s synth clip per variant."""
    features = AcousticFeatures(
        genre="jazz",
        key="D",
        mode="minor",
        time_signature=4,
        tempo=96.0,
        loudness=-9.0,
        acousticness=0.6,
        danceability=0.5,
        energy=0.4,
        instrumentalness=0.8,
        liveness=0.1,
        speechiness=0.05,
        valence=0.3,
    )
    variants = list(Variant.objects.filter(round_id=round_id).order_by("cover_id", "index"))
    renderer = SynthRenderer()
    clips = renderer.render([RenderRequest(prompt="", features=features)] * len(variants), seed=3, duration_s=1.5)
    started = timezone.now() - timezone.timedelta(seconds=30)
    for variant, samples in zip(variants, clips, strict=True):
        encoded = encode_audio(samples, renderer.sample_rate)
        variant.neighbours = [
            {"album_id": "x1", "name": "Kind of Blue", "genre": "jazz", "distance": 0.4123, "features": {}},
            {"album_id": "x2", "name": "Mezzanine", "genre": "electronic", "distance": 0.5311, "features": {}},
        ]
        variant.raw_text = features.to_json()
        variant.features = features.to_dict()
        variant.prompt = f"moody minor-key jazz at 96 bpm, sparse and acoustic (variant {variant.index})"
        variant.timings = {"embed": 0.012, "retrieve": 0.001, "caption": 0.84, "render": 0.35, "encode": 0.07}
        variant.audio.save(f"{variant.pk}.{encoded.extension}", ContentFile(encoded.data), save=False)
        variant.audio_mime, variant.duration_s = encoded.mime_type, encoded.duration_s
        variant.peaks = waveform_peaks(samples)
        variant.status, variant.started_at, variant.finished_at = VariantStatus.DONE, started, timezone.now()
        variant.worker = "gpu-worker-1"
        variant.save()
    services.round_status_refresh(round_id=round_id)


def test_admin_uploads_covers_starts_a_round_and_watches_it_finish(page, live_server, sent_tasks, tmp_path):
    expect = sync_api.expect
    get_user_model().objects.create_user("boss", password="boss-pass-123", is_staff=True)
    uploads = []
    for path in COVERS:
        uploads.append(tmp_path / path.name)
        shutil.copy(path, uploads[-1])

    page.goto(f"{live_server.url}/studio/admin/covers/upload/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    page.fill("#id_username", "boss")
    page.fill("#id_password", "boss-pass-123")
    page.click("button:has-text('Sign in')")
    expect(page.locator("h1")).to_have_text("Upload covers")

    page.set_input_files("#id_images", [str(p) for p in uploads])
    page.click("button:has-text('Upload')")
    expect(page.locator("#stored-count")).to_have_text("2")
    expect(page.locator("#rejected-count")).to_have_text("0")

    page.click("text=Start a round")
    page.check("#id_all_covers")
    page.fill("#id_name", "browser round")
    page.fill("#id_variants_per_cover", "2")
    page.fill("#id_seed", "5")
    page.fill("#id_duration_s", "1.5")
    page.fill("#id_gold_rate", "0.1")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    for width, height, name in ((1280, 720, "round_form.png"), (390, 844, "round_form_phone.png")):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SCREENSHOT.with_name(name)), full_page=True)
    page.set_viewport_size({"width": 1100, "height": 900})
    page.click("button:has-text('Start round')")
    expect(page).to_have_url(re.compile(r"/studio/admin/rounds/\d+/$"))
    expect(page.locator("#count-total")).to_have_text("4")
    expect(page.locator("#count-queued")).to_have_text("4")
    expect(page.locator("#round-status")).to_have_text("queued")
    assert len(sent_tasks) == 2  # one GPU task per cover

    round_id = int(re.search(r"/rounds/(\d+)/", page.url).group(1))
    assert GenerationRound.objects.get(pk=round_id).gold_rate == 0.1
    finish_like_a_worker(round_id)

    # The poll sees the round finish and reloads with the variants' results; no navigation by the test.
    expect(page.locator("#percent-done")).to_have_text("100.0%")
    expect(page.locator("#round-status")).to_have_text("done")
    expect(page.locator("#cover-progress tbody tr")).to_have_count(2)
    expect(page.locator("audio")).to_have_count(4)
    expect(page.locator(".prompt").first).to_contain_text("moody minor-key jazz")
    expect(page.locator("pre.raw").first).to_contain_text('"genre": "jazz"')
    expect(page.locator(".neighbours").first).to_contain_text("Kind of Blue")
    # The audio is served (with ranges) and decodes: the browser reads its duration.
    duration = page.eval_on_selector(
        "audio",
        """a => new Promise(resolve => {
             if (a.readyState >= 1) return resolve(a.duration);
             a.addEventListener('loadedmetadata', () => resolve(a.duration));
             a.load();
           })""",
    )
    assert 1.3 < duration < 1.8
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
