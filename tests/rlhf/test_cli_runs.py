"""``python -m rlhf train-reward`` locally on an export's JSONL, ``python -m rlhf score``, and the option errors of
train-reward and tune-captioner (exit 2 with a sentence)."""

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from generation.caption import Captioner
from generation.config import TINY_DIR
from generation.embed import Embedder
from generation.features import AcousticFeatures
from rlhf.__main__ import main as rlhf_cli
from rlhf.reward import embed_covers

GENRES = ["pop", "rock"]


def features(energy: float) -> str:
    return AcousticFeatures("pop", "C", "major", 4, 120.0, -6.0, 0.2, 0.7, energy, 0.0, 0.1, 0.05, 0.6).to_json()


@pytest.fixture
def export_folder(tmp_path):
    """An export's pairs.jsonl with a cover image per cover (no covers.parquet yet)."""
    folder = tmp_path / "export"
    folder.mkdir()
    rows = []
    for cover in range(8):
        image = folder / f"cover-{cover}.png"
        Image.new("RGB", (64, 64), (30 * cover, 200 - 20 * cover, 90)).save(image)
        rows.append(
            {
                "prompt": "the instruction",
                "chosen": features(0.8),
                "rejected": features(0.2),
                "margin": 1.0,
                "cover_id": cover,
                "images": [str(image)],
                "chosen_variant_id": 2 * cover,
                "rejected_variant_id": 2 * cover + 1,
            }
        )
    (folder / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_local_reward_training_embeds_the_images_and_reports_held_out_accuracy(export_folder, tmp_path, capsys):
    args = ["train-reward", "--dataset", str(export_folder / "pairs.jsonl"), "--out", str(tmp_path / "rm")]
    assert rlhf_cli([*args, "--embedder", "tiny", "--cover-encoder", "captioner"]) == 2
    assert "--embedder embeds the covers with a CLIP: it takes --cover-encoder clip" in capsys.readouterr().err
    assert rlhf_cli([*args, "--embedder", "tiny", "--eval-fraction", "0.25", "--num-train-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "6 training pairs (6 covers), 2 held out (2 covers)" in out
    assert "held-out pair accuracy" in out and "[95% CI" in out
    assert "warning: only 2 held-out pair(s) of 2 cover(s)" in out
    assert (tmp_path / "rm" / "albumgen_reward.json").is_file()


def test_a_missing_cover_image_exits_2_with_a_sentence(export_folder, tmp_path, capsys):
    (export_folder / "cover-3.png").unlink()
    args = ["train-reward", "--dataset", str(export_folder / "pairs.jsonl"), "--out", str(tmp_path / "rm")]
    assert rlhf_cli([*args, "--embedder", "tiny"]) == 2
    assert "the image of cover 3" in capsys.readouterr().err and not (tmp_path / "rm").exists()
    assert rlhf_cli(args) == 2
    assert "no cover embeddings: give --covers" in capsys.readouterr().err


def test_score_writes_one_row_per_variant_of_an_export(export_folder, tmp_path, capsys):
    from rlhf.reward import load_preference_rows

    rows = load_preference_rows(export_folder / "pairs.jsonl")
    clip = embed_covers(rows, Embedder.from_config(TINY_DIR / "clip"))
    captioner = embed_covers(rows, Captioner.from_config(TINY_DIR / "captioner").image_embedder)

    def write_covers(*embeddings):
        columns: dict[str, list] = {"cover_id": [], "embedder_id": [], "embedding": []}
        for covers in embeddings:
            for cover_id, vector in covers.vectors.items():
                columns["cover_id"].append(cover_id)
                columns["embedder_id"].append(covers.embedder_id)
                columns["embedding"].append(vector.tolist())
        pq.write_table(pa.table(columns), export_folder / "covers.parquet")

    # An export's covers hold the CLIP's and the captioner's embeddings; this run reads the captioner's.
    write_covers(clip, captioner)
    args = ["train-reward", "--dataset", str(export_folder / "pairs.jsonl"), "--out", str(tmp_path / "rm")]
    assert rlhf_cli([*args, "--cover-encoder", "captioner", "--num-train-epochs", "1"]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "rm" / "albumgen_reward.json").read_text())["embedder_id"] == captioner.embedder_id
    assert rlhf_cli(["score", "--checkpoint", str(tmp_path / "rm"), "--export", str(export_folder)]) == 0
    scored = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(row["variant_id"]) for row in scored] == list(range(16))
    assert {int(row["cover_id"]) for row in scored} == set(range(8))
    out = tmp_path / "scores.json"
    args = ["score", "--checkpoint", str(tmp_path / "rm"), "--export", str(export_folder), "--format", "json"]
    assert rlhf_cli([*args, "--out", str(out)]) == 0
    assert [row["score"] for row in json.loads(out.read_text())] == [float(row["score"]) for row in scored]
    # An export without the embeddings the reward model reads: one sentence, exit 2.
    write_covers(clip)
    assert rlhf_cli(["score", "--checkpoint", str(tmp_path / "rm"), "--export", str(export_folder)]) == 2
    assert f"hold no embeddings by {captioner.embedder_id}, which the reward model reads" in capsys.readouterr().err
    # A checkpoint that is not a reward model: one sentence, exit 2.
    assert rlhf_cli(["score", "--checkpoint", str(export_folder), "--export", str(export_folder)]) == 2
    assert "is not a reward model checkpoint" in capsys.readouterr().err


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


def test_oracle_compares_the_held_out_pairs_with_the_noise_free_scores(export_folder, tmp_path, capsys):
    dataset = str(export_folder / "pairs.jsonl")
    args = ["train-reward", "--dataset", dataset, "--out", str(tmp_path / "rm"), "--embedder", "tiny"]
    assert rlhf_cli([*args, "--eval-fraction", "0.5", "--num-train-epochs", "1"]) == 0
    capsys.readouterr()
    # Noise-free scores that agree with the label of every pair but cover 0's and cover 1's.
    lines = []
    for cover in range(8):
        chosen, rejected = (0.2, 0.7) if cover < 2 else (0.9, 0.1)
        lines += [{"variant_id": 2 * cover, "score": chosen}, {"variant_id": 2 * cover + 1, "score": rejected}]
    oracle = tmp_path / "oracle.jsonl"
    oracle.write_text("".join(json.dumps(line) + "\n" for line in lines))
    held_out = json.loads((tmp_path / "rm" / "albumgen_reward.json").read_text())["eval_cover_ids"]
    expected = sum(cover >= 2 for cover in held_out) / len(held_out)
    command = ["oracle", "--checkpoint", str(tmp_path / "rm"), "--export", str(export_folder), "--oracle", str(oracle)]
    assert rlhf_cli(command) == 0
    out = capsys.readouterr().out
    assert f"oracle ceiling on the {len(held_out)} held-out pairs: {expected:.3f}; the reward model:" in out
    oracle.write_text("{not json\n")
    assert rlhf_cli(command) == 2
    assert "oracle:" in capsys.readouterr().err
