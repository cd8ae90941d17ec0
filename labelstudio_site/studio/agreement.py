"""Inter-labeler agreement statistics for the studio's ratings and rankings.

Pure functions (numpy only, no Django) so they can be used from services, management commands and notebooks alike:

* :func:`krippendorff_alpha` for the 1-5 ratings (one unit = one (variant, axis) rated by several labelers);
* :func:`kendalls_w` / :func:`kendalls_w_per_group` for the rankings of one cover's variants;
* :func:`agreement_with_consensus` for how far one labeler follows the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

LEVELS = ("nominal", "ordinal", "interval")


def _coincidence_matrix(units: Sequence[Sequence[float | None]]) -> tuple[FloatArray, FloatArray]:
    """Build Krippendorff's coincidence matrix from units of values.

    Args:
        units: One sequence of values per unit; None/NaN entries are missing.

    Returns:
        ``(values, o)``: the sorted distinct pairable values and the matrix ``o[c, k]`` = sum over units of the number
        of ordered c-k pairs of values from different coders divided by ``m_u - 1``. Both are empty when no unit holds
        at least two values.
    """
    # NaN is treated like None: pandas/numpy exports of a ratings table mark missing cells that way.
    pairable = [[float(v) for v in unit if v is not None and not math.isnan(v)] for unit in units]
    pairable = [unit for unit in pairable if len(unit) >= 2]  # a lone value cannot be compared with anything
    if not pairable:
        return np.zeros(0), np.zeros((0, 0))
    values = np.unique(np.concatenate([np.asarray(unit, dtype=np.float64) for unit in pairable]))
    o = np.zeros((len(values), len(values)))
    for unit in pairable:
        counts = np.bincount(np.searchsorted(values, unit), minlength=len(values)).astype(np.float64)
        # Ordered pairs of distinct entries: n_c * n_k off the diagonal, n_c * (n_c - 1) on it.
        o += (np.outer(counts, counts) - np.diag(counts)) / (len(unit) - 1)
    return values, o


def _delta_squared(values: FloatArray, n_c: FloatArray, level: str) -> FloatArray:
    """Squared difference function ``delta^2[c, k]`` for the given level of measurement.

    Args:
        values: Sorted distinct pairable values.
        n_c: Marginal frequency of each value in the coincidence matrix.
        level: "nominal", "ordinal" or "interval".

    Returns:
        A symmetric matrix with a zero diagonal.
    """
    if level == "nominal":
        return 1.0 - np.eye(len(values))
    if level == "interval":
        return np.subtract.outer(values, values) ** 2
    # Ordinal (Krippendorff 2011): (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2, i.e. distances between ranks of the
    # pooled values, so only the order of the values matters, not their spacing.
    index = np.arange(len(values))
    low, high = np.minimum.outer(index, index), np.maximum.outer(index, index)
    cumulative = np.cumsum(n_c)
    between = cumulative[high] - cumulative[low] + n_c[low]
    return (between - np.add.outer(n_c, n_c) / 2.0) ** 2


def krippendorff_alpha(units: Sequence[Sequence[float | None]], *, level: str = "ordinal") -> float | None:
    """Krippendorff's alpha for a reliability data matrix given unit by unit (coincidence-matrix method).

    Units with fewer than two values (after dropping None/NaN) are not pairable and are ignored, so any number of
    coders per unit and missing ratings are fine.

    Args:
        units: One sequence of values per unit (e.g. the ratings of one (variant, axis) by its labelers).
        level: Level of measurement: "ordinal" (default, suits the 1-5 scales), "interval" or "nominal".

    Returns:
        Alpha (1 = perfect agreement, 0 = chance, negative = systematic disagreement), or None when there are fewer
        than two pairable values or no variation at all (expected disagreement 0, alpha undefined).

    Raises:
        ValueError: If ``level`` is not one of the supported levels.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    values, o = _coincidence_matrix(units)
    return krippendorff_alpha_from_coincidences(values, o, level=level)


