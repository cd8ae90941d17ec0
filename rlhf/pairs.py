"""Preference pairs from labelers' ratings and rankings of one cover's variants (framework-free, streaming).

For each label task (a cover with its variants) the labelers' answers become pairs (chosen, rejected, margin):
- ``source="ranking"``: every two variants a labeler ranked; margin = how many places apart they are.
- ``source="ratings"``: every two variants whose ratings on ``axis`` differ by at least ``min_margin``; margin = the
  difference (musicality, compatibility, or combined = the mean of the two).
Aggregation across labelers:
- ``aggregate="none"``: one pair per labeler and variant pair (a pair three labelers agree on appears three times,
  so agreement weighs in as repetition, and disagreement as pairs in both directions).
- ``aggregate="mean"``: per variant, the mean over labelers (rating on the axis, or rank for rankings); one pair per
  variant pair from those means, margin = the difference of the means.
Ties (equal ratings or mean ranks): ``ties="drop"`` leaves them out; ``ties="keep"`` writes both orders with margin
0, which pulls the two scores together under a Bradley-Terry loss instead of inventing a winner.
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import combinations

AXES = ("musicality", "compatibility", "combined")
SOURCES = ("ranking", "ratings")
AGGREGATES = ("none", "mean")
TIES = ("drop", "keep")
# Written into every export's options; a reward run refuses a snapshot of another format.
PREFERENCE_FORMAT = "albumgen-preferences-v1"


@dataclass(frozen=True)
class Answer:
    """One labeler's answer about one variant of a task."""

    labeler_id: int
    variant_id: int
    musicality: int
    compatibility: int
    rank: int

    def value(self, axis: str) -> float:
        if axis == "combined":
            return (self.musicality + self.compatibility) / 2
        return float(getattr(self, axis))


@dataclass
class PairOptions:
    """How answers become pairs; the export stores these with its counts."""

    source: str = field(default="ranking", metadata={"help": "ranking or ratings."})
    axis: str = field(
        default="combined", metadata={"help": "ratings axis: musicality, compatibility or combined (their mean)."}
    )
    min_margin: float = field(
        default=1.0, metadata={"help": "Smallest rating difference (or mean-rank difference) that makes a pair."}
    )
    ties: str = field(default="drop", metadata={"help": "drop ties, or keep them as both orders with margin 0."})
    aggregate: str = field(default="none", metadata={"help": "none: a pair per labeler; mean: over labelers."})

    def __post_init__(self) -> None:
        for name, allowed in (("source", SOURCES), ("axis", AXES), ("ties", TIES), ("aggregate", AGGREGATES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        if self.min_margin < 0:
            raise ValueError("min_margin must be at least 0")


@dataclass(frozen=True)
class Pair:
    chosen: int
    rejected: int
    margin: float
    labeler_ids: tuple[int, ...]


def _scores(answers: Sequence[Answer], options: PairOptions) -> dict[int, dict[int, float]]:
    """Labeler -> variant -> score, higher = preferred (a rank counts negatively)."""
    scores: dict[int, dict[int, float]] = defaultdict(dict)
    for answer in answers:
        score = -float(answer.rank) if options.source == "ranking" else answer.value(options.axis)
        scores[answer.labeler_id][answer.variant_id] = score
    return scores


def _pairs_from_scores(scores: dict[int, float], options: PairOptions, labelers: tuple[int, ...]) -> Iterator[Pair]:
    # Ranks are always apart by at least one place, so min_margin applies to ratings and to mean ranks only.
    threshold = options.min_margin if options.source == "ratings" or options.aggregate == "mean" else 1.0
    for first, second in combinations(sorted(scores), 2):
        difference = scores[first] - scores[second]
        if difference == 0:
            if options.ties == "keep":
                yield Pair(first, second, 0.0, labelers)
                yield Pair(second, first, 0.0, labelers)
            continue
        if abs(difference) < threshold:
            continue
        chosen, rejected = (first, second) if difference > 0 else (second, first)
        yield Pair(chosen, rejected, abs(difference), labelers)


def task_pairs(answers: Sequence[Answer], options: PairOptions) -> Iterator[Pair]:
    """The pairs of one task's answers (all labelers' answers about its variants)."""
    by_labeler = _scores(answers, options)
    if options.aggregate == "none":
        for labeler, scores in sorted(by_labeler.items()):
            yield from _pairs_from_scores(scores, options, (labeler,))
        return
    sums: dict[int, list[float]] = defaultdict(list)
    for scores in by_labeler.values():
        for variant, score in scores.items():
            sums[variant].append(score)
    means = {variant: sum(values) / len(values) for variant, values in sums.items()}
    yield from _pairs_from_scores(means, options, tuple(sorted(by_labeler)))


def spearman(own: Sequence[float], known: Sequence[float]) -> float | None:
    """Spearman's rank correlation of two rankings without ties (None for fewer than two items)."""
    n = len(own)
    if n < 2 or len(known) != n:
        return None
    d2 = sum((a - b) ** 2 for a, b in zip(own, known, strict=True))
    return 1 - 6 * d2 / (n * (n * n - 1))


def gold_agreement(answers: Iterable[tuple[int, Sequence[int], dict[int, int]]]) -> dict[int, float]:
    """Per labeler, the mean Spearman correlation of their rankings with gold rankings.

    Args:
        answers: (labeler id, gold ranking as variant ids best first, the labeler's rank per variant id).
    """
    scores: dict[int, list[float]] = defaultdict(list)
    for labeler, gold, ranks in answers:
        own = [float(ranks[v]) for v in gold if v in ranks]
        known = [float(i + 1) for i, v in enumerate(gold) if v in ranks]
        score = spearman(own, known)
        if score is not None:
            scores[labeler].append(score)
    return {labeler: sum(values) / len(values) for labeler, values in scores.items()}
