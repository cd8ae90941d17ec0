"""The small trained captioner (fixtures/small/captioner): it loads as a production checkpoint does, its features
follow the cover on the demo catalog's held-out covers (which its build never drew), bad checkpoints and adapters
are refused with one sentence, and the script that built it (and the describer) writes the same weights twice."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from generation.caption import AdapterMismatchError, Captioner
from generation.config import SMALL_CAPTIONER_DIR, SMALL_DIR, PipelineConfig, small_captioner_id
from generation.embed import Embedder
from generation.evaluate import evaluate
from generation.images import load_cover_image
from generation.instruction import build_instruction
from generation.loading import ModelLoadError
from generation.musicoset import read_musicoset
from generation.pipeline import Pipeline, index_albums, load_captioner
from generation.retrieve import mean_features
from generation.synth import SynthRenderer
from rlhf.preferences import COVER_SWITCHES
from tests.conftest import ROOT, load_fixture_script
from tests.generation.test_caption import lora_adapter

CATALOG = ROOT / "fixtures" / "musicoset"
TINY = ROOT / "fixtures" / "tiny"
# Restyled covers (their look drawn apart from the album's mood) of a seed no build draws: 10 albums x 14 genres.
PROBE_SEED, PROBE_ALBUMS_PER_GENRE = 47, 10


@pytest.fixture(scope="module")
def captioner() -> Captioner:
    return load_captioner(PipelineConfig(profile="trained"))


@pytest.fixture(scope="module")
def demo(captioner):
    """The demo catalog's held-out albums and a pipeline whose index holds its train split (small CLIP)."""
    catalog = read_musicoset(CATALOG)
    train = [album for album in catalog.albums if album.split == "train" and album.cover_path]
    embedder = Embedder.from_pretrained(str(SMALL_DIR / "clip"), device="cpu")
    index = index_albums(train, embedder)
    pipeline = Pipeline(
        config=PipelineConfig(profile="trained"),
        embedder=embedder,
        index=index,
        captioner=captioner,
        renderer=SynthRenderer(),
    )
    held_out = [album for album in catalog.albums if album.split == "test" and album.cover_path]
    return pipeline, held_out


def rag_instruction(pipeline, image):
    neighbours = pipeline.index.search(pipeline.embedder.embed([image])[0], k=5)
    return build_instruction(
        genres=pipeline.index.genres,
        context=mean_features(neighbours),
        neighbour_genres=[n.genre for n in neighbours],
    )


def caption(pipeline, album, **options):
    image = load_cover_image(album.cover_path)
    instruction = rag_instruction(pipeline, image)
    return pipeline.captioner.generate(image, instruction=instruction, genres=pipeline.index.genres, **options)


@torch.no_grad()
def where_it_starts_writing(pipeline, image) -> np.ndarray:
    """The language model's last hidden state at the last prompt token of the cover's RAG prompt."""
    captioner = pipeline.captioner
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": rag_instruction(pipeline, image)}]}
    ]
    prompt = captioner.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = captioner.processor(images=[image], text=[prompt], return_tensors="pt")
    hidden = captioner.model(**inputs, output_hidden_states=True).hidden_states[-1]
    return hidden[0, -1].numpy()


def test_the_trained_profile_loads_the_shipped_internvl_under_the_hash_of_its_weights(captioner):
    assert type(captioner.model).__name__ == "InternVLForConditionalGeneration"
    assert captioner.model_id == small_captioner_id() and captioner.model_id.startswith("small-internvl:")
    assert captioner.model.config._name_or_path == captioner.model_id  # what adapters record as their base
    assert (SMALL_CAPTIONER_DIR / "model.safetensors").stat().st_size < 30_000_000


def test_on_held_out_demo_covers_it_comes_within_10_percent_of_the_retrieval_baseline(demo):
    pipeline, held_out = demo
    rows = {row["method"]: row for row in evaluate(pipeline, held_out, ks=(5,), unconstrained=True)}
    rag, zero_shot, baseline = rows["RAG constrained"], rows["zero-shot constrained"], rows["retrieval baseline K=5"]
    figures = {name: (row["valid"], row["mse"], row["genre_accuracy"]) for name, row in rows.items()}

    assert rag["valid"] == rag["attempted"] == len(held_out)
    # Measured: RAG 0.0098, zero-shot 0.0090, the baseline 0.0112 (small CLIP index over the train split).
    assert rag["mse"] <= 1.1 * baseline["mse"], figures
    # It reads the cover: 14 genres (chance 7%), and its zero-shot guess is far better than the prototypes' spread.
    assert rag["genre_accuracy"] >= 0.75 and zero_shot["genre_accuracy"] >= 0.6
    # Trained on the format, it writes valid JSON without the grammar too.
    assert rows["RAG unconstrained"]["valid"] >= 0.9 * len(held_out)


def test_covers_of_different_genres_get_different_features(demo):
    pipeline, held_out = demo
    first_of = {}
    for album in held_out:
        first_of.setdefault(album.genre, album)
    (classical,) = caption(pipeline, first_of["classical"], num_variants=1, seed=0, greedy=True)
    (metal,) = caption(pipeline, first_of["metal"], num_variants=1, seed=0, greedy=True)

    assert classical.features.genre == "classical" and metal.features.genre == "metal"
    # The generator's prototypes: acousticness 0.95 vs 0.01, energy 0.15 vs 0.93, loudness -20 vs -4 dB.
    assert classical.features.acousticness > metal.features.acousticness + 0.5
    assert classical.features.energy + 0.4 < metal.features.energy
    assert classical.features.loudness + 8 < metal.features.loudness


