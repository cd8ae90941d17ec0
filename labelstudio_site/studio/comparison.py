"""Win rate of a newer captioner version over an older one, from labelers' answers, with a bootstrap interval.

Pure functions on plain values (numpy only), so the arithmetic is tested on known cases; ``selectors.round_comparison``
feeds them a comparison round's submitted answers.

Within one answer (a labeler's ratings and ranking of one cover's variants), every pair of a newer and an older
variant is one comparison. On the ranking the newer one wins (1) when it is ranked better (rank 1 is best); rankings
have no ties. On a rating axis it wins when rated higher, and a tie counts half. The win rate is wins / comparisons
over all answers. Answers of one cover are not independent (same cover, same variants), so the confidence interval
comes from a cluster bootstrap: covers are drawn with replacement, each with all of its comparisons.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

AXES = ("ranking", "musicality", "compatibility")
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
# Fixed: the page shows the same interval on every visit for the same answers.
BOOTSTRAP_SEED = 0
# Resampled cover indices held at once (8 bytes each): 2000 resamples of 50,000 covers in blocks of ~32 MB.
_BOOTSTRAP_BLOCK = 4_000_000


@dataclass(frozen=True)
class VariantScores:
    """What one labeler gave one variant."""

    rank: int
    musicality: int
    compatibility: int


@dataclass(frozen=True)
class ComparedAnswer:
    """One submitted answer of a comparison round: its cover and its variants split by captioner version."""

    cover: int
    newer: Sequence[VariantScores]
    older: Sequence[VariantScores]


@dataclass(frozen=True)
class WinRate:
    """``rate`` = wins / comparisons; [``low``, ``high``] its bootstrap interval; None where nothing was compared."""

    rate: float | None
    low: float | None
    high: float | None
    covers: int
    comparisons: int


def pair_wins(newer: Sequence[float], older: Sequence[float]) -> float:
    """Wins of ``newer`` over ``older`` across all their pairs: 1 where the newer score is higher, 0.5 where equal.

    Args:
        newer: the newer version's scores in one answer (higher is better; pass ranks negated).
        older: the older version's scores in the same answer.
    """
    difference = np.subtract.outer(np.asarray(newer, dtype=np.float64), np.asarray(older, dtype=np.float64))
    return float((difference > 0).sum() + 0.5 * (difference == 0).sum())


def win_rate(
    wins: Sequence[float],
    comparisons: Sequence[int],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> WinRate:
    """Pooled win rate over covers and its percentile interval from a cluster bootstrap over covers.

    Args:
        wins: per cover, the newer version's wins (ties as halves) over all of the cover's answers.
        comparisons: per cover, the number of (newer, older) pairs those answers compared; covers with none are
            left out.
        resamples: bootstrap resamples, default 2000.
        confidence: the interval's coverage, default 0.95.
        seed: the resampling seed, default 0: the same answers give the same interval.
    """
    wins_array = np.asarray(wins, dtype=np.float64)
    comparisons_array = np.asarray(comparisons, dtype=np.float64)
    counted = comparisons_array > 0
    wins_array, comparisons_array = wins_array[counted], comparisons_array[counted]
    covers = len(comparisons_array)
    total = int(comparisons_array.sum())
    if covers == 0:
        return WinRate(rate=None, low=None, high=None, covers=0, comparisons=0)
    rng = np.random.default_rng(seed)
    rates = np.empty(resamples)
    block = max(1, _BOOTSTRAP_BLOCK // covers)
    for start in range(0, resamples, block):
        drawn = rng.integers(0, covers, size=(min(block, resamples - start), covers))
        rates[start : start + len(drawn)] = wins_array[drawn].sum(axis=1) / comparisons_array[drawn].sum(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(rates, [tail, 1 - tail])
    return WinRate(
        rate=float(wins_array.sum() / comparisons_array.sum()),
        low=float(low),
        high=float(high),
        covers=covers,
        comparisons=total,
    )


def version_win_rates(
    answers: Iterable[ComparedAnswer],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, WinRate]:
    """The newer version's win rate on the ranking and on each rating axis (keys: ``AXES``), covers as clusters.

    Args:
        answers: submitted answers; those that hold variants of only one version compare nothing.
        resamples, confidence, seed: as for ``win_rate``.
    """
    wins: dict[str, dict[int, float]] = {axis: defaultdict(float) for axis in AXES}
    comparisons: dict[int, int] = defaultdict(int)
    for answer in answers:
        if not answer.newer or not answer.older:
            continue
        comparisons[answer.cover] += len(answer.newer) * len(answer.older)
        wins["ranking"][answer.cover] += pair_wins([-v.rank for v in answer.newer], [-v.rank for v in answer.older])
        for axis in ("musicality", "compatibility"):
            wins[axis][answer.cover] += pair_wins(
                [getattr(v, axis) for v in answer.newer], [getattr(v, axis) for v in answer.older]
            )
    covers = sorted(comparisons)
    return {
        axis: win_rate(
            [wins[axis][cover] for cover in covers],
            [comparisons[cover] for cover in covers],
            resamples=resamples,
            confidence=confidence,
            seed=seed,
        )
        for axis in AXES
    }
