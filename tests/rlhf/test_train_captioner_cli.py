"""``python -m rlhf train-captioner`` locally on the fixture catalog, then ``python -m generation evaluate`` of base
and tuned; bad options and unreachable studios end with a sentence and an exit code."""

from pathlib import Path

import pytest

from generation.__main__ import main as generation_cli
from rlhf.__main__ import main as rlhf_cli

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "fixtures" / "musicoset"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sft")
    args = ["train-captioner", "--catalog", str(CATALOG), "--out", str(out), "--max-covers", "4"]
    assert rlhf_cli([*args, "--learning-rate", "0.03", "--per-device-train-batch-size", "2"]) == 0
    return out


def test_local_sft_writes_the_set_and_an_adapter_and_reports_parameters(trained, capsys):
    assert (trained / "adapter" / "adapter_config.json").is_file()
    assert len((trained / "sft.jsonl").read_text().splitlines()) == 4


def test_evaluate_prints_the_table_for_the_base_and_the_tuned_captioner(trained, tmp_path, capsys):
    index = tmp_path / "index"
    assert generation_cli(["build-index", "--catalog", str(CATALOG), "--out", str(index)]) == 0
    capsys.readouterr()
    common = ["evaluate", "--index", str(index), "--limit", "2", "--constrained-only"]
    assert generation_cli(common) == 0
    base = capsys.readouterr().out
    assert generation_cli([*common, "--adapter", str(trained / "adapter")]) == 0
    tuned = capsys.readouterr().out
    assert "captioner tiny-internvl:captioner:seed0\n" in base
    assert f"captioner tiny-internvl:captioner:seed0 + {trained / 'adapter'}" in tuned
    for table in (base, tuned):
        assert "RAG constrained" in table and "2/2" in table and "retrieval baseline K=10" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learning-rate", "2"], "learning_rate must be in (0, 1)"),
        ([], "give --out DIR for the adapter"),
        (["--server", "http://127.0.0.1:9"], "name the base captioner version (--parent-version ID)"),
    ],
)
def test_bad_options_exit_2_with_a_sentence(args, message, capsys):
    assert rlhf_cli(["train-captioner", *args]) == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_studio_exits_1_with_a_sentence(capsys):
    args = ["train-captioner", "--server", "http://127.0.0.1:9", "--parent-version", "1", "--admin-token", "t"]
    assert rlhf_cli([*args, "--name", "x"]) == 1
    assert "could not reach http://127.0.0.1:9" in capsys.readouterr().err


def test_an_empty_catalog_exits_2(tmp_path, capsys):
    assert rlhf_cli(["train-captioner", "--catalog", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "train-captioner:" in capsys.readouterr().err
    assert not (tmp_path / "o" / "adapter").exists()
