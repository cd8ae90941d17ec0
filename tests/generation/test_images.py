import io

import numpy as np
import pytest
from PIL import Image

from generation.images import CoverImageError, load_cover_image


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def noisy(size: int = 128) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("CMYK", "JPEG"), ("I;16", "PNG"), ("P", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("L", "JPEG"), ("1", "PNG")],
)
def test_every_mode_becomes_rgb(mode, fmt):
    image = load_cover_image(encode(Image.new(mode, (64, 64)), fmt))
    assert image.mode == "RGB"
    assert image.size == (64, 64)


def test_sixteen_bit_white_stays_white_instead_of_clipping_everything():
    image = Image.new("I;16", (64, 64), 0)
    image.putpixel((0, 0), 65535)
    image.putpixel((1, 0), 32768)
    rgb = load_cover_image(encode(image))
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0))[0] == 128
    assert rgb.getpixel((2, 0)) == (0, 0, 0)


def test_palette_transparency_is_composited_over_white():
    image = Image.new("P", (64, 64), 0)
    image.putpalette([10, 20, 30] * 256)
    image.info["transparency"] = 0
    assert load_cover_image(encode(image)).getpixel((5, 5)) == (255, 255, 255)


def test_a_path_works_like_bytes(tmp_path):
    path = tmp_path / "cover.png"
    noisy().save(path)
    assert np.array_equal(np.asarray(load_cover_image(path)), np.asarray(load_cover_image(path.read_bytes())))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"%PDF-1.4 not an image", "not an image"),
        (encode(noisy(256))[:3000], "damaged or truncated"),
        (encode(Image.new("RGB", (8, 8))), "at least 32 px"),
    ],
    ids=["empty", "not-an-image", "truncated", "too-small"],
)
def test_bad_files_are_refused_with_a_reason(data, reason):
    with pytest.raises(CoverImageError, match=reason):
        load_cover_image(data)


def test_decompression_bomb_is_refused_before_decoding():
    # 10000 x 10000 one-bit pixels: ~100 KB of PNG that would decode to 100 megapixels.
    bomb = encode(Image.new("1", (10_000, 10_000)))
    assert len(bomb) < 1_000_000
    with pytest.raises(CoverImageError, match="too large"):
        load_cover_image(bomb)


def test_forty_to_ninety_megapixels_is_refused_too():
    with pytest.raises(CoverImageError, match="megapixels"):
        load_cover_image(encode(Image.new("1", (8_000, 6_000))))