def test_where_it_starts_writing_its_language_model_tells_every_cover_switch_apart(demo, tmp_path):
    """Captioner RL's LoRA adapts the language model: a look it drops before it writes is one RL cannot act on."""
    pipeline, _ = demo
    load_fixture_script("make_catalog.py").make_catalog(
        tmp_path, albums_per_genre=PROBE_ALBUMS_PER_GENRE, seed=PROBE_SEED, restyle=True
    )
    images = [load_cover_image(path) for path in sorted((tmp_path / "covers").glob("*.png"))]
    states = np.stack([where_it_starts_writing(pipeline, image) for image in images])

    accuracy = {}
    for taste, switch in COVER_SWITCHES.items():
        # Clear covers only: in between, a cover is a blend of both sides' tastes.
        clear = [i for i, image in enumerate(images) if not 0.15 < switch.weight(image) < 0.85]
        sides = [switch.side(images[i]) for i in clear]
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        accuracy[taste] = float(cross_val_score(probe, states[clear], sides, cv=5).mean())
    # Measured on these covers: 0.65 (balance), 0.89 (warmth), 0.94, 0.96 before the build's writing head; 1.00 with it.
    assert all(value >= 0.9 for value in accuracy.values()), accuracy


def test_a_rounds_variants_are_valid_and_differ_within_a_cover_and_between_covers(demo):
    pipeline, held_out = demo
    same_genre = [album for album in held_out if album.genre == held_out[0].genre][:3]
    per_cover = [
        pipeline.run(load_cover_image(album.cover_path), variants=8, seed=1, exclude=[album.album_id]).variants
        for album in same_genre
    ]

    for variants in per_cover:
        assert all(v.features is not None for v in variants)
        assert len({v.raw_text for v in variants}) == 8
    # Three covers of one genre, which the captioner reads alike: still never the same variant at the same index
    # (the random twin's variant 0 was byte-identical on every cover).
    for index in range(8):
        assert len({variants[index].raw_text for variants in per_cover}) == 3
    again = pipeline.run(
        load_cover_image(same_genre[0].cover_path), variants=8, seed=1, exclude=[same_genre[0].album_id]
    )
    assert [v.raw_text for v in again.variants] == [v.raw_text for v in per_cover[0]]


def test_an_adapter_trained_on_the_tiny_twin_is_refused_on_the_small_captioner(tmp_path):
    lora_adapter(Captioner.from_config(TINY / "captioner"), tmp_path / "tiny-adapter")

    with pytest.raises(AdapterMismatchError, match=r"on 'tiny-internvl:.*not on the captioner 'small-internvl:"):
        load_captioner(PipelineConfig(profile="trained", adapter=str(tmp_path / "tiny-adapter")))


def test_missing_weights_are_named_with_what_to_do(tmp_path):
    shutil.copytree(SMALL_CAPTIONER_DIR, tmp_path / "captioner", ignore=shutil.ignore_patterns("*.safetensors"))

    with pytest.raises(ModelLoadError, match=r"captioner weights are missing .*build_captioner\.py"):
        small_captioner_id(tmp_path / "captioner")


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path):
    shutil.copytree(SMALL_DIR / "clip", tmp_path / "clip")

    with pytest.raises(ModelLoadError, match=r"is a 'clip_vision_model' model, not the 'internvl' model"):
        Captioner.from_pretrained(str(tmp_path / "clip"), device="cpu", expect="internvl")
    with pytest.raises(ModelLoadError, match=r"not a vision-language model transformers can load"):
        Captioner.from_pretrained(str(tmp_path / "clip"), device="cpu")


def build(out, *options: str) -> None:
    """``fixtures/small/build_captioner.py`` at a toy size (28 albums, 2 steps, one thread) into ``out``."""
    command = [sys.executable, "fixtures/small/build_captioner.py", "--albums-per-genre", "2", "--max-steps", "2"]
    command += ["--threads", "1", "--out", str(out), "--report", str(out) + ".md", *options]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)


def test_its_build_script_is_deterministic_and_reports_what_it_built(tmp_path):
    for attempt in ("first", "second"):
        build(tmp_path / attempt)
    build(tmp_path / "describer", "--answers", "words")
    weights = [(tmp_path / attempt / "model.safetensors").read_bytes() for attempt in ("first", "second")]
    assert weights[0] == weights[1]
    assert weights[0] != (tmp_path / "describer" / "model.safetensors").read_bytes()
    for out, answers, heading in (
        ("first", "json", "# The small trained InternVL captioner"),
        ("describer", "words", "# The describer"),
    ):
        facts = json.loads((tmp_path / out / "training_facts.json").read_text())
        assert facts["answers"] == answers and facts["steps"] == 2
        assert (tmp_path / f"{out}.md").read_text().startswith(heading)
    Captioner.from_pretrained(str(tmp_path / "first"), device="cpu", expect="internvl")
