"""Agreement statistics: Krippendorff's alpha and Kendall's W against published examples, plus edge cases."""

import math

import numpy as np
import pytest

from labelstudio_site.studio.agreement import (
    _coincidence_matrix,
    agreement_with_consensus,
    kendalls_w,
    kendalls_w_per_group,
    krippendorff_alpha,
)

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers x 12 units, values 1-5, with missing.
OBSERVERS = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]
UNITS = [list(unit) for unit in zip(*OBSERVERS, strict=True)]


@pytest.mark.parametrize(("level", "expected"), [("nominal", 0.743), ("interval", 0.849), ("ordinal", 0.815)])
def test_krippendorff_2011_example(level, expected):
    assert krippendorff_alpha(UNITS, level=level) == pytest.approx(expected, rel=1e-3)


def test_default_level_is_ordinal():
    assert krippendorff_alpha(UNITS) == krippendorff_alpha(UNITS, level="ordinal")


def test_krippendorff_2011_coincidence_matrix():
    """The paper's coincidence matrix: n = 40 pairable values, marginals 9, 13, 10, 5, 3."""
    values, o = _coincidence_matrix(UNITS)
    assert values.tolist() == [1, 2, 3, 4, 5]
    assert o.sum(axis=1) == pytest.approx([9, 13, 10, 5, 3])
    assert np.diag(o) == pytest.approx([7, 10, 8, 4, 3])
    assert o[0, 1] == pytest.approx(4 / 3)
    assert o == pytest.approx(o.T)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_perfect_agreement_is_one(level):
    units = [[1, 1, 1], [2, 2], [5, 5, 5, 5], [3, 3, None]]
    assert krippendorff_alpha(units, level=level) == pytest.approx(1.0)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_systematic_disagreement_is_negative(level):
    units = [[1, 5], [5, 1], [1, 5], [5, 1]]
    alpha = krippendorff_alpha(units, level=level)
    assert alpha is not None and alpha < 0
    # o_15 = o_51 = 4, n_1 = n_5 = 4, n = 8: alpha = 1 - (n - 1) * sum(o delta) / sum(n_c n_k delta) = 1 - 7 * 8 / 32.
    assert alpha == pytest.approx(1 - 7 / 4)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_missing_values_and_single_value_units_are_ignored(level):
    padded = [[*unit, None] for unit in UNITS] + [[None, None, 4], [2], [], [None], [float("nan"), 1]]
    assert krippendorff_alpha(padded, level=level) == pytest.approx(krippendorff_alpha(UNITS, level=level))


@pytest.mark.parametrize(
    "units",
    [
        [],
        [[None, None], [3]],
        [[1], [2], [3]],
        [[3, 3], [3, 3, 3]],  # no variation: expected disagreement is 0
    ],
)
def test_undefined_alpha_is_none(units):
    assert krippendorff_alpha(units) is None


def test_binary_data_gives_the_same_alpha_at_every_level():
    units = [[0, 0, 1], [1, 1], [0, 0], [1, 0, 1], [1, 1, 1]]
    alphas = [krippendorff_alpha(units, level=level) for level in ("nominal", "ordinal", "interval")]
    assert alphas[0] is not None
    assert alphas == pytest.approx([alphas[0]] * 3)


def test_ordinal_alpha_depends_only_on_the_order_of_values():
    stretched = {1: 10.0, 2: 20.0, 3: 40.0, 4: 80.0, 5: 160.0}
    remapped = [[None if v is None else stretched[v] for v in unit] for unit in UNITS]
    assert krippendorff_alpha(remapped, level="ordinal") == pytest.approx(krippendorff_alpha(UNITS, level="ordinal"))
    assert krippendorff_alpha(remapped, level="interval") != pytest.approx(krippendorff_alpha(UNITS, level="interval"))


def test_unknown_level_is_rejected():
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha(UNITS, level="ratio")


# Kendall's W.


def test_identical_rankings_give_one():
    assert kendalls_w([[1, 2, 3, 4]] * 3) == pytest.approx(1.0)


def test_reversed_rankings_by_two_raters_give_zero():
    assert kendalls_w([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]]) == pytest.approx(0.0)


def test_proofwiki_example():
    """ProofWiki "Kendall's Coefficient of Concordance/Examples/Arbitrary Example 1": 4 judges x 3 competitors."""
    assert kendalls_w([[1, 3, 2], [1, 2, 3], [2, 3, 1], [3, 1, 2]]) == pytest.approx(1 / 16)


