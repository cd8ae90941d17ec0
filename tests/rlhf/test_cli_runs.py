"""``python -m rlhf train-reward`` locally on an export's JSONL, and the option errors of train-reward and
tune-captioner (exit 2 with a sentence)."""

import json

import pytest

from generation.features import AcousticFeatures
from generation.instruction import build_instruction
from rlhf.__main__ import main as rlhf_cli
from rlhf.reward import build_tiny_reward_base

GENRES = ["pop", "rock"]


def features(energy: float) -> str:
    return AcousticFeatures("pop", "C", "major", 4, 120.0, -6.0, 0.2, 0.7, energy, 0.0, 0.1, 0.05, 0.6).to_json()


def test_local_reward_training_reports_held_out_accuracy(tmp_path, capsys):
    rows = [
        {
            "prompt": build_instruction(genres=GENRES),
            "chosen": features(0.8),
            "rejected": features(0.2),
            "margin": 1.0,
            "cover_id": cover,
        }
        for cover in range(8)
    ]
    dataset = tmp_path / "pairs.jsonl"
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    base = build_tiny_reward_base(tmp_path / "tiny-bert")
    args = ["train-reward", "--dataset", str(dataset), "--out", str(tmp_path / "rm"), "--base-model", str(base)]
    assert rlhf_cli([*args, "--eval-fraction", "0.25", "--num-train-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "6 training pairs (6 covers), 2 held out (2 covers)" in out
    assert (tmp_path / "rm" / "albumgen_reward.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train-reward"], "give --dataset FILE and --out DIR"),
        (["train-reward", "--server", "http://127.0.0.1:9"], "name the preference export (--export ID)"),
        (["tune-captioner", "--server", "http://127.0.0.1:9"], "--parent-version ID and --reward-version ID"),
        (["tune-captioner", "--beta", "-1"], "tune-captioner: "),
    ],
)
def test_missing_inputs_exit_2_with_a_sentence(args, message, capsys):
    assert rlhf_cli(args) == 2
    assert message in capsys.readouterr().err


def test_a_bad_dataset_exits_2(tmp_path, capsys):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"prompt": "x", "chosen": "not json", "rejected": "{}", "cover_id": 1}\n')
    assert rlhf_cli(["train-reward", "--dataset", str(bad), "--out", str(tmp_path / "rm")]) == 2
    assert "train-reward:" in capsys.readouterr().err
    assert not (tmp_path / "rm").exists()
