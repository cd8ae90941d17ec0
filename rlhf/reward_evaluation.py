"""How a reward model is judged: pair accuracy on held-out covers, with intervals, per cover group and by margin.

- **Interval**: the 95% percentile interval of 2,000 bootstrap resamples of covers (fixed seed). A cover's pairs share
  its image and its labelers, so they are not independent: resampling pairs would give intervals too narrow.
- **Cover groups** are found without knowing the labelers' taste: k-means on the covers' embeddings the model reads
  (every cover of the export, trained on or not), k from 2 to 6 chosen by the best silhouette score. A model that
  learned only the majority's taste shows it as a group near or below chance.
- **By margin**: pairs whose labels differ by more are easier; the buckets show whether the model gets the clear ones.
- **Too small to mean anything**: fewer than ``MIN_EVAL_COVERS`` held-out covers or ``MIN_EVAL_PAIRS`` held-out pairs
  gives a warning, shown wherever the accuracy is.

Light to import (numpy and scikit-learn only): the web process renders these figures from a run's stored metrics.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

MIN_EVAL_COVERS = 5
MIN_EVAL_PAIRS = 30
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
GROUP_K_RANGE = range(2, 7)
MARGIN_EDGES = (1.0, 2.0, 3.0)


@dataclass(frozen=True)
class Accuracy:
    """Share of pairs whose chosen variant scored higher, with its cover-bootstrap 95% interval."""

    accuracy: float
    low: float
    high: float
    pairs: int
    covers: int


@dataclass(frozen=True)
class RewardEvaluation:
    """A reward model's figures on held-out pairs."""

    overall: Accuracy
    groups: dict[str, Accuracy]
    group_k: int | None
    group_silhouette: float | None
    by_margin: dict[str, Accuracy]
    warning: str | None
    cover_groups: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # JSON object keys are strings: stored metrics keep cover ids as text.
        data["cover_groups"] = {str(cover): group for cover, group in self.cover_groups.items()}
        return data


