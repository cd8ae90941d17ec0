"""The labeler API: assignment with overlap k, blind variant keys, validation, resubmission, skip, expiry, roles."""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from labelstudio_site.studio import services
from labelstudio_site.studio.models import Assignment, AssignmentStatus, LabelTask, Rating, Variant, VariantStatus
from labelstudio_site.studio.roles import LABELERS_GROUP
from labelstudio_site.training.services import model_version_base_ensure
from tests.studio.test_rounds import COVERS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def labeling_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.LABEL_MIN_LISTEN_S = 5.0


def labeler(name: str):
    user = get_user_model().objects.create_user(name, password="pw-" + name)
    # get_or_create: a transactional test earlier in the run flushes the group its data migration made.
    user.groups.add(Group.objects.get_or_create(name=LABELERS_GROUP)[0])
    return user


def ready_round(*, covers: int = 2, variants: int = 3, overlap_k: int = 2):
    """A round whose variants are rendered (marked done here; rendering itself is tested in test_rounds)."""
    cover_rows = [services.cover_create(data=p.read_bytes(), name=p.name)[0] for p in COVERS[:covers]]
    generation_round = services.round_create(
        name="labeling",
        covers=cover_rows,
        captioner_version=model_version_base_ensure(profile="tiny"),
        variants_per_cover=variants,
        seed=1,
        overlap_k=overlap_k,
    )
    return mark_rendered(generation_round)


def mark_rendered(generation_round):
    """Marks every variant of the round done with audio of 3 s and its label tasks ready, as a worker would."""
    for variant in generation_round.variants.all():
        variant.status, variant.duration_s, variant.peaks = VariantStatus.DONE, 3.0, [0.5] * 200
        variant.audio.name = f"audio/{variant.pk:032x}.mp3"
        variant.save()
    LabelTask.objects.filter(round=generation_round).update(ready=True)
    return generation_round


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def next_task(client) -> dict:
    response = client.post("/api/label/next/")
    assert response.status_code == 200, response.content
    return response.json()


def submission(task: dict, *, musicality=4, listened=6.0, ranking=None) -> dict:
    keys = [v["key"] for v in task["variants"]]
    return {
        "ratings": {k: {"musicality": musicality, "compatibility": 3, "listened_s": listened} for k in keys},
        "ranking": ranking or keys,
    }


def submit(client, task, **kwargs):
    return client.post(
        f"/api/label/assignments/{task['assignment_id']}/submit/",
        submission(task, **kwargs),
        content_type="application/json",
    )


def test_next_task_is_blind_and_ordered_per_assignment():
    ready_round(covers=1, variants=4, overlap_k=3)
    task = next_task(client_for(labeler("ann")))
    assert set(task) == {"assignment_id", "status", "expires_at", "cover_url", "variants", "min_listen_s"}
    assert [v["key"] for v in task["variants"]] == ["a", "b", "c", "d"]
    for variant in task["variants"]:
        assert set(variant) == {"key", "audio_url", "duration_s", "peaks"}
    assignment = Assignment.objects.get(pk=task["assignment_id"])
    assert sorted(assignment.order) == sorted(Variant.objects.values_list("pk", flat=True))
    # Orders are drawn per assignment: across several labelers they differ (24 orders of 4; all equal is ~1e-4).
    orders = {
        tuple(Assignment.objects.get(pk=next_task(client_for(labeler(n)))["assignment_id"]).order)
        for n in ("bob", "cy")
    } | {tuple(assignment.order)}
    assert len(orders) > 1


def test_each_task_goes_to_k_distinct_labelers_and_never_twice_to_one():
    ready_round(covers=2, overlap_k=2)
    ann, bob, cy = labeler("ann"), labeler("bob"), labeler("cy")
    for user in (ann, bob, cy):
        task = next_task(client_for(user))
        assert next_task(client_for(user))["assignment_id"] == task["assignment_id"]  # resumes the open one
        assert submit(client_for(user), task).status_code == 200
    second = next_task(client_for(ann))
    assert Assignment.objects.filter(labeler=ann).values("task").distinct().count() == 2
    assert submit(client_for(ann), second).status_code == 200
    assert client_for(ann).post("/api/label/next/").status_code == 204  # ann has seen both tasks
    for task in LabelTask.objects.all():
        assert task.assignments.count() <= 2 and task.active_count == task.assignments.count()
    assert client_for(bob).post("/api/label/next/").status_code in (200, 204)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"musicality": 0}, "greater than or equal to 1"),
        ({"musicality": 6}, "less than or equal to 5"),
        ({"listened": 1.0}, "listen to"),
        ({"ranking": ["a", "a", "b"]}, "exactly once"),
        ({"ranking": ["a", "b"]}, "exactly once"),
        ({"ranking": ["a", "b", "z"]}, "exactly once"),
    ],
)
def test_invalid_answers_are_400_and_store_nothing(change, message):
    ready_round(covers=1)
    client = client_for(labeler("ann"))
    task = next_task(client)
    response = submit(client, task, **change)
    assert response.status_code == 400
    assert message in str(response.json())
    assert Rating.objects.count() == 0
    assert Assignment.objects.get().status == AssignmentStatus.ASSIGNED


