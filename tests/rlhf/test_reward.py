"""The cover-aware reward model (format albumgen-reward-v2) on synthetic covers: training, scoring, checkpoints and
the refusals. The covers are random unit vectors in a small embedding space; the taste depends on which side of a
hidden direction a cover lies, which the model can only learn from the embedding."""

import dataclasses
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import HfArgumentParser, TrainerCallback

from generation.features import MODES, PITCH_CLASSES, UNIT_FEATURES, AcousticFeatures, FeatureError
from generation.loading import ModelLoadError
from rlhf.config import RewardTrainingConfig
from rlhf.reward import (
    ENCODER_FILE,
    INPUT_FORMAT,
    METADATA_FILE,
    CoverDataError,
    CoverEmbeddings,
    FeatureEncoder,
    PreferenceFormatError,
    RewardScorer,
    embed_covers,
    split_by_cover,
    train_reward_model,
)

GENRES = ["ambient", "dance pop", "edm", "folk", "metal", "pop"]
DIMENSION = 24


def random_features(rng: random.Random, **fixed: Any) -> AcousticFeatures:
    values: dict[str, Any] = {
        "genre": rng.choice(GENRES),
        "key": rng.choice(PITCH_CLASSES),
        "mode": rng.choice(MODES),
        "time_signature": rng.choice([3, 4, 4, 4, 5]),
        "tempo": round(rng.uniform(60, 180), 1),
        "loudness": round(rng.uniform(-20, -3), 1),
        **{name: round(rng.random(), 3) for name in UNIT_FEATURES},
    }
    values.update(fixed)
    return AcousticFeatures(**values)


def synthetic_covers(count: int, *, seed: int = 0) -> CoverEmbeddings:
    """Unit vectors; a cover is "bright" when its first coordinate is positive (half of them)."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, DIMENSION)).astype(np.float32)
    vectors[:, 0] = np.where(np.arange(count) % 2 == 0, 1.5, -1.5) + 0.3 * rng.normal(size=count)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return CoverEmbeddings("synthetic-clip", {cover_id: vectors[cover_id] for cover_id in range(count)})


def is_bright(covers: CoverEmbeddings, cover_id: int) -> bool:
    return bool(covers.vectors[cover_id][0] > 0)


def taste(bright: bool, features: AcousticFeatures) -> float:
    """Bright covers want energy and a fast tempo, dark ones the opposite."""
    drive = 0.6 * features.energy + 0.4 * (features.tempo - 60) / 120
    return drive if bright else 1 - drive


def peaked_taste(bright: bool, features: AcousticFeatures) -> float:
    """Bright covers want a tempo near 120 BPM (neither faster nor slower is better), dark ones energy."""
    return 1 - min(abs(features.tempo - 120) / 60, 1) if bright else features.energy


def preference_rows(
    covers: CoverEmbeddings, pairs_per_cover: int, *, seed: int = 0, hidden_taste: Any = taste
) -> list[dict[str, Any]]:
    """Pairs in the export's format; the chosen variant is the one the hidden taste scores higher by 0.15 or more."""
    rng = random.Random(seed)
    rows = []
    for cover_id in covers.vectors:
        bright = is_bright(covers, cover_id)
        for index in range(pairs_per_cover):
            while True:
                first, second = random_features(rng), random_features(rng)
                gap = hidden_taste(bright, first) - hidden_taste(bright, second)
                if abs(gap) >= 0.15:
                    break
            chosen, rejected = (first, second) if gap > 0 else (second, first)
            rows.append(
                {
                    "prompt": "the captioner's instruction",
                    "chosen": chosen.to_json(),
                    "rejected": rejected.to_json(),
                    "margin": round(abs(gap) * 5, 3),
                    "cover_id": cover_id,
                    "images": [f"covers/{cover_id}.png"],
                    "chosen_variant_id": 1000 * cover_id + 2 * index,
                    "rejected_variant_id": 1000 * cover_id + 2 * index + 1,
                }
            )
    return rows


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # A model of a few thousand weights gains nothing from intra-op threads on a shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class WeightSnapshots(TrainerCallback):
    def __init__(self) -> None:
        self.begin: dict[str, torch.Tensor] = {}
        self.end: dict[str, torch.Tensor] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.begin = {name: p.detach().clone() for name, p in model.state_dict().items()}

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.end = {name: p.detach().clone() for name, p in model.state_dict().items()}