def accuracy_with_interval(
    correct: Sequence[bool],
    cover_ids: Sequence[int],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Accuracy:
    """Pair accuracy and its 95% interval from bootstrap resamples of covers (a cover's pairs move together).

    Args:
        correct: per pair, whether the chosen variant scored higher.
        cover_ids: per pair, its cover.
        resamples: bootstrap resamples (default 2,000).
        seed: the resampling seed (default 0): the same pairs always give the same interval.
    """
    if not correct:
        raise ValueError("no pairs to measure an accuracy on")
    wins: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for is_correct, cover_id in zip(correct, cover_ids, strict=True):
        wins[cover_id][0] += int(is_correct)
        wins[cover_id][1] += 1
    totals = np.asarray(list(wins.values()), dtype=np.float64)
    accuracy = float(totals[:, 0].sum() / totals[:, 1].sum())
    if len(totals) == 1:
        # One cover: nothing to resample; the interval is as wide as it can be.
        return Accuracy(accuracy, 0.0, 1.0, len(correct), 1)
    draws = np.random.default_rng(seed).integers(0, len(totals), size=(resamples, len(totals)))
    sampled = totals[draws]
    shares = sampled[..., 0].sum(1) / sampled[..., 1].sum(1)
    low, high = np.percentile(shares, [2.5, 97.5])
    return Accuracy(accuracy, float(low), float(high), len(correct), len(totals))


def cover_groups(embeddings: Mapping[int, np.ndarray]) -> tuple[dict[int, int], int | None, float | None]:
    """Groups of covers by look: k-means on their embeddings, k in 2-6 by the best silhouette.

    Returns:
        (cover id -> group number, k, silhouette); one group and None, None with fewer than 4 covers.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    cover_ids = sorted(embeddings)
    if len(cover_ids) < 4:
        return {cover_id: 0 for cover_id in cover_ids}, None, None
    matrix = np.stack([embeddings[cover_id] for cover_id in cover_ids]).astype(np.float64)
    best: tuple[float, int, np.ndarray] | None = None
    for k in GROUP_K_RANGE:
        if k >= len(cover_ids):
            break
        labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(matrix)
        if len(set(labels)) < 2:
            continue
        score = float(silhouette_score(matrix, labels))
        if best is None or score > best[0]:
            best = (score, k, labels)
    if best is None:
        return {cover_id: 0 for cover_id in cover_ids}, None, None
    score, k, labels = best
    return {cover_id: int(label) for cover_id, label in zip(cover_ids, labels, strict=True)}, k, score


def margin_bucket(margin: float) -> str:
    """The margin bucket's label: below 1, 1 to 2, 2 to 3, 3 and above."""
    low = 0.0
    for edge in MARGIN_EDGES:
        if abs(margin) < edge:
            return f"{low:g}-{edge:g}"
        low = edge
    return f"{MARGIN_EDGES[-1]:g}+"


def small_evaluation_warning(pairs: int, covers: int) -> str | None:
    """The warning for a held-out part too small to mean anything, or None."""
    if covers >= MIN_EVAL_COVERS and pairs >= MIN_EVAL_PAIRS:
        return None
    return (
        f"only {pairs} held-out pair(s) of {covers} cover(s): below {MIN_EVAL_PAIRS} pairs or {MIN_EVAL_COVERS} "
        "covers the accuracy means little; label more covers or hold out a larger share"
    )


def evaluate_pairs(
    *,
    correct: Sequence[bool],
    cover_ids: Sequence[int],
    margins: Sequence[float | None],
    embeddings: Mapping[int, np.ndarray],
) -> RewardEvaluation:
    """The figures of one evaluation.

    Args:
        correct: per held-out pair, whether the chosen variant scored higher.
        cover_ids: per pair, its cover.
        margins: per pair, its margin (None when the export has none).
        embeddings: the embeddings of every cover of the export, for the groups.
    """
    groups_of, k, silhouette = cover_groups(embeddings)
    by_group: dict[str, tuple[list[bool], list[int]]] = defaultdict(lambda: ([], []))
    by_margin: dict[str, tuple[list[bool], list[int]]] = defaultdict(lambda: ([], []))
    for is_correct, cover_id, margin in zip(correct, cover_ids, margins, strict=True):
        group = by_group[f"group {groups_of.get(cover_id, 0) + 1}"]
        group[0].append(is_correct)
        group[1].append(cover_id)
        if margin is not None:
            bucket = by_margin[margin_bucket(float(margin))]
            bucket[0].append(is_correct)
            bucket[1].append(cover_id)
    overall = accuracy_with_interval(correct, cover_ids)
    return RewardEvaluation(
        overall=overall,
        groups={name: accuracy_with_interval(*by_group[name]) for name in sorted(by_group)},
        group_k=k,
        group_silhouette=silhouette,
        by_margin={name: accuracy_with_interval(*by_margin[name]) for name in sorted(by_margin)},
        warning=small_evaluation_warning(overall.pairs, overall.covers),
        cover_groups=groups_of,
    )


def evaluation_lines(evaluation: RewardEvaluation) -> list[str]:
    """The figures as lines for a terminal or a log: overall, per cover group, by margin, the warning."""

    def figure(accuracy: Accuracy) -> str:
        return (
            f"{accuracy.accuracy:.3f} [95% CI {accuracy.low:.3f}-{accuracy.high:.3f}] "
            f"on {accuracy.pairs} pairs of {accuracy.covers} covers"
        )

    lines = [f"held-out pair accuracy {figure(evaluation.overall)}"]
    found = (
        f"k-means k={evaluation.group_k}, silhouette {evaluation.group_silhouette:.2f}" if evaluation.group_k else ""
    )
    for name, accuracy in evaluation.groups.items():
        lines.append(f"  cover {name}{f' ({found})' if found else ''}: {figure(accuracy)}")
    for name, accuracy in evaluation.by_margin.items():
        lines.append(f"  margin {name}: {figure(accuracy)}")
    if evaluation.warning:
        lines.append(f"warning: {evaluation.warning}")
    return lines