def test_a_missing_rating_is_400():
    ready_round(covers=1)
    client = client_for(labeler("ann"))
    task = next_task(client)
    body = submission(task)
    del body["ratings"]["b"]
    response = client.post(
        f"/api/label/assignments/{task['assignment_id']}/submit/", body, content_type="application/json"
    )
    assert response.status_code == 400 and "rate every variant" in response.json()["detail"]


def test_resubmission_replaces_the_answers():
    ready_round(covers=1)
    client = client_for(labeler("ann"))
    task = next_task(client)
    assert submit(client, task, musicality=2).status_code == 200
    keys = [v["key"] for v in task["variants"]]
    assert submit(client, task, musicality=5, ranking=list(reversed(keys))).status_code == 200
    ratings = Rating.objects.filter(assignment_id=task["assignment_id"])
    assert ratings.count() == 3
    assert set(ratings.values_list("musicality", flat=True)) == {5}
    order = Assignment.objects.get().order
    assert ratings.get(variant_id=order[-1]).rank == 1


def test_another_labelers_assignment_is_404_and_unchanged():
    ready_round(covers=1)
    task = next_task(client_for(labeler("ann")))
    response = submit(client_for(labeler("bob")), task)
    assert response.status_code == 404
    assert Rating.objects.count() == 0


def test_an_expired_assignment_is_409_and_its_slot_returns_to_the_pool():
    ready_round(covers=1, overlap_k=1)
    ann_client = client_for(labeler("ann"))
    task = next_task(ann_client)
    assert client_for(labeler("bob")).post("/api/label/next/").status_code == 204  # k = 1 and ann holds it
    Assignment.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert submit(ann_client, task).status_code == 409
    assert next_task(client_for(labeler("cy")))["assignment_id"] != task["assignment_id"]
    assert Assignment.objects.get(pk=task["assignment_id"]).status == AssignmentStatus.EXPIRED


def test_skip_needs_a_reason_and_frees_the_slot():
    ready_round(covers=1, overlap_k=1)
    client = client_for(labeler("ann"))
    task = next_task(client)
    url = f"/api/label/assignments/{task['assignment_id']}/skip/"
    assert client.post(url, {"reason": ""}, content_type="application/json").status_code == 400
    assert client.post(url, {"reason": "broken audio"}, content_type="application/json").status_code == 200
    assert Assignment.objects.get().skip_reason == "broken audio"
    assert next_task(client_for(labeler("bob")))["assignment_id"] != task["assignment_id"]
    assert submit(client, task).status_code == 409


def test_non_labelers_get_403_and_anonymous_users_401():
    ready_round(covers=1)
    assert Client().post("/api/label/next/").status_code == 401
    staff = get_user_model().objects.create_user("boss", is_staff=True)
    plain = get_user_model().objects.create_user("someone")
    for client in (client_for(staff), client_for(plain)):
        response = client.post("/api/label/next/")
        assert response.status_code == 403 and response.json()["detail"] == "only labelers may do this"
        assert client.get("/api/label/progress/").status_code == 403
    assert Assignment.objects.count() == 0


def test_token_auth_for_api_clients_and_csrf_for_the_browser_session():
    ready_round(covers=1)
    ann = labeler("ann")
    token = Token.objects.create(user=ann)
    response = Client().post("/api/label/next/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(labeler("bob"))
    assert browser.post("/api/label/next/").status_code == 403  # no CSRF token
    assert Assignment.objects.filter(labeler__username="bob").count() == 0


def test_progress_counts_the_labelers_work():
    ready_round(covers=2)
    client = client_for(labeler("ann"))
    submit(client, next_task(client))
    next_task(client)
    assert client.get("/api/label/progress/").json() == {"submitted": 1, "skipped": 0, "open": 1}


@pytest.mark.django_db(transaction=True)
def test_many_labelers_at_once_get_at_most_k_each_and_every_rating_is_stored_once():
    ready_round(covers=3, variants=3, overlap_k=2)
    users = [labeler(f"l{i}") for i in range(8)]
    results: dict[str, int] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(users))

    def work(user) -> None:
        try:
            client = client_for(user)
            barrier.wait()
            response = client.post("/api/label/next/")
            if response.status_code == 200:
                task = response.json()
                codes: list[int] = []

                def send() -> None:
                    codes.append(submit(client_for(user), task).status_code)
                    connection.close()

                # Two submits of the same assignment racing each other: both succeed, one replaces the other.
                racers = [threading.Thread(target=send) for _ in range(2)]
                for racer in racers:
                    racer.start()
                for racer in racers:
                    racer.join()
                results[user.username] = codes.count(200)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(results) == 6  # 3 tasks x k = 2 slots for 8 labelers
    assert set(results.values()) == {2}
    for task in LabelTask.objects.all():
        assert task.assignments.count() == 2 == task.active_count
    assert Rating.objects.count() == 6 * 3
    assert Assignment.objects.filter(status=AssignmentStatus.SUBMITTED).count() == 6


def test_create_labelers_command_prints_working_credentials(capsys):
    from django.core.management import call_command

    ready_round(covers=1)
    call_command("create_labelers", "eve", "fay")
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["eve", "fay"]
    token = lines[0].split("\t")[2].removeprefix("token ")
    assert Client().post("/api/label/next/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    password = lines[1].split("\t")[1].removeprefix("password ")
    assert Client().login(username="fay", password=password)
    with pytest.raises(SystemExit) as stop:
        call_command("create_labelers", "eve")
    assert stop.value.code == 2 and "taken" in capsys.readouterr().err
