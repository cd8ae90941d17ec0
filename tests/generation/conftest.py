import dataclasses
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from generation.caption import Captioner
from generation.embed import Embedder
from generation.features import AcousticFeatures

TINY = Path(__file__).resolve().parents[2] / "fixtures" / "tiny"
GENRES = ["ambient", "hip hop", "jazz", "metal", "pop"]
# One plausible feature object; tests change the fields they are about.
ROCK = AcousticFeatures(
    genre="rock",
    key="A",
    mode="minor",
    time_signature=4,
    tempo=128.0,
    loudness=-7.0,
    acousticness=0.2,
    danceability=0.5,
    energy=0.8,
    instrumentalness=0.1,
    liveness=0.1,
    speechiness=0.05,
    valence=0.3,
)


def features(**changes: Any) -> AcousticFeatures:
    return dataclasses.replace(ROCK, **changes)


@pytest.fixture(scope="session")
def tiny_captioner() -> Captioner:
    return Captioner.from_config(TINY / "captioner")


@pytest.fixture(scope="session")
def tiny_embedder() -> Embedder:
    return Embedder.from_config(TINY / "clip")


@pytest.fixture
def red_cover() -> Image.Image:
    return Image.new("RGB", (128, 128), (200, 30, 40))