def krippendorff_alpha_from_coincidences(values: FloatArray, o: FloatArray, *, level: str = "ordinal") -> float | None:
    """Krippendorff's alpha from a coincidence matrix already summed over the units (e.g. by a database).

    Args:
        values: The sorted distinct values that index ``o``; values whose row of ``o`` is all zero are ignored.
        o: ``o[c, k]``, summed over pairable units, of the ordered c-k pairs of values from different coders divided
            by the unit's number of values minus one (see :func:`krippendorff_alpha`).
        level: "ordinal" (default), "interval" or "nominal".

    Returns:
        As :func:`krippendorff_alpha`.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    present = np.asarray(o).sum(axis=1) > 0
    values, o = np.asarray(values, dtype=np.float64)[present], np.asarray(o, dtype=np.float64)[present][:, present]
    n_c = o.sum(axis=1)
    n = float(n_c.sum())
    if n < 2:
        return None
    delta = _delta_squared(values, n_c, level)
    # alpha = 1 - D_o / D_e with D_o = sum(o * delta) / n and D_e = sum(n_c n_k delta) / (n (n - 1)).
    expected = float(np.sum(np.outer(n_c, n_c) * delta))
    if expected <= 0:
        return None
    observed = float(np.sum(o * delta))
    return 1.0 - (n - 1.0) * observed / expected


def _average_ranks(row: FloatArray) -> FloatArray:
    """Rank one rater's values 1..n (smallest = 1), giving tied values the mean of the ranks they span."""
    order = np.argsort(row, kind="stable")
    ordered = row[order]
    ranks = np.empty(len(row))
    start = 0
    while start < len(row):
        end = start
        while end + 1 < len(row) and ordered[end + 1] == ordered[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def kendalls_w(rankings: Sequence[Sequence[float]]) -> float | None:
    """Kendall's coefficient of concordance W, with the standard tie correction.

    Each rater's row is re-ranked with average ranks for ties (order preserved, 1 = best), so proper average ranks
    pass through unchanged and dense or competition rankings of ties (1, 1, 2 or 1, 1, 3) are handled the same way.

    Args:
        rankings: ``rankings[rater][item]`` = rank given by that rater to that item; every rater ranks the same items.

    Returns:
        W in [0, 1] (1 = all raters rank identically, 0 = no concordance), or None when there are fewer than two
        raters or items, or when the denominator is 0 (every rater ties every item).

    Raises:
        ValueError: If the raters' rows do not all have the same length.
    """
    m = len(rankings)
    if m < 2:
        return None
    n = len(rankings[0])
    if any(len(row) != n for row in rankings):
        raise ValueError("every rater must rank the same number of items")
    if n < 2:
        return None
    ranks = np.vstack([_average_ranks(np.asarray(row, dtype=np.float64)) for row in rankings])
    totals = ranks.sum(axis=0)
    s = float(np.sum((totals - totals.mean()) ** 2))
    # T_j = sum over tie groups of rater j of (t^3 - t).
    ties = 0.0
    for row in ranks:
        _, counts = np.unique(row, return_counts=True)
        ties += float(np.sum(counts.astype(np.float64) ** 3 - counts))
    denominator = m * m * (n**3 - n) - m * ties
    if denominator <= 0:
        return None
    return 12.0 * s / denominator


def kendalls_w_per_group(groups: Sequence[Sequence[Sequence[float]]]) -> float | None:
    """Mean Kendall's W over independent groups (e.g. one group = one cover's variants ranked by its labelers).

    Args:
        groups: One ``rankings`` argument of :func:`kendalls_w` per group.

    Returns:
        The unweighted mean of the groups' W, ignoring groups where W is None; None if every group's W is None.
    """
    ws = [w for w in (kendalls_w(group) for group in groups) if w is not None]
    if not ws:
        return None
    return float(np.mean(ws))


def agreement_with_consensus(values: Sequence[float], consensus: Sequence[float]) -> float | None:
    """Correlation between one labeler's ratings and the consensus of the others on the same items.

    Pearson correlation on the raw ratings: on short 1-5 scales it tracks Spearman's rho closely and, unlike rho,
    keeps the size of disagreements; the caller computes the consensus (mean of the other labelers' ratings) so the
    labeler is never correlated with themself.

    Args:
        values: The labeler's ratings, one per item.
        consensus: The consensus rating of the same items, in the same order.

    Returns:
        The correlation in [-1, 1], or None when there are fewer than two items or either side has zero variance.

    Raises:
        ValueError: If the two sequences differ in length.
    """
    if len(values) != len(consensus):
        raise ValueError("values and consensus must have the same length")
    if len(values) < 2:
        return None
    x = np.asarray(values, dtype=np.float64)
    y = np.asarray(consensus, dtype=np.float64)
    # Exact check for constant input: a rounding residue in the variance would otherwise give a meaningless r.
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    r = float(np.sum(dx * dy) / math.sqrt(float(np.sum(dx * dx)) * float(np.sum(dy * dy))))
    return max(-1.0, min(1.0, r))  # clamp rounding just outside [-1, 1]
