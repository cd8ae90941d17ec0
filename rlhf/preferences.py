"""Hidden preferences of simulated labelers (``python -m rlhf simulate --preference module:function``).

A preference is any callable ``preference(cover: SimCover, features: dict) -> float``:

- ``cover`` holds the cover the labeler sees: ``image`` (an RGB ``PIL.Image.Image``), ``cover_url`` and the
  ``assignment_id``;
- ``features`` is one variant's parsed feature JSON (``genre``, ``key``, ``mode``, ``time_signature``, ``tempo``,
  ``loudness`` and the 0-1 features ``acousticness``, ``danceability``, ``energy``, ``instrumentalness``,
  ``liveness``, ``speechiness``, ``valence``), which the labeler does not see but "hears";
- the score is higher for a variant the labeler likes more, on a 0-1 scale: the simulator adds Gaussian noise to it,
  ranks the variants by the noisy score and turns it into 1-5 ratings by fifths of that scale.

It is called once per variant of every assignment and should be deterministic: the noise is the simulator's job. Any
importable function with this signature works, e.g. ``--preference mypackage.prefs:likes_slow_songs``.
"""

import math
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image, ImageStat


@dataclass(frozen=True)
class SimCover:
    """The cover of an assignment, as a simulated labeler sees it."""

    image: Image.Image
    cover_url: str
    assignment_id: int


class Preference(Protocol):
    def __call__(self, cover: SimCover, features: dict[str, Any], /) -> float: ...


def mean_luminance(image: Image.Image) -> float:
    """Mean luma (ITU-R 601, Pillow's ``L`` mode) of an image, 0 (black) to 1 (white)."""
    return float(ImageStat.Stat(image.convert("L")).mean[0]) / 255.0


# Luminance 0.5 +- 0.1 moves the weight from 12% to 88%: covers clearly bright or dark get a clear-cut taste.
_BRIGHTNESS_SCALE = 0.05


def brightness_energy(cover: SimCover, features: dict[str, Any]) -> float:
    """Bright covers want energetic music, dark covers calm music.

    A smooth version of ``energy if luminance > 0.5 else 1 - energy``: with ``w`` the logistic of
    ``(luminance - 0.5) / 0.05``, the score is ``w * energy + (1 - w) * (1 - energy)``.

    Args:
        cover: the cover; only its mean luminance counts.
        features: the variant's features; only ``energy`` (0-1) counts.

    Returns:
        A score from 0 to 1.
    """
    energy = float(features["energy"])
    weight = 1.0 / (1.0 + math.exp(-(mean_luminance(cover.image) - 0.5) / _BRIGHTNESS_SCALE))
    return weight * energy + (1.0 - weight) * (1.0 - energy)


def high_valence(cover: SimCover, features: dict[str, Any]) -> float:
    """Happier music is better, whatever the cover: the score is the variant's ``valence`` (0-1)."""
    return float(features["valence"])
