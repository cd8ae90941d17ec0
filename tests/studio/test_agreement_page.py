"""Agreement of a round's answers on the admin page and the API, and excluding a labeler."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from labelstudio_site.studio import services
from labelstudio_site.studio.agreement import krippendorff_alpha
from labelstudio_site.studio.models import LabelerExclusion
from tests.studio.test_labeling import labeler, ready_round

pytestmark = pytest.mark.django_db


def label(user, musicality: list[int], compatibility: list[int]) -> None:
    """Submit the labeler's next task with ratings given per variant id order (ranking by musicality)."""
    assignment = services.assignment_next_for(labeler=user, ttl_s=600)
    by_variant = dict(zip(sorted(assignment.order), zip(musicality, compatibility, strict=True), strict=True))
    keys = services.variant_keys(len(assignment.order))
    answers = {
        key: services.VariantAnswer(musicality=by_variant[v][0], compatibility=by_variant[v][1], listened_s=10)
        for key, v in zip(keys, assignment.order, strict=True)
    }
    ranking = sorted(keys, key=lambda key: -answers[key].musicality)
    services.assignment_submit(
        assignment_id=assignment.pk, labeler=user, answers=answers, ranking=ranking, min_listen_s=5
    )


@pytest.fixture
def answered_round():
    generation_round = ready_round(covers=1, variants=3, overlap_k=4)
    ann, bob, dee, cy = labeler("ann"), labeler("bob"), labeler("dee"), labeler("cy")
    label(ann, [1, 3, 5], [2, 3, 4])
    label(bob, [2, 3, 5], [2, 4, 4])
    label(dee, [1, 4, 5], [1, 3, 5])
    label(cy, [5, 3, 1], [4, 3, 1])  # the contrarian
    return generation_round, cy


def staff_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("boss", is_staff=True))
    return client


def test_alpha_w_and_per_labeler_agreement(answered_round):
    generation_round, _ = answered_round
    body = staff_client().get(f"/api/rounds/{generation_round.pk}/agreement/").json()
    assert body["ratings"] == 12
    expected = krippendorff_alpha([[1, 2, 1, 5], [3, 3, 4, 3], [5, 5, 5, 1]], level="ordinal")
    assert body["musicality_alpha"] == pytest.approx(expected)
    rows = {row["username"]: row for row in body["labelers"]}
    assert rows["ann"]["musicality_agreement"] > 0 > rows["cy"]["musicality_agreement"]
    assert -1 <= body["ranking_w"] <= 1


def test_excluding_the_contrarian_raises_alpha_and_shows_on_the_page(answered_round):
    generation_round, cy = answered_round
    client = staff_client()
    before = client.get(f"/api/rounds/{generation_round.pk}/agreement/").json()["musicality_alpha"]
    url = f"/studio/admin/rounds/{generation_round.pk}/labelers/{cy.pk}/exclusion/"
    assert client.post(url, {"excluded": "true", "reason": "rates backwards"}).status_code == 302
    assert LabelerExclusion.objects.get().reason == "rates backwards"
    after = client.get(f"/api/rounds/{generation_round.pk}/agreement/").json()
    assert after["musicality_alpha"] > before
    assert after["ratings"] == 9
    page = client.get(f"/studio/admin/rounds/{generation_round.pk}/agreement/").content.decode()
    assert "excluded" in page and "Include again" in page
    client.post(url, {"excluded": "false"})
    assert not LabelerExclusion.objects.exists()


def test_labelers_cannot_see_agreement_or_exclude(answered_round):
    generation_round, cy = answered_round
    client = Client()
    client.force_login(cy)
    assert client.get(f"/api/rounds/{generation_round.pk}/agreement/").status_code == 403
    assert client.get(f"/studio/admin/rounds/{generation_round.pk}/agreement/").status_code == 403
    url = f"/studio/admin/rounds/{generation_round.pk}/labelers/{cy.pk}/exclusion/"
    assert client.post(url, {"excluded": "true"}).status_code == 403
    assert not LabelerExclusion.objects.exists()
