from pathlib import Path

import pytest
from PIL import Image

from generation.caption import Captioner
from generation.embed import Embedder

TINY = Path(__file__).resolve().parents[2] / "fixtures" / "tiny"
GENRES = ["ambient", "hip hop", "jazz", "metal", "pop"]


@pytest.fixture(scope="session")
def tiny_captioner() -> Captioner:
    return Captioner.from_config(TINY / "captioner")


@pytest.fixture(scope="session")
def tiny_embedder() -> Embedder:
    return Embedder.from_config(TINY / "clip")


@pytest.fixture
def red_cover() -> Image.Image:
    return Image.new("RGB", (128, 128), (200, 30, 40))