@dataclasses.dataclass
class TrainedRun:
    result: Any
    covers: CoverEmbeddings
    rows: list[dict[str, Any]]
    snapshots: WeightSnapshots


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    covers = synthetic_covers(40)
    rows = preference_rows(covers, 12)
    snapshots = WeightSnapshots()
    result = train_reward_model(
        RewardTrainingConfig(eval_fraction=0.25),
        rows,
        covers,
        tmp_path_factory.mktemp("reward") / "model",
        callbacks=[snapshots],
    )
    return TrainedRun(result, covers, rows, snapshots)


# --- configuration ------------------------------------------------------------------------------------------------


def test_config_fields_carry_help_and_parse_as_cli_flags():
    for item in dataclasses.fields(RewardTrainingConfig):
        assert item.metadata.get("help"), item.name
    (config,) = HfArgumentParser(RewardTrainingConfig).parse_args_into_dataclasses(
        ["--cover_components", "4", "--use_margin", "true", "--eval_fraction", "0.1"]
    )
    assert (config.cover_components, config.use_margin, config.eval_fraction) == (4, True, 0.1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cover_components": 0}, "cover_components must be at least 1"),
        ({"taste_rank": 0}, "taste_rank must be at least 1"),
        ({"learning_rate": 0.0}, "learning_rate must be positive"),
        ({"weight_decay": -1}, "weight_decay must not be negative"),
        ({"num_train_epochs": 0}, "num_train_epochs must be positive"),
        ({"per_device_train_batch_size": 0}, "per_device_train_batch_size must be at least 1"),
        ({"eval_fraction": 1.0}, "eval_fraction must be in"),
        ({"seed": -1}, "seed must not be negative"),
    ],
)
def test_config_rejects_bad_values_with_a_sentence(changes, message):
    with pytest.raises(ValueError, match=message):
        RewardTrainingConfig(**changes)


# --- the input format ---------------------------------------------------------------------------------------------


def test_features_are_read_as_values_not_prompt_buckets():
    encoder = FeatureEncoder(GENRES)
    rng = random.Random(3)
    base = random_features(rng, tempo=120.0, genre="pop", key="D", mode="minor", time_signature=4)
    slower = dataclasses.replace(base, tempo=121.5)  # the same prompt bucket ("moderate tempo")
    first, second = encoder.encode(base.to_dict()), encoder.encode(slower.to_dict())
    assert first != second
    tempo = encoder.names.index("tempo")
    assert second[tempo] - first[tempo] == pytest.approx(1.5 / 180)
    assert first[encoder.names.index("key=D")] == 1 and first[encoder.names.index("mode=minor")] == 1
    assert first[encoder.names.index("genre=pop")] == 1 and first[encoder.names.index("time_signature=4")] == 1
    # A genre the training rows never had takes the "other" slot; it is still feature JSON.
    unseen = encoder.encode_text(dataclasses.replace(base, genre="zydeco").to_json())
    assert unseen[encoder.names.index("genre=(other)")] == 1
    assert len(unseen) == encoder.dimension == len(encoder.names)


def test_text_that_is_not_feature_json_is_named():
    encoder = FeatureEncoder(GENRES)
    with pytest.raises(FeatureError, match="not JSON"):
        encoder.encode_text("a calm song")
    with pytest.raises(FeatureError, match="energy 1.7 is outside"):
        encoder.encode_text(json.dumps(random_features(random.Random(0)).to_dict() | {"energy": 1.7}))


