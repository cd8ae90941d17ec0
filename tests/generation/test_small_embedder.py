"""The small trained embedder (fixtures/small/clip): it loads as a production checkpoint does, and its embedding tells
covers apart by grain and by where the dark mass sits, which the tiny random twin's does not."""

import io
import json
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from generation.embed import Embedder
from rlhf.preferences import edge_density, vertical_balance
from tests.conftest import ROOT, load_fixture_script

SMALL = ROOT / "fixtures" / "small"
# Restyled covers of a seed that neither the build (5001-5010), its probe (43), the demo catalog nor another test
# draws: 2 albums x 14 genres = 28 covers, 11 smooth and 17 grained, 13 heavy at the bottom and 15 at the top.
COVER_SEED = 47
GRAINY, SMOOTH = 0.3, 0.05  # edge_density of the grained covers is 0.52-0.77, of the smoothed ones 0.01 at most
HEAVY = 0.1  # |vertical_balance| of every restyled cover is at least 0.08 (the generator's TARGET_GAP)


@pytest.fixture(scope="module")
def build() -> ModuleType:
    return load_fixture_script("small/build_embedder.py")


@pytest.fixture(scope="module")
def small() -> Embedder:
    return Embedder.from_pretrained(str(SMALL / "clip"), device="cpu")


@pytest.fixture(scope="module")
def covers(tmp_path_factory) -> list[Image.Image]:
    make_catalog = load_fixture_script("make_catalog.py")
    out = tmp_path_factory.mktemp("catalog")
    make_catalog.make_catalog(out, albums_per_genre=2, seed=COVER_SEED, restyle=True)
    images = []
    for path in sorted((out / "covers").glob("*.png")):
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


def resaved_as_jpeg(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def test_shipped_model_embeds_unit_vectors_of_its_projection_dimension(small, covers):
    config = json.loads((SMALL / "clip" / "config.json").read_text())
    vectors = small.embed(covers[:5])

    assert vectors.shape == (5, config["projection_dim"]) == (5, small.dimension)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_shipped_weights_are_under_5_mb():
    assert (SMALL / "clip" / "model.safetensors").stat().st_size < 5_000_000


def test_grain_and_balance_move_the_embedding_more_than_a_jpeg_resave(small, covers):
    vectors = small.embed(covers)
    resaved = small.embed([resaved_as_jpeg(cover) for cover in covers])
    grain = np.array([edge_density(cover) for cover in covers])
    balance = np.array([vertical_balance(cover) for cover in covers])
    distance = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)

    near_identical = np.linalg.norm(vectors - resaved, axis=1).max()
    grained_vs_smooth = distance[np.ix_(grain > GRAINY, grain < SMOOTH)]
    top_vs_bottom_heavy = distance[np.ix_(balance > HEAVY, balance < -HEAVY)]
    assert grained_vs_smooth.size and top_vs_bottom_heavy.size
    # Measured: JPEG 0.03 at most; grained vs smooth 0.87 at least, top- vs bottom-heavy 0.54 at least.
    assert grained_vs_smooth.min() > 5 * near_identical
    assert top_vs_bottom_heavy.min() > 5 * near_identical


def test_nearest_neighbours_share_their_grain(small, covers):
    """What retrieval sees: the random twin's nearest neighbour is grained or smooth by chance (50% agree, measured),
    the trained embedder's agrees for every cover."""
    grained = np.array([edge_density(cover) > GRAINY for cover in covers])
    vectors = small.embed(covers)
    distance = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1) + np.eye(len(covers)) * 10
    nearest = distance.argmin(axis=1)

    assert (grained[nearest] == grained).mean() >= 0.9


def test_training_reproduces_its_first_steps_with_the_same_seed(build, covers):
    raw = np.stack([build.appearance_targets(cover) for cover in covers])
    targets = torch.tensor((raw - raw.mean(axis=0)) / (raw.std(axis=0) + 1e-8), dtype=torch.float32)
    pixels = build.preprocess(covers, build.build_processor())
    config = build.TrainConfig(batch_size=14, max_steps=2, warmup_steps=1)

    first = build.train(pixels, targets, config=config)
    again = build.train(pixels, targets, config=config)
    other = build.train(pixels, targets, config=build.TrainConfig(batch_size=14, max_steps=2, warmup_steps=1, seed=1))

    assert len(first.step_losses) == 2
    assert first.step_losses == again.step_losses
    assert other.step_losses != first.step_losses
    for name, weight in first.model.state_dict().items():
        assert torch.equal(weight, again.model.state_dict()[name]), name
