"""The staff API behind simulated labelers: labeler accounts in bulk, and the hidden truth of an assignment."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.authtoken.models import Token

from labelstudio_site.studio.labeler_services import MAX_LABELERS_PER_CALL
from labelstudio_site.studio.models import Assignment, Variant
from labelstudio_site.studio.roles import LABELERS_GROUP, is_labeler
from tests.studio.test_labeling import client_for, labeler, next_task, ready_round, submit

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def api_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.LABEL_MIN_LISTEN_S = 5.0
    # A transactional test earlier in the run may have flushed the group its data migration made.
    Group.objects.get_or_create(name=LABELERS_GROUP)


def staff_client() -> Client:
    staff = get_user_model().objects.create_user("boss", is_staff=True)
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")


def create(client: Client, body: dict):
    return client.post("/api/labelers/", body, content_type="application/json")


def test_staff_creates_n_labelers_with_working_tokens_and_passwords():
    ready_round(covers=1)
    response = create(staff_client(), {"count": 3})
    assert response.status_code == 201, response.content
    labelers = response.json()["labelers"]
    assert len(labelers) == 3 and len({row["username"] for row in labelers}) == 3
    assert all(row["username"].startswith("sim-") for row in labelers)
    for row in labelers:
        user = get_user_model().objects.get(username=row["username"])
        assert is_labeler(user) and not user.is_staff
        assert Token.objects.get(user=user).key == row["token"]
        assert Client().login(username=row["username"], password=row["password"])
    answer = Client().post("/api/label/next/", HTTP_AUTHORIZATION=f"Token {labelers[0]['token']}")
    assert answer.status_code == 200


def test_staff_creates_named_labelers_with_a_prefix_or_names():
    client = staff_client()
    named = create(client, {"usernames": ["ann", "bob"]}).json()["labelers"]
    assert [row["username"] for row in named] == ["ann", "bob"]
    prefixed = create(client, {"count": 2, "prefix": "load"}).json()["labelers"]
    assert all(row["username"].startswith("load-") for row in prefixed)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "either a count or a list of usernames"),
        ({"count": 2, "usernames": ["x"]}, "either a count or a list of usernames"),
        ({"count": 0}, "greater than or equal to 1"),
        ({"count": MAX_LABELERS_PER_CALL + 1}, "less than or equal to"),
        ({"usernames": []}, "may not be empty"),
        ({"usernames": ["has space"]}, "does not match"),
        ({"usernames": ["dup", "dup"]}, "repeated: dup"),
        ({"usernames": ["fresh", "taken"]}, "the username taken is taken"),
        ({"count": 2, "prefix": "bad prefix"}, "does not match"),
    ],
)
def test_bad_input_is_400_with_a_message_and_creates_nobody(body, message):
    get_user_model().objects.create_user("taken")
    client = staff_client()
    before = get_user_model().objects.count()
    response = create(client, body)
    assert response.status_code == 400
    assert message in str(response.json())
    assert get_user_model().objects.count() == before  # all or none: "fresh" is not created next to "taken"


def test_labelers_and_anonymous_users_cannot_create_labelers():
    ann = labeler("ann")
    token = Token.objects.create(user=ann).key
    assert Client().post("/api/labelers/", {"count": 1}, HTTP_AUTHORIZATION=f"Token {token}").status_code == 403
    assert client_for(ann).post("/api/labelers/", {"count": 1}).status_code == 403
    assert Client().post("/api/labelers/", {"count": 1}).status_code == 401
    assert get_user_model().objects.count() == 1


def test_reveal_gives_staff_each_blind_key_with_its_variant_and_features():
    generation_round = ready_round(covers=1, variants=4)
    for variant in generation_round.variants.all():
        variant.features = {"energy": variant.index / 10, "valence": 0.5}
        variant.save(update_fields=["features"])
    task = next_task(client_for(labeler("ann")))
    response = staff_client().get(f"/api/label/assignments/{task['assignment_id']}/reveal/")
    assert response.status_code == 200, response.content
    reveal = response.json()
    assignment = Assignment.objects.get(pk=task["assignment_id"])
    assert reveal["assignment_id"] == assignment.pk and reveal["task_id"] == assignment.task_id
    assert reveal["labeler"] == "ann" and reveal["status"] == "assigned"
    assert [v["key"] for v in reveal["variants"]] == [v["key"] for v in task["variants"]] == ["a", "b", "c", "d"]
    assert [v["variant_id"] for v in reveal["variants"]] == assignment.order
    for row in reveal["variants"]:
        variant = Variant.objects.get(pk=row["variant_id"])
        assert row["features"] == variant.features and row["index"] == variant.index
        assert row["duration_s"] == 3.0


def test_labelers_never_reach_the_reveal_not_even_of_their_own_assignment():
    ready_round(covers=1)
    ann = labeler("ann")
    task = next_task(client_for(ann))
    url = f"/api/label/assignments/{task['assignment_id']}/reveal/"
    token = Token.objects.create(user=ann).key
    for response in (client_for(ann).get(url), Client().get(url, HTTP_AUTHORIZATION=f"Token {token}")):
        assert response.status_code == 403
        assert "variant_id" not in response.content.decode()
    assert Client().get(url).status_code == 401
    assert submit(client_for(ann), task).status_code == 200
    assert client_for(ann).get(url).status_code == 403  # submitted changes nothing


def test_reveal_of_an_unknown_assignment_is_404():
    response = staff_client().get("/api/label/assignments/999999/reveal/")
    assert response.status_code == 404


def test_the_openapi_schema_documents_both_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "post" in paths["/api/labelers/"]
    assert "get" in paths["/api/label/assignments/{assignment_id}/reveal/"]
