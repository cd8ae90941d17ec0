"""The oracle ceiling: the best pair accuracy any model can reach on labels from simulated labelers.

Simulated labelers (``python -m rlhf simulate --oracle-out PATH``) answer around a hidden, noise-free score per
variant and write that score to an oracle file (format: ``rlhf/simulate.py``'s docstring). With noise, some labels
contradict the hidden preference; a model can at best learn the preference itself, so the share of preference pairs
whose chosen variant has the higher noise-free score is the ceiling of any reward model's pair accuracy on those
pairs. A reward model near the ceiling has learnt the taste; the gap between the ceiling and 1 is the labels' noise.

Framework-free, standard library only.
"""

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class OracleError(ValueError):
    """An oracle file that cannot be read, or a pair row without variant ids; the message says why in one sentence."""


@dataclass(frozen=True)
class OracleCeiling:
    """How often preference pairs agree with the noise-free scores.

    Attributes:
        accuracy: share of the counted pairs whose chosen variant has the higher noise-free score, a tie counting
            half; the best pair accuracy any model can reach on these pairs. None when no pair was counted.
        pairs: pairs counted (both variants in the oracle).
        agree: counted pairs whose chosen variant scores higher.
        ties: counted pairs whose two variants score the same (each counts half in ``accuracy``).
        missing: pairs left out because a variant has no oracle score.
        groups: the same per group of covers, by group name (empty unless groups were given).
    """

    accuracy: float | None
    pairs: int
    agree: int
    ties: int
    missing: int
    groups: dict[str, "OracleCeiling"] = field(default_factory=dict)


def read_oracle_scores(path: str | Path) -> dict[int, float]:
    """Each variant's noise-free score, from an oracle file written by ``python -m rlhf simulate --oracle-out``.

    Args:
        path: the oracle file (JSON lines with at least ``variant_id`` and ``score``); blank lines are skipped.

    Returns:
        variant id -> the mean score over the lines naming it (every labeler who rated it; a deterministic
        preference gives them all the same score).

    Raises:
        OracleError: the file is missing or unreadable, or a line is not a JSON object with an integer
            ``variant_id`` and a finite number ``score``.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OracleError(f"cannot read the oracle file {path} ({exc})") from exc
    sums: dict[int, list[float]] = defaultdict(list)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise OracleError(f"line {number} of the oracle file {path} is not JSON ({exc.msg})") from exc
        variant, score = _variant_and_score(entry)
        if variant is None or score is None:
            raise OracleError(
                f"line {number} of the oracle file {path} needs an integer variant_id and a finite number score"
            )
        sums[variant].append(score)
    return {variant: sum(values) / len(values) for variant, values in sums.items()}


def _variant_and_score(entry: Any) -> tuple[int | None, float | None]:
    if not isinstance(entry, dict):
        return None, None
    variant, score = entry.get("variant_id"), entry.get("score")
    if isinstance(variant, bool) or not isinstance(variant, int):
        variant = None
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        return variant, None
    return variant, float(score)


@dataclass
class _Tally:
    agree: int = 0
    ties: int = 0
    disagree: int = 0
    missing: int = 0

    def ceiling(self, groups: dict[str, OracleCeiling] | None = None) -> OracleCeiling:
        pairs = self.agree + self.ties + self.disagree
        accuracy = (self.agree + 0.5 * self.ties) / pairs if pairs else None
        return OracleCeiling(
            accuracy=accuracy,
            pairs=pairs,
            agree=self.agree,
            ties=self.ties,
            missing=self.missing,
            groups=groups or {},
        )


def oracle_ceiling(
    rows: Sequence[Mapping[str, Any]],
    scores: Mapping[int, float],
    groups: Mapping[int, str] | None = None,
) -> OracleCeiling:
    """The oracle ceiling of preference pairs: how many of them the noise-free scores agree with.

    The result's ``accuracy`` is the best pair accuracy any model can reach on these pairs: a model that knew the
    hidden preference exactly would get this share right, and every label against it is noise no model can predict.

    Args:
        rows: preference pair rows (a preference export's JSONL or Parquet rows), each with ``chosen_variant_id`` and
            ``rejected_variant_id``; ``cover_id`` too when ``groups`` is given.
        scores: variant id -> noise-free score (``read_oracle_scores``).
        groups: cover id -> group name (e.g. a cover switch's side, ``rlhf.preferences.COVER_SWITCHES``), for one
            ceiling per group as well; a row whose cover is in no group counts in the total only. Default None: no
            groups.

    Returns:
        The ceiling over all rows, with ``groups`` filled when groups were given.

    Raises:
        OracleError: a row lacks ``chosen_variant_id`` or ``rejected_variant_id`` (or ``cover_id`` with groups).
    """
    total = _Tally()
    by_group: dict[str, _Tally] = defaultdict(_Tally)
    for index, row in enumerate(rows):
        try:
            chosen, rejected = row["chosen_variant_id"], row["rejected_variant_id"]
            group = groups.get(row["cover_id"]) if groups is not None else None
        except KeyError as exc:
            raise OracleError(f"pair row {index} has no {exc.args[0]}") from exc
        tallies = [total] if group is None else [total, by_group[group]]
        for tally in tallies:
            if chosen not in scores or rejected not in scores:
                tally.missing += 1
            elif scores[chosen] > scores[rejected]:
                tally.agree += 1
            elif scores[chosen] == scores[rejected]:
                tally.ties += 1
            else:
                tally.disagree += 1
    return total.ceiling({name: tally.ceiling() for name, tally in sorted(by_group.items())})
