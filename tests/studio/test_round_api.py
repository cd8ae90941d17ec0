"""POST /api/rounds/ and GET /api/rounds/<id>/: admins only; bad input is a 4xx with a message and creates nothing."""

import pytest
from django.contrib.auth import get_user_model

from labelstudio_site.studio import services
from labelstudio_site.studio.models import GenerationRound, Variant
from labelstudio_site.training.models import ModelKind, ModelVersion
from labelstudio_site.training.services import model_version_base_ensure
from tests.studio.test_rounds import COVERS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def covers():
    return [services.cover_create(data=p.read_bytes(), name=p.name)[0] for p in COVERS[:2]]


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_user("boss", is_staff=True))
    return client


def payload(covers, **changes):
    version = model_version_base_ensure(profile="tiny")
    return {
        "cover_ids": [c.pk for c in covers],
        "captioner_version_id": version.pk,
        "variants_per_cover": 3,
        "seed": 9,
        "duration_s": 2.0,
        **changes,
    }


def test_an_admin_starts_a_round_and_reads_its_progress(admin_client, covers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post("/api/rounds/", payload(covers), content_type="application/json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["seed"] == 9 and body["status"] == "queued"
    assert Variant.objects.filter(round_id=body["id"]).count() == 6
    assert len(callbacks) == 2  # one GPU task per cover, sent after commit
    progress = admin_client.get(f"/api/rounds/{body['id']}/").json()
    assert (progress["total"], progress["queued"], progress["done"]) == (6, 6, 0)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"cover_ids": []}, "cover_ids", "may not be empty"),
        ({"cover_ids": [999]}, "cover_ids", "unknown cover ids: 999"),
        ({"captioner_version_id": 999}, "captioner_version_id", "no captioner version 999"),
        ({"variants_per_cover": 17}, "variants_per_cover", "less than or equal to 16"),
        ({"duration_s": 0}, "duration_s", "greater than or equal to 0.5"),
        ({"renderer": "theremin"}, "renderer", "not a valid choice"),
        ({"seed": 2**63}, "seed", "less than or equal to 9223372036854775807"),
        ({"overlap_k": 51}, "overlap_k", "less than or equal to 50"),
    ],
)
def test_bad_payloads_are_400_with_the_reason(admin_client, covers, changes, field, message):
    response = admin_client.post("/api/rounds/", payload(covers, **changes), content_type="application/json")
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert GenerationRound.objects.count() == 0


def test_a_reward_model_version_is_refused(admin_client, covers):
    reward = ModelVersion.objects.create(kind=ModelKind.REWARD, name="rm", profile="tiny")
    response = admin_client.post(
        "/api/rounds/", payload(covers, captioner_version_id=reward.pk), content_type="application/json"
    )
    assert response.status_code == 400
    assert GenerationRound.objects.count() == 0


def test_labelers_and_anonymous_users_cannot_launch_rounds(client, covers):
    assert client.post("/api/rounds/", payload(covers), content_type="application/json").status_code == 401
    client.force_login(get_user_model().objects.create_user("ears"))
    response = client.post("/api/rounds/", payload(covers), content_type="application/json")
    assert response.status_code == 403
    assert "permission" in response.json()["detail"]
    assert GenerationRound.objects.count() == 0
