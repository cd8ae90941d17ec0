"""Cover images in: validated, decoded once, converted to RGB; anything else is refused with a clear sentence."""

import io
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# Album covers are at most a few megapixels; 40 MP leaves room for print-resolution art and refuses
# decompression bombs (a few KB of PNG that inflate to gigabytes) before any pixel is decoded.
MAX_COVER_PIXELS = 40_000_000
MAX_COVER_BYTES = 30 * 1024 * 1024
MIN_COVER_SIDE = 32


class CoverImageError(ValueError):
    """A file that cannot be used as a cover, with the reason in one sentence."""


def load_cover_image(source: str | Path | bytes) -> Image.Image:
    """Decode and validate a cover image and return it as RGB.

    Args:
        source: a file path or the file's bytes.

    Raises:
        CoverImageError: empty, too large, not an image, truncated, a decompression bomb, or too small.
    """
    data = Path(source).read_bytes() if isinstance(source, str | Path) else source
    if not data:
        raise CoverImageError("the file is empty (0 bytes)")
    if len(data) > MAX_COVER_BYTES:
        raise CoverImageError(
            f"the file is {len(data) / 1e6:.1f} MB; covers are limited to {MAX_COVER_BYTES // 2**20} MB"
        )
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; treat the warning as the error it is.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_COVER_PIXELS:
                raise CoverImageError(
                    f"the image is {image.width}x{image.height} pixels; covers are limited to "
                    f"{MAX_COVER_PIXELS // 1_000_000} megapixels"
                )
            image.load()
    except CoverImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CoverImageError(f"the image is too large to decode safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise CoverImageError("the file is not an image Pillow can read (PNG, JPEG, WebP, GIF, ...)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise CoverImageError(f"the image is damaged or truncated ({exc})") from exc
    if min(image.size) < MIN_COVER_SIDE:
        raise CoverImageError(f"the image is {image.width}x{image.height}; covers must be at least {MIN_COVER_SIDE} px")
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode (CMYK, 16-bit, palette with transparency, LA, ...) to RGB; transparency over white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping everything above 255 to white.
        array = image.point(lambda value: value / 256).convert("L")
        return array.convert("RGB")
    if image.mode == "P" and "transparency" in image.info or image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