def test_split_is_by_cover_and_reproducible():
    rows = preference_rows(synthetic_covers(10), 3)
    train, held_out = split_by_cover(rows, 0.2, seed=5)
    assert len({row["cover_id"] for row in held_out}) == 2
    assert not {row["cover_id"] for row in train} & {row["cover_id"] for row in held_out}
    assert split_by_cover(rows, 0.2, seed=5) == (train, held_out)
    assert split_by_cover(rows, 0.0, seed=5) == (rows, [])


# --- training -----------------------------------------------------------------------------------------------------


def test_training_lowers_the_loss_and_learns_the_cover_dependent_taste(trained):
    result = trained.result
    losses = result.loss_history
    assert len(losses) == result.steps == result.max_steps and not result.stopped_early
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.2
    before, after = result.evaluation_before, result.evaluation_after
    assert (result.train_covers, result.eval_covers) == (30, 10)
    assert after.overall.pairs == result.eval_pairs == 120
    assert after.overall.accuracy >= 0.85 and after.overall.accuracy >= before.overall.accuracy + 0.2
    assert after.overall.low <= after.overall.accuracy <= after.overall.high
    # Both halves of the covers, whose tastes are opposite, are learned: not only the majority's.
    by_side = held_out_accuracy_by_side(result, trained.covers, trained.rows)
    assert by_side[True] >= 0.8 and by_side[False] >= 0.8, by_side
    assert after.warning is None


def held_out_accuracy_by_side(result: Any, covers: CoverEmbeddings, rows: list[dict[str, Any]]) -> dict[bool, float]:
    held_out = set(result.metadata["eval_cover_ids"])
    scorer = RewardScorer.load(result.output_dir)
    accuracy = {}
    for want in (True, False):
        side = [row for row in rows if row["cover_id"] in held_out and is_bright(covers, row["cover_id"]) == want]
        embeddings = [covers.vectors[row["cover_id"]] for row in side]
        chosen = scorer.score(embeddings, [row["chosen"] for row in side])
        rejected = scorer.score(embeddings, [row["rejected"] for row in side])
        accuracy[want] = float(np.mean([c > r for c, r in zip(chosen, rejected, strict=True)]))
    return accuracy


def test_a_taste_that_peaks_inside_a_range_is_learned(tmp_path):
    # Tempi lie in 60-180 BPM, symmetric about the peak: a score linear in tempo cannot rank them, the bumps can
    # (measured on these covers: 0.94 on the bright ones with bumps, 0.49 without).
    covers = synthetic_covers(40, seed=1)
    rows = preference_rows(covers, 24, seed=1, hidden_taste=peaked_taste)
    result = train_reward_model(RewardTrainingConfig(eval_fraction=0.25), rows, covers, tmp_path / "model")
    accuracy = held_out_accuracy_by_side(result, covers, rows)
    assert accuracy[True] >= 0.85 and accuracy[False] >= 0.85, accuracy


def test_parameters_change_and_the_normalisation_is_fitted(trained):
    begin, end = trained.snapshots.begin, trained.snapshots.end
    weights = [name for name in begin if "taste" in name]
    assert weights and all(not torch.equal(begin[name], end[name]) for name in weights if name.endswith("weight"))
    # Fitted before training, not trained: the buffers stay as they were fitted.
    assert torch.equal(begin["cover_mean"], end["cover_mean"]) and begin["cover_mean"].abs().sum() > 0
    assert int(begin["cover_basis"].abs().sum(1).gt(0).sum()) == 16


