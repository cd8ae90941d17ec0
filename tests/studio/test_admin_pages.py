"""The studio's admin pages: staff only; uploads report duplicates and bad files; rounds start and show progress."""

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from labelstudio_site.studio import services, tasks
from labelstudio_site.studio.models import Cover, CoverSource, GenerationRound, Variant, VariantStatus
from labelstudio_site.training.services import model_version_base_ensure

pytestmark = pytest.mark.django_db

PAGES = ["/studio/admin/covers/upload/", "/studio/admin/rounds/"]


def png_bytes(colour: tuple[int, int, int], size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Record the GPU tasks a round enqueues instead of sending them (no worker runs in these tests)."""
    sent: list[tuple] = []
    monkeypatch.setattr(tasks.cover_generate_task, "delay", lambda *args: sent.append(args))
    return sent


@pytest.fixture
def staff_client(client):
    admin = get_user_model().objects.create_user("boss", password="boss-pass-123", is_staff=True)
    client.force_login(admin)
    return client


@pytest.fixture
def labeler_client(client):
    labeler = get_user_model().objects.create_user("ears", password="ears-pass-123")
    client.force_login(labeler)
    return client


def make_cover(colour: tuple[int, int, int] = (10, 20, 30)) -> Cover:
    cover, _ = services.cover_create(data=png_bytes(colour), name="c.png", source=CoverSource.UPLOAD)
    return cover


def make_round(covers: list[Cover], variants: int = 2) -> GenerationRound:
    return services.round_create(
        name="r1",
        covers=covers,
        captioner_version=model_version_base_ensure(profile="tiny"),
        variants_per_cover=variants,
        seed=7,
        render_settings={"duration_s": 1.0},
    )


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_users_are_sent_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_labelers_get_403_on_every_page_and_create_nothing(labeler_client):
    cover = make_cover()
    generation_round = make_round([cover])
    urls = [
        *PAGES,
        f"/studio/admin/rounds/{generation_round.pk}/",
        f"/studio/admin/rounds/{generation_round.pk}/progress.json",
        f"/media/{cover.image.name}",
    ]
    for url in urls:
        assert labeler_client.get(url).status_code == 403, url
    version = model_version_base_ensure(profile="tiny")
    response = labeler_client.post(
        "/studio/admin/rounds/",
        {
            "covers": [cover.pk],
            "captioner_version": version.pk,
            "variants_per_cover": 2,
            "audio_renderer": "synth",
            "duration_s": 1,
            "overlap_k": 3,
        },
    )
    assert response.status_code == 403
    upload = SimpleUploadedFile("new.png", png_bytes((1, 2, 3)), content_type="image/png")
    assert labeler_client.post("/studio/admin/covers/upload/", {"images": [upload]}).status_code == 403
    assert labeler_client.post(f"/studio/admin/rounds/{generation_round.pk}/retry/").status_code == 403
    assert GenerationRound.objects.count() == 1
    assert Cover.objects.count() == 1


def test_anonymous_round_post_creates_nothing(client):
    cover = make_cover()
    response = client.post("/studio/admin/rounds/", {"covers": [cover.pk], "variants_per_cover": 2})
    assert response.status_code == 302
    assert not GenerationRound.objects.exists()


def test_upload_stores_new_images_and_reports_duplicates_and_non_images(staff_client):
    existing = make_cover((200, 0, 0))
    files = [
        SimpleUploadedFile("fresh.png", png_bytes((0, 200, 0)), content_type="image/png"),
        SimpleUploadedFile("again.png", png_bytes((200, 0, 0)), content_type="image/png"),
        SimpleUploadedFile("notes.txt", b"not an image at all", content_type="text/plain"),
    ]
    response = staff_client.post("/studio/admin/covers/upload/", {"images": files})
    html = response.content.decode()
    assert response.status_code == 200
    assert '<strong id="stored-count">1</strong>' in html
    assert f"again.png: already stored as cover {existing.pk}" in html
    assert "<strong>notes.txt</strong>:" in html
    assert Cover.objects.count() == 2  # the existing one and fresh.png; neither the duplicate nor the text file


def test_upload_over_the_size_limit_is_rejected_with_the_limit(staff_client, monkeypatch):
    from labelstudio_site.studio import views

    monkeypatch.setattr(views, "MAX_COVER_BYTES", 100)
    upload = SimpleUploadedFile("big.png", png_bytes((5, 5, 5)), content_type="image/png")
    html = staff_client.post("/studio/admin/covers/upload/", {"images": [upload]}).content.decode()
    assert "<strong>big.png</strong>: the file is" in html and "covers are limited to" in html
    assert not Cover.objects.exists()


def test_upload_is_csrf_protected(db):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    admin = get_user_model().objects.create_user("boss", password="x", is_staff=True)
    csrf_client.force_login(admin)
    upload = SimpleUploadedFile("a.png", png_bytes((9, 9, 9)), content_type="image/png")
    assert csrf_client.post("/studio/admin/covers/upload/", {"images": [upload]}).status_code == 403
    assert not Cover.objects.exists()


def test_round_form_lists_covers_and_ensures_a_captioner(staff_client):
    cover = make_cover()
    html = staff_client.get("/studio/admin/rounds/").content.decode()
    assert f'name="covers" value="{cover.pk}"' in html
    assert "base (tiny)" in html


def test_round_without_covers_is_a_400_with_the_reason_and_creates_nothing(staff_client, no_broker):
    version = model_version_base_ensure(profile="tiny")
    form = {
        "captioner_version": version.pk,
        "variants_per_cover": 2,
        "audio_renderer": "synth",
        "duration_s": 1,
        "overlap_k": 3,
    }
    response = staff_client.post("/studio/admin/rounds/", form)
    assert response.status_code == 400
    assert "a round needs at least one cover" in response.content.decode()
    assert not GenerationRound.objects.exists() and not Variant.objects.exists()
    assert no_broker == []


@pytest.mark.parametrize(
    ("field", "value"), [("variants_per_cover", 17), ("gold_rate", 1.5), ("seed", 2**63), ("overlap_k", 51)]
)
def test_round_form_out_of_range_is_a_400(staff_client, field, value):
    cover = make_cover()
    version = model_version_base_ensure(profile="tiny")
    form = {
        "covers": [cover.pk],
        "captioner_version": version.pk,
        "variants_per_cover": 2,
        "audio_renderer": "synth",
        "duration_s": 1,
        "overlap_k": 3,
        field: value,
    }
    response = staff_client.post("/studio/admin/rounds/", form)
    assert response.status_code == 400
    assert "Ensure this value is less than or equal to" in response.content.decode()
    assert not GenerationRound.objects.exists()


def test_round_form_creates_the_round_and_redirects_to_its_page(
    staff_client, django_capture_on_commit_callbacks, no_broker
):
    covers = [make_cover((1, 1, 1)), make_cover((2, 2, 2))]
    version = model_version_base_ensure(profile="tiny")
    form = {
        "all_covers": "on",
        "captioner_version": version.pk,
        "variants_per_cover": 3,
        "seed": 11,
        "audio_renderer": "synth",
        "duration_s": 2,
        "overlap_k": 2,
        "gold_rate": 0.2,
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post("/studio/admin/rounds/", form)
    generation_round = GenerationRound.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/studio/admin/rounds/{generation_round.pk}/"
    assert generation_round.seed == 11 and generation_round.overlap_k == 2 and generation_round.gold_rate == 0.2
    assert generation_round.render_settings["duration_s"] == 2.0
    assert Variant.objects.filter(round=generation_round).count() == 6
    assert sorted(args[1] for args in no_broker) == sorted(c.pk for c in covers)


def finish(variant: Variant, *, error: str = "") -> None:
    variant.neighbours = [{"album_id": "a1", "name": "Blue Train", "genre": "jazz", "distance": 0.25, "features": {}}]
    variant.raw_text = f'{{"genre": "jazz", "tempo": {100 + variant.index}}}'
    variant.prompt = f"a cool jazz piece, variant {variant.index}"
    variant.timings = {"embed": 0.01, "caption": 0.5}
    variant.finished_at = timezone.now()
    if error:
        variant.status, variant.error = VariantStatus.FAILED, error
    else:
        variant.status = VariantStatus.DONE
        variant.audio.save(f"v{variant.pk}.mp3", ContentFile(b"ID3" + b"\0" * 100), save=False)
        variant.audio_mime, variant.duration_s = "audio/mpeg", 1.0
    variant.save()


def test_round_page_shows_counts_intermediaries_failures_and_audio(staff_client):
    cover = make_cover()
    generation_round = make_round([cover], variants=3)
    first, second, third = Variant.objects.filter(round=generation_round).order_by("index")
    finish(first)
    finish(second, error="the captioner ran out of memory")
    services.round_status_refresh(round_id=generation_round.pk)

    html = staff_client.get(f"/studio/admin/rounds/{generation_round.pk}/").content.decode()
    assert '<span id="count-done">1</span>' in html
    assert '<span id="count-failed">1</span>' in html
    assert '<span id="count-queued">1</span>' in html
    assert '<span id="count-total">3</span>' in html
    assert "a cool jazz piece, variant 0" in html
    assert "{&quot;genre&quot;: &quot;jazz&quot;, &quot;tempo&quot;: 100}" in html
    assert "Blue Train" in html and "0.2500" in html
    assert "caption: 0.500" in html
    assert f'<audio controls preload="metadata" src="{first.audio.url}">' in html
    assert "the captioner ran out of memory" in html

    progress = staff_client.get(f"/studio/admin/rounds/{generation_round.pk}/progress.json").json()
    assert {k: progress[k] for k in ("total", "done", "failed", "queued", "running")} == {
        "total": 3,
        "done": 1,
        "failed": 1,
        "queued": 1,
        "running": 0,
    }
    assert progress["finished"] is False and progress["per_minute"] > 0
    assert progress["covers"] == [{"cover_id": cover.pk, "queued": 1, "running": 0, "done": 1, "failed": 1, "total": 3}]

    finish(third)
    services.round_status_refresh(round_id=generation_round.pk)
    progress = json.loads(staff_client.get(f"/studio/admin/rounds/{generation_round.pk}/progress.json").content)
    assert progress["status"] == "failed" and progress["finished"] is True and progress["percent_finished"] == 100.0


def test_retry_failed_requeues_the_failed_variants(staff_client, django_capture_on_commit_callbacks, no_broker):
    cover = make_cover()
    generation_round = make_round([cover], variants=2)
    for variant in Variant.objects.filter(round=generation_round):
        finish(variant, error="boom")
    services.round_status_refresh(round_id=generation_round.pk)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"/studio/admin/rounds/{generation_round.pk}/retry/")
    assert response.status_code == 302
    assert set(Variant.objects.filter(round=generation_round).values_list("status", flat=True)) == {"queued"}
    assert no_broker == [(generation_round.pk, cover.pk)]  # one task per cover


def test_media_serves_byte_ranges_to_staff(staff_client):
    cover = make_cover()
    size = cover.image.size
    url = f"/media/{cover.image.name}"
    full = staff_client.get(url)
    assert full.status_code == 200 and full["Accept-Ranges"] == "bytes"
    assert b"".join(full.streaming_content) == cover.image.open("rb").read()
    part = staff_client.get(url, headers={"Range": "bytes=1-4"})
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 1-4/{size}"
    assert part.content == cover.image.open("rb").read()[1:5]
    assert staff_client.get(url, headers={"Range": f"bytes={size}-"}).status_code == 416
    assert staff_client.get("/media/../settings.py").status_code == 404


def test_landing_links_the_studio_pages_for_staff_only(client, staff_client):
    html = staff_client.get("/").content.decode()
    assert 'href="/studio/admin/covers/upload/"' in html and 'href="/studio/admin/rounds/"' in html
    staff_client.logout()
    assert "/studio/admin/" not in client.get("/").content.decode()