def test_ten_projects_by_four_judges():
    """Textbook example: 4 judges rank 10 projects, sum of squared deviations 1048, W = 12 * 1048 / (16 * 990)."""
    judges = [
        [1, 3, 4, 5, 2, 8, 6, 7, 10, 9],
        [2, 1, 4, 5, 6, 3, 8, 7, 10, 9],
        [3, 2, 1, 5, 7, 4, 6, 8, 9, 10],
        [4, 2, 3, 1, 6, 7, 5, 9, 8, 10],
    ]
    assert kendalls_w(judges) == pytest.approx(12 * 1048 / (16 * 990))


def test_w_matches_mean_spearman_without_ties():
    """Without ties, the mean pairwise Spearman rho equals (m W - 1) / (m - 1)."""
    rankings = [[1, 2, 3, 4], [2, 1, 3, 4], [1, 3, 2, 4]]
    w = kendalls_w(rankings)
    assert w == pytest.approx(7 / 9)
    rhos = [np.corrcoef(a, b)[0, 1] for i, a in enumerate(rankings) for b in rankings[i + 1 :]]
    assert (3 * w - 1) / 2 == pytest.approx(np.mean(rhos))


def test_tie_correction():
    """R = 3.5, 5.5, 9.5, 11.5 so S = 40; T = 6 + 6; W = 12 * 40 / (9 * 60 - 3 * 12) = 20 / 21."""
    rankings = [[1, 2, 3, 4], [1.5, 1.5, 3, 4], [1, 2, 3.5, 3.5]]
    assert kendalls_w(rankings) == pytest.approx(20 / 21)
    # Without the correction the same data would give 480 / 540.
    assert kendalls_w(rankings) != pytest.approx(480 / 540)


def test_dense_tie_ranks_are_read_as_average_ranks():
    assert kendalls_w([[1, 2, 3, 4], [1, 1, 2, 3], [1, 2, 3, 3]]) == pytest.approx(20 / 21)


@pytest.mark.parametrize(
    "rankings",
    [
        [],
        [[1, 2, 3]],  # one rater
        [[1], [1], [1]],  # one item
        [[1, 1, 1], [2, 2, 2]],  # every item tied by every rater: denominator 0
    ],
)
def test_undefined_w_is_none(rankings):
    assert kendalls_w(rankings) is None


def test_ragged_rankings_are_rejected():
    with pytest.raises(ValueError):
        kendalls_w([[1, 2, 3], [1, 2]])


def test_w_per_group_is_the_mean_of_defined_groups():
    groups = [
        [[1, 2, 3], [1, 2, 3]],  # W = 1
        [[1, 2], [2, 1]],  # W = 0
        [[1, 2, 3]],  # one labeler: ignored
        [[1, 1], [1, 1]],  # all tied: ignored
    ]
    assert kendalls_w_per_group(groups) == pytest.approx(0.5)


def test_w_per_group_none_when_no_group_is_defined():
    assert kendalls_w_per_group([]) is None
    assert kendalls_w_per_group([[[1, 2, 3]], [[1], [1]]]) is None


# Agreement with the consensus.


def test_agreement_with_consensus_is_pearson():
    values = [1, 2, 4, 5, 3]
    consensus = [1.5, 2.0, 3.5, 4.5, 3.5]
    assert agreement_with_consensus(values, consensus) == pytest.approx(np.corrcoef(values, consensus)[0, 1])


def test_agreement_with_consensus_extremes():
    assert agreement_with_consensus([1, 2, 3], [2, 3, 4]) == pytest.approx(1.0)
    assert agreement_with_consensus([1, 2, 3], [5, 3, 1]) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("values", "consensus"),
    [([], []), ([3], [4]), ([3, 3, 3], [1, 2, 3]), ([1, 2, 3], [0.1, 0.1, 0.1])],
)
def test_agreement_with_consensus_undefined_is_none(values, consensus):
    assert agreement_with_consensus(values, consensus) is None


def test_agreement_with_consensus_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        agreement_with_consensus([1, 2], [1, 2, 3])


def test_results_are_plain_floats():
    for result in (krippendorff_alpha(UNITS), kendalls_w([[1, 2], [1, 2]]), agreement_with_consensus([1, 2], [1, 3])):
        assert type(result) is float and math.isfinite(result)