def test_the_same_features_score_differently_on_covers_of_the_two_groups(trained):
    scorer = RewardScorer.load(trained.result.output_dir)
    bright = next(v for c, v in trained.covers.vectors.items() if is_bright(trained.covers, c))
    dark = next(v for c, v in trained.covers.vectors.items() if not is_bright(trained.covers, c))
    rng = random.Random(9)
    calm = random_features(rng, energy=0.1, tempo=70.0).to_json()
    loud = random_features(rng, energy=0.9, tempo=170.0).to_json()
    on_bright = scorer.score([bright, bright], [calm, loud])
    on_dark = scorer.score([dark, dark], [calm, loud])
    assert on_bright[1] > on_bright[0] and on_dark[0] > on_dark[1]


def test_checkpoint_reloads_to_the_same_scores(trained, tmp_path):
    path = trained.result.output_dir
    metadata = json.loads((path / METADATA_FILE).read_text())
    assert metadata["input_format"] == INPUT_FORMAT and metadata["embedder_id"] == "synthetic-clip"
    assert (path / ENCODER_FILE).is_file() and metadata["cover_dim"] == DIMENSION
    rows = trained.rows[:50]
    embeddings = [trained.covers.vectors[row["cover_id"]] for row in rows]
    first = RewardScorer.load(path).score(embeddings, [row["chosen"] for row in rows])
    second = RewardScorer.load(path).score(embeddings, [row["chosen"] for row in rows])
    assert first == second and len(set(first)) > 40


def test_the_scorer_refuses_text_that_is_not_feature_json_or_rates_it_none(trained):
    scorer = RewardScorer.load(trained.result.output_dir)
    cover = trained.covers.vectors[0]
    good = trained.rows[0]["chosen"]
    with pytest.raises(FeatureError, match="completion 1 is not the captioner's feature JSON: not JSON"):
        scorer.score([cover, cover], [good, "a happy song"])
    scores = scorer.score([cover, cover], [good, "a happy song"], invalid="none")
    assert scores[0] is not None and scores[1] is None
    with pytest.raises(ValueError, match="this reward model reads 24-d embeddings of synthetic-clip"):
        scorer.score([np.zeros(8, dtype=np.float32)], [good])


def test_margins_train_too(tmp_path):
    covers = synthetic_covers(12, seed=4)
    result = train_reward_model(
        RewardTrainingConfig(use_margin=True, num_train_epochs=2, eval_fraction=0.25),
        preference_rows(covers, 4),
        covers,
        tmp_path / "m",
    )
    assert result.steps > 0 and set(result.evaluation_after.by_margin) <= {"0-1", "1-2", "2-3", "3+"}
    # 3 held-out covers of 4 pairs: too small to mean anything, and the evaluation says so.
    assert "only 12 held-out pair(s) of 3 cover(s)" in result.evaluation_after.warning


# --- bad input ----------------------------------------------------------------------------------------------------


def test_a_checkpoint_of_another_input_format_is_refused_with_one_sentence(trained, tmp_path):
    old = tmp_path / "v1"
    old.mkdir()
    (old / METADATA_FILE).write_text(json.dumps({"format_version": 1, "input_format": "albumgen-captioner-json-v1"}))
    with pytest.raises(ModelLoadError, match="has input format 'albumgen-captioner-json-v1', which this release"):
        RewardScorer.load(old)
    with pytest.raises(ModelLoadError, match=f"not a reward model checkpoint: it has no {METADATA_FILE}"):
        RewardScorer.load(tmp_path)


def test_a_checkpoint_of_an_earlier_architecture_is_refused_not_filled_in_at_random(trained, tmp_path):
    # The first v2 model (an MLP fusion) wrote the same metadata; its weights have other names.
    old = tmp_path / "mlp"
    shutil.copytree(trained.result.output_dir, old)
    weights = load_file(old / "model.safetensors")
    renamed = {name.replace("cover_taste", "cover_tower.0"): tensor for name, tensor in weights.items()}
    save_file(renamed, old / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="holds the weights of another reward model architecture"):
        RewardScorer.load(old)
    assert RewardScorer.load(trained.result.output_dir).cover_dim == trained.result.metadata["cover_dim"]


