"""The agreement read from running sums equals studio.agreement's pure functions on the answers themselves.

Random answers go through the services (submissions, resubmissions, exclusions and inclusions, a gold task); after
each step the figures of selectors.round_agreement must equal a reference computed from the Rating rows with the
pure functions (the way the page computed them before the sums), and the sums kept step by step must equal the
sums rebuilt from scratch.
"""

import random
from collections import Counter, defaultdict
from typing import Any

import pytest
from django.core.management import call_command

from labelstudio_site.studio import selectors, services
from labelstudio_site.studio.agreement import agreement_with_consensus, kendalls_w_per_group, krippendorff_alpha
from labelstudio_site.studio.agreement_sums import agreement_sums_rebuild
from labelstudio_site.studio.models import (
    AgreementConsensus,
    AgreementLabeler,
    AgreementPairs,
    AgreementTasks,
    Assignment,
    AssignmentStatus,
    LabelerExclusion,
    LabelTask,
    Rating,
)
from tests.studio.test_labeling import labeler, ready_round

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def reference_agreement(generation_round) -> dict[str, Any]:
    """The agreement computed from every rating with the pure functions (the page's code before the sums)."""
    ratings = list(
        Rating.objects.filter(
            assignment__task__round=generation_round, assignment__status=AssignmentStatus.SUBMITTED
        ).values(
            "assignment__labeler_id",
            "assignment__labeler__username",
            "assignment__task_id",
            "variant_id",
            "musicality",
            "compatibility",
            "rank",
            "assignment__task__gold_ranking",
        )
    )
    excluded = set(LabelerExclusion.objects.values_list("labeler_id", flat=True))
    counted = [r for r in ratings if r["assignment__labeler_id"] not in excluded]
    by_variant: dict[int, list[dict]] = defaultdict(list)
    for rating in counted:
        by_variant[rating["variant_id"]].append(rating)
    alphas = {
        axis: krippendorff_alpha([[r[axis] for r in unit] for unit in by_variant.values()], level="ordinal")
        for axis in ("musicality", "compatibility")
    }
    groups: dict[int, dict[int, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for rating in counted:
        groups[rating["assignment__task_id"]][rating["assignment__labeler_id"]][rating["variant_id"]] = rating["rank"]
    rank_groups = []
    for raters in groups.values():
        variant_ids = sorted(next(iter(raters.values())))
        rank_groups.append([[ranks[v] for v in variant_ids] for ranks in raters.values()])
    submitted = Counter(
        Assignment.objects.filter(task__round=generation_round, status=AssignmentStatus.SUBMITTED).values_list(
            "labeler_id", flat=True
        )
    )
    names = {r["assignment__labeler_id"]: r["assignment__labeler__username"] for r in ratings}
    labelers = []
    for labeler_id, name in sorted(names.items(), key=lambda item: item[1]):
        row: dict[str, Any] = {"username": name, "submitted": submitted[labeler_id], "excluded": labeler_id in excluded}
        mine = [r for r in ratings if r["assignment__labeler_id"] == labeler_id]
        for axis in ("musicality", "compatibility"):
            own, consensus = [], []
            for rating in mine:
                others = [
                    r[axis]
                    for r in by_variant.get(rating["variant_id"], [])
                    if r["assignment__labeler_id"] != labeler_id
                ]
                if others:
                    own.append(float(rating[axis]))
                    consensus.append(sum(others) / len(others))
            row[f"{axis}_agreement"] = agreement_with_consensus(own, consensus)
        gold_scores = []
        gold_tasks = {r["assignment__task_id"] for r in mine if r["assignment__task__gold_ranking"] is not None}
        for task_id in gold_tasks:
            task_ratings = [r for r in mine if r["assignment__task_id"] == task_id]
            gold = task_ratings[0]["assignment__task__gold_ranking"]
            score = agreement_with_consensus(
                [float(r["rank"]) for r in task_ratings], [float(gold.index(r["variant_id"]) + 1) for r in task_ratings]
            )
            if score is not None:
                gold_scores.append(score)
        row["gold_tasks"] = len(gold_tasks)
        row["gold_agreement"] = sum(gold_scores) / len(gold_scores) if gold_scores else None
        labelers.append(row)
    return {
        "ratings": len(counted),
        "musicality_alpha": alphas["musicality"],
        "compatibility_alpha": alphas["compatibility"],
        "ranking_w": kendalls_w_per_group(rank_groups),
        "labelers": labelers,
    }


def assert_same(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    def same(a, b) -> bool:
        return (a is None and b is None) or (a is not None and b is not None and a == pytest.approx(b, abs=1e-9))

    assert actual["ratings"] == expected["ratings"]
    for key in ("musicality_alpha", "compatibility_alpha", "ranking_w"):
        assert same(actual[key], expected[key]), (key, actual[key], expected[key])
    assert [row["username"] for row in actual["labelers"]] == [row["username"] for row in expected["labelers"]]
    for got, want in zip(actual["labelers"], expected["labelers"], strict=True):
        for key, value in want.items():
            if isinstance(value, float) or value is None:
                assert same(got[key], value), (got["username"], key, got[key], value)
            else:
                assert got[key] == value, (got["username"], key)


def sums_rows(round_id: int) -> dict[str, set]:
    """Every sums row of the round with a non-zero value, comparable across rebuilds."""
    tables = {
        "pairs": (AgreementPairs, ("axis", "raters", "low", "high"), ("pairs",)),
        "tasks": (AgreementTasks, ("raters", "items"), ("tasks", "spread", "ratings")),
        "consensus": (
            AgreementConsensus,
            ("labeler_id", "axis", "others"),
            ("ratings", "own_sum", "own_squares", "others_sum", "others_squares", "products"),
        ),
        "labelers": (AgreementLabeler, ("labeler_id",), ("submitted",)),
    }
    return {
        name: {
            row for row in model.objects.filter(round_id=round_id).values_list(*keys, *values) if any(row[len(keys) :])
        }
        for name, (model, keys, values) in tables.items()
    }


def submit_random(rng: random.Random, user, taste: int) -> bool:
    """The labeler's next task, answered at random around a taste (-1 rates backwards); False when none is left."""
    assignment = services.assignment_next_for(labeler=user, ttl_s=600)
    if assignment is None:
        return False
    keys = services.variant_keys(len(assignment.order))
    # Hidden quality per variant id, so that labelers agree more than chance.
    quality = {v: (v * 7919) % 5 + 1 for v in assignment.order}
    answers = {}
    for key, variant_id in zip(keys, assignment.order, strict=True):
        base = quality[variant_id] if taste > 0 else 6 - quality[variant_id]
        answers[key] = services.VariantAnswer(
            musicality=min(5, max(1, base + rng.choice((-1, 0, 0, 1)))),
            compatibility=rng.randint(1, 5),
            listened_s=10,
        )
    ranking = sorted(keys, key=lambda key: (-answers[key].musicality, rng.random()))
    services.assignment_submit(
        assignment_id=assignment.pk, labeler=user, answers=answers, ranking=ranking, min_listen_s=5
    )
    return True


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sums_equal_the_pure_reference_through_random_answers_exclusions_and_resubmissions(seed):
    rng = random.Random(seed)
    generation_round = ready_round(covers=6, variants=rng.choice((3, 4)), overlap_k=rng.choice((2, 3, 4)))
    gold_task = LabelTask.objects.filter(round=generation_round).order_by("pk").first()
    services.label_task_gold_set(
        task=gold_task,
        ranking=sorted(generation_round.variants.filter(cover=gold_task.cover).values_list("pk", flat=True)),
    )
    generation_round.gold_rate = 0.3
    generation_round.save(update_fields=["gold_rate"])
    users = [labeler(f"labeler{i}") for i in range(7)]
    tastes = {user.pk: (-1 if i == 6 else 1) for i, user in enumerate(users)}
    toggles = 0
    for step in range(40):
        user = rng.choice(users)
        action = rng.random()
        if step == 20 or 0.7 <= action < 0.85:  # step 20: at least one exclusion or inclusion in every run
            excluded = LabelerExclusion.objects.filter(labeler=user).exists()
            services.labeler_exclusion_set(labeler=user, excluded=not excluded, by=None)
            toggles += 1
        elif action < 0.7:
            submit_random(rng, user, tastes[user.pk])
        else:  # resubmit one of the labeler's answers with other values
            done = list(Assignment.objects.filter(labeler=user, status=AssignmentStatus.SUBMITTED).order_by("pk"))
            if done:
                resubmitted = rng.choice(done)
                keys = services.variant_keys(len(resubmitted.order))
                answers = {k: services.VariantAnswer(rng.randint(1, 5), rng.randint(1, 5), 10) for k in keys}
                ranking = rng.sample(keys, len(keys))
                services.assignment_submit(
                    assignment_id=resubmitted.pk, labeler=user, answers=answers, ranking=ranking, min_listen_s=5
                )
        if step % 8 == 7:
            assert_same(
                selectors.round_agreement(generation_round=generation_round), reference_agreement(generation_round)
            )
    assert toggles and Rating.objects.filter(assignment__task__round=generation_round).count() >= 30
    assert_same(selectors.round_agreement(generation_round=generation_round), reference_agreement(generation_round))
    for user in users:  # everyone counted again: the widest answers, where every figure is defined
        services.labeler_exclusion_set(labeler=user, excluded=False, by=None)
    expected = reference_agreement(generation_round)
    assert expected["musicality_alpha"] is not None and expected["ranking_w"] is not None
    assert_same(selectors.round_agreement(generation_round=generation_round), expected)
    kept = sums_rows(generation_round.pk)
    agreement_sums_rebuild(round_id=generation_round.pk)
    assert sums_rows(generation_round.pk) == kept


def test_sums_of_other_rounds_are_untouched_and_a_round_without_answers_has_no_figures():
    first = ready_round(covers=2, variants=3, overlap_k=2)
    ann, bob = labeler("ann"), labeler("bob")
    rng = random.Random(5)
    assert submit_random(rng, ann, 1) and submit_random(rng, bob, 1)
    empty = services.round_create(
        name="later",
        covers=list(first.covers.all()),
        captioner_version=first.captioner_version,
        variants_per_cover=3,
        seed=2,
    )
    figures = selectors.round_agreement(generation_round=empty)
    assert figures == {
        "ratings": 0,
        "musicality_alpha": None,
        "compatibility_alpha": None,
        "ranking_w": None,
        "labelers": [],
    }
    assert_same(selectors.round_agreement(generation_round=first), reference_agreement(first))
    assert selectors.round_agreement(generation_round=first)["ratings"] == 6


def test_the_rebuild_command_repairs_sums_after_a_labeler_account_is_deleted(capsys):
    generation_round = ready_round(covers=2, variants=3, overlap_k=3)
    rng = random.Random(9)
    users = [labeler(name) for name in ("ann", "bob", "cy")]
    for user in users * 2:
        submit_random(rng, user, 1 if user.username != "cy" else -1)
    users[2].delete()  # cascades to cy's answers without the services: the others' consensus sums still hold cy
    expected = reference_agreement(generation_round)
    assert selectors.round_agreement(generation_round=generation_round)["ratings"] != expected["ratings"]
    call_command("agreement_sums_rebuild", "--round", str(generation_round.pk))
    assert "sums of 12 counted ratings rebuilt" in capsys.readouterr().out
    assert_same(selectors.round_agreement(generation_round=generation_round), expected)
    with pytest.raises(SystemExit) as stop:
        call_command("agreement_sums_rebuild", "--round", "999999")
    assert stop.value.code == 2
