"""seed_labels: a small seed has the structure of the big one, leaves work to hand out, and refuses real data."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Count, Q
from PIL import Image

from labelstudio_site.studio import selectors, services
from labelstudio_site.studio.models import (
    Assignment,
    AssignmentStatus,
    Cover,
    CoverSource,
    GenerationRound,
    LabelTask,
    Rating,
    RoundStatus,
    Variant,
    VariantStatus,
)
from labelstudio_site.studio.seeding import SEED_LABELER_PREFIX, SeedError, labels_seed
from tests.studio.test_agreement_sums import assert_same, reference_agreement

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def test_a_small_seed_has_rounds_gold_pending_work_and_consistent_counts():
    report = labels_seed(tasks=60, ratings=480, rounds=2, labelers=12, gold_share=0.05, random_seed=3)
    assert (report.tasks, report.ratings, report.submitted) == (60, 480, 120)
    assert Rating.objects.count() == 480 and Cover.objects.filter(source=CoverSource.SEED).count() == 60
    rounds = list(GenerationRound.objects.order_by("pk"))
    assert [r.status for r in rounds] == [RoundStatus.DONE, RoundStatus.RUNNING]
    assert Variant.objects.count() == 240 and LabelTask.objects.count() == 60
    assert LabelTask.objects.filter(gold_ranking__isnull=False).count() == report.gold_tasks == 3
    assert Variant.objects.filter(status=VariantStatus.FAILED).exclude(error="").exists()
    # Every submitted assignment has one rating per variant, ranks 1..4, values 1..5; never a labeler twice per task.
    per_assignment = Assignment.objects.filter(status=AssignmentStatus.SUBMITTED).annotate(n=Count("ratings"))
    assert set(per_assignment.values_list("n", flat=True)) == {4}
    for assignment in per_assignment[:20]:
        assert sorted(assignment.ratings.values_list("rank", flat=True)) == [1, 2, 3, 4]
        assert sorted(assignment.order) == sorted(
            Variant.objects.filter(round=assignment.task.round, cover=assignment.task.cover).values_list(
                "pk", flat=True
            )
        )
    # active_count is what next-task trusts: open plus submitted assignments.
    live = Q(assignments__status__in=(AssignmentStatus.ASSIGNED, AssignmentStatus.SUBMITTED))
    for task in LabelTask.objects.annotate(live=Count("assignments", filter=live)):
        assert task.active_count == task.live
        assert task.active_count <= task.round.overlap_k
    # A task not ready (rendering or failed) has no assignment.
    assert not Assignment.objects.filter(task__ready=False).exists()
    # The agreement read from the seeded sums equals the reference on the seeded ratings.
    for generation_round in rounds:
        assert_same(selectors.round_agreement(generation_round=generation_round), reference_agreement(generation_round))


def test_after_a_seed_next_task_hands_out_pending_work():
    labels_seed(tasks=40, ratings=320, rounds=1, labelers=10, random_seed=1)
    user = get_user_model().objects.get(username=f"{SEED_LABELER_PREFIX}0009")
    assert not Assignment.objects.filter(labeler=user, status=AssignmentStatus.ASSIGNED).exists()
    assignment = services.assignment_next_for(labeler=user, ttl_s=600)
    assert assignment is not None and assignment.task.ready
    assert not Assignment.objects.filter(task=assignment.task, labeler=user).exclude(pk=assignment.pk).exists()


def test_sizes_that_do_not_fit_are_refused_before_anything_is_written():
    with pytest.raises(SeedError, match="do not fit"):
        labels_seed(tasks=10, ratings=10 * 4 * 3 + 4, labelers=10)  # more than k = 3 answers per task
    assert not GenerationRound.objects.exists() and not Cover.objects.exists()


def test_the_command_refuses_a_database_with_real_data_unless_forced(capsys):
    services.cover_create(data=png(), name="real.png")
    with pytest.raises(SystemExit) as stop:
        call_command("seed_labels", "--tasks", "8", "--ratings", "32", "--labelers", "6")
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "refusing to seed: the database holds data that no seed made (1 cover)" in err and "--force" in err
    assert not GenerationRound.objects.exists()
    call_command("seed_labels", "--tasks", "8", "--ratings", "32", "--labelers", "6", "--force")
    out = capsys.readouterr().out
    assert "seeded rounds" in out and "32 ratings" in out
    assert Rating.objects.count() == 32


def test_a_seeded_database_can_be_seeded_again():
    labels_seed(tasks=8, ratings=32, rounds=1, labelers=6)
    labels_seed(tasks=8, ratings=32, rounds=1, labelers=6, random_seed=2)
    assert Rating.objects.count() == 64 and GenerationRound.objects.count() == 2
    assert get_user_model().objects.filter(username__startswith=SEED_LABELER_PREFIX).count() == 6


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()