def test_pairs_of_one_cover_only_are_refused(tmp_path):
    covers = synthetic_covers(3)
    rows = [row for row in preference_rows(covers, 5) if row["cover_id"] == 1]
    with pytest.raises(ValueError, match="all 5 pairs come from one cover"):
        train_reward_model(RewardTrainingConfig(), rows, covers, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_a_cover_without_an_embedding_is_named(tmp_path):
    covers = synthetic_covers(6)
    partial = CoverEmbeddings(covers.embedder_id, {k: v for k, v in covers.vectors.items() if k != 4})
    with pytest.raises(CoverDataError, match=r"1 cover\(s\) of the pairs have no stored embedding \(first: cover 4\)"):
        train_reward_model(RewardTrainingConfig(), preference_rows(covers, 2), partial, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_covers_embedded_from_images_and_missing_image_files_are_named(tmp_path):
    from generation.config import TINY_DIR
    from generation.embed import Embedder

    embedder = Embedder.from_config(TINY_DIR / "clip")
    rows = preference_rows(synthetic_covers(2), 1)
    for row in rows:
        path = tmp_path / f"cover-{row['cover_id']}.png"
        Image.new("RGB", (64, 64), (200, 40 * row["cover_id"], 10)).save(path)
        row["images"] = [str(path)]
    covers = embed_covers(rows, embedder)
    assert covers.embedder_id == embedder.model_id and sorted(covers.vectors) == [0, 1]
    assert np.allclose(covers.vectors[1], embedder.embed([Image.open(rows[1]["images"][0]).convert("RGB")])[0])
    Path(rows[0]["images"][0]).unlink()
    with pytest.raises(CoverDataError, match=r"the image of cover 0 \(.*cover-0.png\) does not exist"):
        embed_covers(rows, embedder)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chosen": None}, r"row 3 lacks the column\(s\) chosen"),
        ({"cover_id": "7"}, "row 3: cover_id '7' is not an integer"),
        ({"rejected": "a calm song"}, r"row 3 \(cover 0\): rejected is not the captioner's feature JSON: not JSON"),
        ({"chosen": "[1, 2]"}, r"row 3 \(cover 0\): chosen is not the captioner's feature JSON: not a JSON object"),
        ({"chosen": '{"genre": "pop", "energy": 0.5}'}, "chosen is not the captioner's feature JSON: missing fields"),
        ({"margin": float("nan")}, r"row 3 \(cover 0\): margin nan is not a finite number"),
    ],
)
def test_bad_rows_are_named(tmp_path, change, message):
    covers = synthetic_covers(2)
    rows = preference_rows(covers, 4)
    rows[3] = {**rows[3], **change}
    with pytest.raises(PreferenceFormatError, match=message):
        train_reward_model(RewardTrainingConfig(), rows, covers, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_jsonl_line_that_is_not_json_is_named(tmp_path):
    covers = synthetic_covers(2)
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(preference_rows(covers, 1)[0]) + "\n{oops\n")
    with pytest.raises(PreferenceFormatError, match="line 2 of .*pairs.jsonl is not JSON"):
        train_reward_model(RewardTrainingConfig(), path, covers, tmp_path / "out")


class Boom(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        raise RuntimeError("cancelled by the platform")


def test_a_failed_run_writes_nothing_and_a_full_folder_is_refused(tmp_path):
    covers = synthetic_covers(4)
    runs = tmp_path / "runs"
    runs.mkdir()
    with pytest.raises(RuntimeError, match="cancelled"):
        train_reward_model(RewardTrainingConfig(), preference_rows(covers, 2), covers, runs / "v2", callbacks=[Boom()])
    assert list(runs.iterdir()) == []
    (runs / "v1").mkdir()
    (runs / "v1" / "keep.txt").write_text("an earlier model")
    with pytest.raises(ValueError, match="already exists and is not empty"):
        train_reward_model(RewardTrainingConfig(), preference_rows(covers, 2), covers, runs / "v1")
