"""Gold tasks: a known ranking, served at the round's gold rate to every labeler, scored on the agreement page."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from labelstudio_site.studio import services
from labelstudio_site.studio.models import Assignment, LabelTask
from tests.studio.test_labeling import client_for, labeler, next_task, ready_round

pytestmark = pytest.mark.django_db


def admin_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get_or_create(username="boss", defaults={"is_staff": True})[0])
    return client


def make_gold(task: LabelTask) -> list[int]:
    ranking = sorted(task.round.variants.filter(cover=task.cover).values_list("pk", flat=True))
    response = admin_client().post(
        f"/api/label-tasks/{task.pk}/gold/", {"ranking": ranking}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return ranking


def answer_like(task: dict, ranking_of_variants: list[int], user) -> None:
    assignment = Assignment.objects.get(pk=task["assignment_id"])
    keys = services.variant_keys(len(assignment.order))
    key_of = dict(zip(assignment.order, keys, strict=True))
    body = {
        "ratings": {k: {"musicality": 3, "compatibility": 3, "listened_s": 9} for k in keys},
        "ranking": [key_of[v] for v in ranking_of_variants],
    }
    response = client_for(user).post(
        f"/api/label/assignments/{task['assignment_id']}/submit/", body, content_type="application/json"
    )
    assert response.status_code == 200


def test_a_gold_task_goes_to_every_labeler_outside_overlap_and_is_scored():
    generation_round = ready_round(covers=2, overlap_k=1)
    generation_round.gold_rate = 1.0
    generation_round.save()
    gold_task = LabelTask.objects.order_by("pk").first()
    gold = make_gold(gold_task)
    ann, bob = labeler("ann"), labeler("bob")
    for user, ranking in ((ann, gold), (bob, list(reversed(gold)))):
        task = next_task(client_for(user))
        assert Assignment.objects.get(pk=task["assignment_id"]).task == gold_task  # k = 1 does not limit gold
        answer_like(task, ranking, user)
    # After the gold task, an ordinary one; the gold task is never given twice.
    assert Assignment.objects.get(pk=next_task(client_for(ann))["assignment_id"]).task != gold_task
    rows = {
        row["username"]: row
        for row in admin_client().get(f"/api/rounds/{generation_round.pk}/agreement/").json()["labelers"]
    }
    assert rows["ann"]["gold_tasks"] == 1 and rows["ann"]["gold_agreement"] == pytest.approx(1.0)
    assert rows["bob"]["gold_agreement"] == pytest.approx(-1.0)


def test_with_gold_rate_zero_gold_tasks_are_not_served():
    ready_round(covers=1, overlap_k=3)
    make_gold(LabelTask.objects.get())
    assert client_for(labeler("ann")).post("/api/label/next/").status_code == 204


def test_a_gold_ranking_must_be_a_permutation_and_admin_only():
    ready_round(covers=1)
    task = LabelTask.objects.get()
    response = admin_client().post(
        f"/api/label-tasks/{task.pk}/gold/", {"ranking": [1, 1, 1]}, content_type="application/json"
    )
    assert response.status_code == 400 and "each of the task's variants once" in response.json()["detail"]
    response = client_for(labeler("ann")).post(
        f"/api/label-tasks/{task.pk}/gold/", {"ranking": None}, content_type="application/json"
    )
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.gold_ranking is None


def test_a_round_refuses_a_gold_rate_outside_0_1():
    generation_round = ready_round(covers=1)
    with pytest.raises(services.RoundError, match="gold rate"):
        services.round_create(
            name="x",
            covers=list(generation_round.covers.all()),
            captioner_version=generation_round.captioner_version,
            variants_per_cover=2,
            gold_rate=2,
        )
