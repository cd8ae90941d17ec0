"""The oracle ceiling: reading the simulator's noise-free scores back, and the share of pairs they agree with."""

import json

import pytest

from rlhf.oracle import OracleCeiling, OracleError, oracle_ceiling, read_oracle_scores


def line(variant_id, score, **extra) -> str:
    return json.dumps(
        {"assignment_id": 1, "labeler": "sim-1", "variant_id": variant_id, "key": "a", "score": score, **extra}
    )


def pair(chosen: int, rejected: int, cover_id: int = 1) -> dict:
    return {"chosen_variant_id": chosen, "rejected_variant_id": rejected, "cover_id": cover_id, "margin": 1.0}


def test_scores_are_the_mean_over_the_labelers_who_rated_a_variant(tmp_path):
    path = tmp_path / "oracle.jsonl"
    path.write_text("\n".join([line(1, 0.2), line(1, 0.4, labeler="sim-2"), "", line(2, 1), line(3, 0.5)]) + "\n")
    assert read_oracle_scores(path) == {1: pytest.approx(0.3), 2: 1.0, 3: 0.5}
    assert read_oracle_scores(str(path)) == read_oracle_scores(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json\n", "line 1 of the oracle file"),
        (line(1, 0.5) + "\n[1, 2]\n", "line 2 of the oracle file"),
        (json.dumps({"variant_id": 1}) + "\n", "needs an integer variant_id and a finite number score"),
        (line("7", 0.5) + "\n", "integer variant_id"),
        (line(True, 0.5) + "\n", "integer variant_id"),
        (line(1, "0.5") + "\n", "finite number score"),
        (line(1, float("nan")) + "\n", "finite number score"),
    ],
)
def test_a_bad_line_is_one_sentence_naming_it(tmp_path, text, message):
    path = tmp_path / "oracle.jsonl"
    path.write_text(text)
    with pytest.raises(OracleError, match=message) as caught:
        read_oracle_scores(path)
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)


def test_a_missing_file_is_one_sentence(tmp_path):
    with pytest.raises(OracleError, match="cannot read the oracle file .*nothing.jsonl"):
        read_oracle_scores(tmp_path / "nothing.jsonl")


def test_the_ceiling_counts_agreements_ties_as_half_and_leaves_out_missing_variants():
    scores = {1: 0.9, 2: 0.5, 3: 0.5, 4: 0.1}
    rows = [
        pair(1, 2),  # agrees
        pair(1, 4),  # agrees
        pair(2, 3),  # tie: half
        pair(4, 1),  # against the oracle (noise)
        pair(1, 99),  # 99 was never rated: left out
        pair(98, 99),
    ]
    ceiling = oracle_ceiling(rows, scores)
    assert ceiling == OracleCeiling(accuracy=2.5 / 4, pairs=4, agree=2, ties=1, missing=2, groups={})


def test_per_group_ceilings_split_the_pairs_by_cover():
    scores = {1: 0.9, 2: 0.1, 3: 0.8, 4: 0.2}
    rows = [pair(1, 2, cover_id=10), pair(2, 1, cover_id=10), pair(3, 4, cover_id=20), pair(3, 5, cover_id=20)]
    rows.append(pair(3, 4, cover_id=30))  # a cover in no group: in the total only
    ceiling = oracle_ceiling(rows, scores, groups={10: "bright", 20: "dark"})
    assert (ceiling.accuracy, ceiling.pairs, ceiling.missing) == (0.75, 4, 1)
    assert sorted(ceiling.groups) == ["bright", "dark"]
    assert ceiling.groups["bright"] == OracleCeiling(accuracy=0.5, pairs=2, agree=1, ties=0, missing=0)
    assert ceiling.groups["dark"] == OracleCeiling(accuracy=1.0, pairs=1, agree=1, ties=0, missing=1)


def test_no_pair_in_the_oracle_has_no_accuracy_and_a_row_without_ids_is_an_error():
    empty = oracle_ceiling([pair(1, 2)], {})
    assert empty.accuracy is None and (empty.pairs, empty.missing) == (0, 1)
    assert oracle_ceiling([], {1: 0.5}).accuracy is None
    with pytest.raises(OracleError, match="pair row 1 has no rejected_variant_id"):
        oracle_ceiling([pair(1, 2), {"chosen_variant_id": 1}], {1: 0.5, 2: 0.1})
    with pytest.raises(OracleError, match="pair row 0 has no cover_id"):
        oracle_ceiling([{"chosen_variant_id": 1, "rejected_variant_id": 2}], {1: 0.5, 2: 0.1}, groups={1: "x"})
