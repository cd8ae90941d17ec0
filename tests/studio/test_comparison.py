"""The win-rate arithmetic of comparison rounds on known cases: pair counting, ties, and the cluster bootstrap."""

import numpy as np
import pytest

from labelstudio_site.studio.comparison import (
    ComparedAnswer,
    VariantScores,
    WinRate,
    pair_wins,
    version_win_rates,
    win_rate,
)


def scores(rank: int, musicality: int = 3, compatibility: int = 3) -> VariantScores:
    return VariantScores(rank=rank, musicality=musicality, compatibility=compatibility)


def test_pair_wins_counts_every_newer_older_pair_and_ties_as_halves():
    assert pair_wins([5, 3], [3, 1]) == 3.5  # 5>3, 5>1, 3=3 (half), 3>1
    assert pair_wins([1], [2, 3]) == 0.0
    assert pair_wins([-1, -3], [-2, -4]) == 3.0  # ranks negated: rank 1 beats 2 and 4, rank 3 beats 4


def test_a_newer_version_ranked_first_every_time_wins_everything_with_the_interval_at_one():
    answers = [
        ComparedAnswer(cover=cover, newer=[scores(1), scores(2)], older=[scores(3), scores(4)])
        for cover in range(10)
        for _ in range(3)  # three labelers per cover
    ]
    ranking = version_win_rates(answers)["ranking"]
    assert ranking == WinRate(rate=1.0, low=1.0, high=1.0, covers=10, comparisons=10 * 3 * 4)


def test_the_rating_axes_count_ties_as_half_a_win():
    answer = ComparedAnswer(
        cover=1,
        newer=[scores(1, musicality=5, compatibility=2), scores(3, musicality=3, compatibility=2)],
        older=[scores(2, musicality=3, compatibility=2), scores(4, musicality=1, compatibility=2)],
    )
    rates = version_win_rates([answer])
    assert rates["ranking"].rate == pytest.approx(3 / 4)
    assert rates["musicality"].rate == pytest.approx(3.5 / 4)
    assert rates["compatibility"].rate == 0.5  # all ties
    assert rates["ranking"].covers == 1 and rates["ranking"].comparisons == 4


def test_balanced_covers_give_one_half_inside_a_wide_interval():
    wins = [16.0] * 10 + [0.0] * 10  # half the covers the newer version wins all 16 pairs, half it loses all
    result = win_rate(wins, [16] * 20)
    assert result.rate == 0.5
    assert result.low < 0.5 < result.high
    # Clusters, not pairs, are resampled: 20 covers give about +-0.22, where 320 independent pairs would give
    # +-0.055; an interval this wide proves the pairs of a cover move together.
    assert result.high - result.low > 0.3


def test_the_interval_narrows_with_more_covers():
    rng = np.random.default_rng(7)

    def covers(n: int) -> WinRate:
        wins = rng.binomial(16, 0.6, size=n).astype(float)
        return win_rate(wins, [16] * n)

    few, many = covers(20), covers(500)
    assert few.low <= few.rate <= few.high and many.low <= many.rate <= many.high
    assert (many.high - many.low) < (few.high - few.low) / 3  # ~sqrt(25) = 5 times narrower
    assert many.low < 0.6 < many.high


def test_the_same_answers_give_the_same_interval_and_the_seed_is_what_fixes_it():
    wins, comparisons = [3.0, 8.0, 1.5, 6.0, 4.0], [8, 8, 4, 8, 6]
    assert win_rate(wins, comparisons) == win_rate(wins, comparisons)
    assert win_rate(wins, comparisons, seed=1) != win_rate(wins, comparisons, seed=2)


def test_answers_comparing_nothing_leave_no_rate():
    one_sided = ComparedAnswer(cover=1, newer=[scores(1), scores(2)], older=[])
    for rate in version_win_rates([one_sided]).values():
        assert rate == WinRate(rate=None, low=None, high=None, covers=0, comparisons=0)
    assert version_win_rates([])["ranking"].rate is None
