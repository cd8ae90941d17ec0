"""Preference pairs from answers: rankings, rating margins per axis, ties, aggregation, gold agreement."""

import pytest

from rlhf.pairs import Answer, PairOptions, gold_agreement, spearman, task_pairs


def answers(labeler: int, ranks: list[int], musicality: list[int], compatibility: list[int]) -> list[Answer]:
    return [
        Answer(labeler, variant, m, c, r)
        for variant, (r, m, c) in enumerate(zip(ranks, musicality, compatibility, strict=True), start=10)
    ]


def as_tuples(pairs):
    return sorted((p.chosen, p.rejected, p.margin, p.labeler_ids) for p in pairs)


def test_a_ranking_of_four_gives_six_pairs_with_the_distance_as_margin():
    pairs = as_tuples(task_pairs(answers(1, [2, 1, 4, 3], [3] * 4, [3] * 4), PairOptions()))
    assert len(pairs) == 6
    assert (11, 10, 1.0, (1,)) in pairs and (11, 12, 3.0, (1,)) in pairs and (13, 12, 1.0, (1,)) in pairs


@pytest.mark.parametrize(
    ("axis", "expected"),
    [
        ("musicality", [(10, 11, 2.0, (1,)), (10, 12, 1.0, (1,)), (12, 11, 1.0, (1,))]),
        ("compatibility", [(11, 10, 1.0, (1,)), (12, 10, 4.0, (1,)), (12, 11, 3.0, (1,))]),
        # combined: 3, 2.5, 4.5 -> the half-point gap between 10 and 11 is below the margin
        ("combined", [(12, 10, 1.5, (1,)), (12, 11, 2.0, (1,))]),
    ],
)
def test_rating_pairs_per_axis_respect_the_minimum_margin_and_drop_ties(axis, expected):
    given = answers(1, [1, 2, 3], [5, 3, 4], [1, 2, 5])
    options = PairOptions(source="ratings", axis=axis, min_margin=1.0)
    assert as_tuples(task_pairs(given, options)) == expected


def test_kept_ties_appear_in_both_orders_with_margin_zero():
    given = answers(1, [1, 2], [4, 4], [3, 3])
    assert as_tuples(task_pairs(given, PairOptions(source="ratings", axis="musicality"))) == []
    kept = as_tuples(task_pairs(given, PairOptions(source="ratings", axis="musicality", ties="keep")))
    assert kept == [(10, 11, 0.0, (1,)), (11, 10, 0.0, (1,))]


def test_per_labeler_pairs_keep_disagreement_and_means_resolve_it():
    given = answers(1, [1, 2, 3], [3] * 3, [3] * 3) + answers(2, [1, 2, 3], [3] * 3, [3] * 3)
    given += answers(3, [2, 1, 3], [3] * 3, [3] * 3)
    per_labeler = as_tuples(task_pairs(given, PairOptions()))
    assert (10, 11, 1.0, (1,)) in per_labeler and (11, 10, 1.0, (3,)) in per_labeler and len(per_labeler) == 9
    means = as_tuples(task_pairs(given, PairOptions(aggregate="mean", min_margin=0.5)))
    # mean ranks 1.33, 1.67, 3: 10 over 11 by 1/3 is below the margin; both beat 12
    assert [(c, r) for c, r, _, _ in means] == [(10, 12), (11, 12)]
    assert all(labelers == (1, 2, 3) for *_, labelers in means)


def test_gold_agreement_is_the_mean_spearman_per_labeler():
    assert spearman([1, 2, 3], [1, 2, 3]) == 1 and spearman([3, 2, 1], [1, 2, 3]) == -1
    scores = gold_agreement([(1, [10, 11, 12], {10: 1, 11: 2, 12: 3}), (2, [10, 11, 12], {10: 3, 11: 2, 12: 1})])
    assert scores == {1: 1.0, 2: -1.0}


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="axis must be one of"):
        PairOptions(axis="loudness")
    with pytest.raises(ValueError, match="min_margin"):
        PairOptions(min_margin=-1)
