"""Round pages at scale: covers and variants come a page at a time, failures stay visible on every page, the
progress poll follows the page, and the round form lists only the newest covers."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from labelstudio_site.studio import views
from labelstudio_site.studio.models import GenerationRound, Variant, VariantStatus
from labelstudio_site.studio.seeding import labels_seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("boss", is_staff=True))
    return client


@pytest.fixture
def seeded_round(settings, tmp_path) -> GenerationRound:
    settings.MEDIA_ROOT = tmp_path / "media"
    labels_seed(tasks=70, ratings=400, rounds=1, labelers=8, pending_share=0.2, random_seed=4)
    return GenerationRound.objects.get()


def cover_ids_on(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-cover="(\d+)"', html)]


def test_the_round_page_shows_one_page_of_covers_and_their_variants(staff, seeded_round):
    per_page = views.COVERS_PER_PAGE
    all_covers = sorted(seeded_round.covers.values_list("pk", flat=True))
    first = staff.get(f"/studio/admin/rounds/{seeded_round.pk}/").content.decode()
    second = staff.get(f"/studio/admin/rounds/{seeded_round.pk}/?page=2").content.decode()
    assert cover_ids_on(first) == all_covers[:per_page]
    assert cover_ids_on(second) == all_covers[per_page : 2 * per_page]
    assert f"1–{per_page} of 70" in first and "page 2 of 7" in second
    shown = {int(i) for i in re.findall(r'<details class="card variant" id="variant-(\d+)"', second)}
    assert shown == set(Variant.objects.filter(cover_id__in=cover_ids_on(second)).values_list("pk", flat=True))
    # The counts at the top are the whole round's, not the page's.
    assert f'<span id="count-total">{70 * 4}</span>' in second
    # The poll asks for this page's covers.
    assert f'data-progress-url="/studio/admin/rounds/{seeded_round.pk}/progress.json?page=2"' in second


def test_failures_are_listed_on_every_page_with_their_reasons(staff, seeded_round):
    failed = list(Variant.objects.filter(status=VariantStatus.FAILED).order_by("cover_id", "index"))
    assert failed  # the seed fails some covers
    last_page = -(-70 // views.COVERS_PER_PAGE)
    for page in (1, last_page):
        html = staff.get(f"/studio/admin/rounds/{seeded_round.pk}/?page={page}").content.decode()
        assert f"{len(failed)} failed variant" in html
        for variant in failed:
            assert f"cover {variant.cover_id} (" in html and variant.error in html
        assert re.search(r'<button type="submit"\s*>Retry failed</button>', html)


def test_progress_json_pages_like_the_round_page(staff, seeded_round):
    all_covers = sorted(seeded_round.covers.values_list("pk", flat=True))
    body = staff.get(f"/studio/admin/rounds/{seeded_round.pk}/progress.json?page=3").json()
    assert body["page"] == 3 and body["total"] == 280
    assert [c["cover_id"] for c in body["covers"]] == all_covers[2 * views.COVERS_PER_PAGE : 3 * views.COVERS_PER_PAGE]
    assert all(c["total"] == 4 for c in body["covers"])
    # A page past the end is the last page, as on the round's page.
    assert staff.get(f"/studio/admin/rounds/{seeded_round.pk}/progress.json?page=999").json()["page"] == 7


def test_the_rounds_page_lists_counts_and_only_the_newest_covers(staff, seeded_round):
    html = staff.get("/studio/admin/rounds/").content.decode()
    done = Variant.objects.filter(status=VariantStatus.DONE).count()
    assert f"<td>{done} / 280</td>" in html
    assert html.count('name="covers" value=') == views.COVER_PICKS
    assert "All stored covers (70)" in html and f"The newest {views.COVER_PICKS} of 70 covers" in html
