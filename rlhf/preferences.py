"""Hidden preferences of simulated labelers (``python -m rlhf simulate --preference module:function``).

A preference is any callable ``preference(cover: SimCover, features: dict) -> float``:

- ``cover`` holds the cover the labeler sees: ``image`` (an RGB ``PIL.Image.Image``), ``cover_url`` and the
  ``assignment_id``;
- ``features`` is one variant's parsed feature JSON (``genre``, ``key`` one of C, C#, ... B, ``mode`` "major" or
  "minor", ``time_signature``, ``tempo`` in BPM, ``loudness`` in dB and the 0-1 features ``acousticness``,
  ``danceability``, ``energy``, ``instrumentalness``, ``liveness``, ``speechiness``, ``valence``), which the labeler
  does not see but "hears";
- the score is higher for a variant the labeler likes more, on a 0-1 scale: the simulator adds Gaussian noise to it,
  ranks the variants by the noisy score and turns it into 1-5 ratings by fifths of that scale.

It is called once per variant of every assignment and should be deterministic: the noise is the simulator's job. Any
importable function with this signature works, e.g. ``--preference mypackage.prefs:likes_slow_songs``.

Built in (``BUILT_IN_TASTES``, each ``rlhf.preferences:<name>``): four tastes that depend on what the cover looks
like, each through one cover measure (a small pure function of the image, exposed so that tests and reports can group
covers by it) and a smooth logistic switch (``COVER_SWITCHES``) between two sides, so that clear covers get a
clear-cut taste and covers near the switch point a blend of both:

- ``brightness_energy`` (``mean_luminance``): bright covers want energetic music, dark covers calm music;
- ``warmth_tempo_mode`` (``warmth``): warm red/orange covers want fast music in major, cool blue ones slow in minor;
- ``texture_acousticness`` (``edge_density``): grainy, busy covers want electric danceable music, smooth covers
  acoustic music that is not for dancing;
- ``balance_loudness_key`` (``vertical_balance``): covers heavy at the top want loud music with a high tonic (F#-B),
  covers heavy at the bottom quiet music with a low tonic (C-F);

and ``high_valence``, the same for every cover. The switch points split the restyled covers of
``python fixtures/make_catalog.py --restyle`` (whose look is drawn apart from the album's mood) into two sides that
both hold a good share; the default catalog's covers, drawn from the mood alone, fall mostly on one side of some.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageStat


@dataclass(frozen=True)
class SimCover:
    """The cover of an assignment, as a simulated labeler sees it."""

    image: Image.Image
    cover_url: str
    assignment_id: int


class Preference(Protocol):
    def __call__(self, cover: SimCover, features: dict[str, Any], /) -> float: ...


# --- cover measures -----------------------------------------------------------------------------------------------

# ITU-R 601 luma weights, as Pillow's "L" mode uses them.
_LUMA = np.array([0.299, 0.587, 0.114])
# A step of a tenth of the luma scale (25 of 255 levels) between neighbouring pixels counts as an edge: above the
# 48-colour palette's banding in the fixture's gradients, below the steps that grain and shape outlines make.
EDGE_STEP = 0.1


def luma_of(image: Image.Image) -> np.ndarray:
    """Each pixel's luma (ITU-R 601 weights), 0 to 1, as a (height, width) array."""
    return np.asarray(image.convert("RGB"), dtype=np.float64) @ _LUMA / 255.0


def mean_luminance(image: Image.Image) -> float:
    """Mean luma (ITU-R 601, Pillow's ``L`` mode) of an image, 0 (black) to 1 (white)."""
    return float(ImageStat.Stat(image.convert("L")).mean[0]) / 255.0


def warmth(image: Image.Image) -> float:
    """Mean of red minus blue over the pixels, -1 (pure blue) to 1 (pure red); greys are 0, orange is about 0.5."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    return float((rgb[..., 0] - rgb[..., 2]).mean())


def edge_density(image: Image.Image) -> float:
    """Share of pixels whose luma differs from its right or lower neighbour by more than ``EDGE_STEP``, 0 to 1.

    Grain and many small sharp shapes make it high, gradients and blur make it near 0; measured at the image's own
    resolution.
    """
    luma = luma_of(image)
    if min(luma.shape) < 2:
        return 0.0
    across = np.abs(np.diff(luma, axis=1))[:-1, :]
    down = np.abs(np.diff(luma, axis=0))[:, :-1]
    return float((np.maximum(across, down) > EDGE_STEP).mean())


def vertical_balance(image: Image.Image) -> float:
    """Where the visual mass (darkness) sits: mean luma of the lower half minus that of the upper half, -1 to 1.

    Positive: the upper half is darker, the cover is heavy at the top; negative: heavy at the bottom. The middle row
    of an odd height counts in neither half.
    """
    luma = luma_of(image)
    half = luma.shape[0] // 2
    if half == 0:
        return 0.0
    return float(luma[-half:].mean() - luma[:half].mean())


@dataclass(frozen=True)
class CoverSwitch:
    """A cover measure with the logistic switch that turns it into a taste's weight.

    Attributes:
        measure: the cover measure, a pure function of the image.
        midpoint: the measure's value where the weight is 0.5.
        scale: the logistic's scale: midpoint +- 2 scales moves the weight from 12% to 88%.
        sides: names of the side below and the side above the midpoint, e.g. ``("dark", "bright")``.
    """

    measure: Callable[[Image.Image], float]
    midpoint: float
    scale: float
    sides: tuple[str, str]

    def weight(self, image: Image.Image) -> float:
        """How far the cover is on the upper side, 0 to 1."""
        return _logistic((self.measure(image) - self.midpoint) / self.scale)

    def side(self, image: Image.Image) -> str:
        """The side of the midpoint the cover's measure is on (the upper side at the midpoint itself)."""
        return self.sides[1] if self.measure(image) >= self.midpoint else self.sides[0]


def _logistic(value: float) -> float:
    # Clipped: math.exp overflows past ~709, and the weight is 0 or 1 to double precision long before.
    return 1.0 / (1.0 + math.exp(-min(max(value, -60.0), 60.0)))


# Luminance 0.5 +- 0.1 moves the weight from 12% to 88%: covers clearly bright or dark get a clear-cut taste.
_BRIGHTNESS_SCALE = 0.05

# Switch points, and the split they give on the 112 restyled covers of make_catalog.py --restyle --seed 31
# --albums-per-genre 8 (measured; tests/rlhf/test_preferences.py checks both sides hold at least 25%). On those covers
# no measure correlates with the album's valence, energy or acousticness beyond |r| 0.13.
COVER_SWITCHES: dict[str, CoverSwitch] = {
    # 59 bright / 53 dark: luminance 0.22-0.77, none within 0.08 of the midpoint.
    "brightness_energy": CoverSwitch(mean_luminance, 0.5, _BRIGHTNESS_SCALE, ("dark", "bright")),
    # 46 warm / 66 cool: warmth -0.35 to 0.33, none within 0.08 of 0.
    "warmth_tempo_mode": CoverSwitch(warmth, 0.0, 0.04, ("cool", "warm")),
    # 53 grainy / 59 smooth: grainy 0.35-0.77, smooth 0.012 at most (the default catalog's covers: 0-0.125).
    "texture_acousticness": CoverSwitch(edge_density, 0.1, 0.02, ("smooth", "grainy")),
    # 56 top-heavy / 56 bottom-heavy: balance -0.30 to 0.29, none within 0.07 of 0.
    "balance_loudness_key": CoverSwitch(vertical_balance, 0.0, 0.04, ("bottom-heavy", "top-heavy")),
}


# --- feature scales -----------------------------------------------------------------------------------------------


def _unit(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def tempo_unit(features: dict[str, Any]) -> float:
    """Tempo on a 0-1 scale: 60 BPM and slower 0, 200 BPM and faster 1 (the catalog's albums lie in 60-200)."""
    return _unit((float(features["tempo"]) - 60.0) / 140.0)


def loudness_unit(features: dict[str, Any]) -> float:
    """Loudness on a 0-1 scale: -40 dB and quieter 0, -5 dB and louder 1 (the catalog's songs lie in -40 to -1)."""
    return _unit((float(features["loudness"]) + 40.0) / 35.0)


# The tonics of the upper half of the octave; the lower half is C to F.
_HIGH_KEYS = frozenset({"F#", "G", "G#", "A", "A#", "B"})


def major_unit(features: dict[str, Any]) -> float:
    """1 for a variant in major, 0 in minor."""
    return 1.0 if features["mode"] == "major" else 0.0


def high_tonic(features: dict[str, Any]) -> float:
    """1 for a tonic in the upper half of the octave (F# to B), 0 for C to F."""
    return 1.0 if features["key"] in _HIGH_KEYS else 0.0


def blend(weight: float, upper: float, lower: float) -> float:
    """The score of a cover ``weight`` of the way to the upper side: its upper-side score, else its lower one."""
    return weight * upper + (1.0 - weight) * lower


# --- tastes -------------------------------------------------------------------------------------------------------


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
    weight = COVER_SWITCHES["brightness_energy"].weight(cover.image)
    return blend(weight, energy, 1.0 - energy)


def warmth_tempo_mode(cover: SimCover, features: dict[str, Any]) -> float:
    """Warm (red, orange) covers want fast music in major, cool (blue) covers slow music in minor.

    With ``fast`` = clip((tempo - 60) / 140, 0, 1), ``major`` = 1 for mode "major" else 0, and ``w`` the logistic of
    ``warmth / 0.04``: the score is ``w * (fast + major) / 2 + (1 - w) * (2 - fast - major) / 2``.

    Args:
        cover: the cover; only its ``warmth`` (mean red minus blue) counts.
        features: the variant's features; ``tempo`` (BPM) and ``mode`` ("major" or "minor") count.

    Returns:
        A score from 0 to 1.
    """
    fast = tempo_unit(features)
    major = major_unit(features)
    weight = COVER_SWITCHES["warmth_tempo_mode"].weight(cover.image)
    return blend(weight, (fast + major) / 2, (2.0 - fast - major) / 2)


def texture_acousticness(cover: SimCover, features: dict[str, Any]) -> float:
    """Grainy, busy covers want electric music to dance to, smooth covers acoustic music that is not for dancing.

    With ``w`` the logistic of ``(edge_density - 0.1) / 0.02``: the score is
    ``w * (1 - acousticness + danceability) / 2 + (1 - w) * (acousticness + 1 - danceability) / 2``.

    Args:
        cover: the cover; only its ``edge_density`` counts.
        features: the variant's features; ``acousticness`` and ``danceability`` (0-1) count.

    Returns:
        A score from 0 to 1.
    """
    acoustic = float(features["acousticness"])
    dance = float(features["danceability"])
    weight = COVER_SWITCHES["texture_acousticness"].weight(cover.image)
    return blend(weight, (1.0 - acoustic + dance) / 2, (acoustic + 1.0 - dance) / 2)


def balance_loudness_key(cover: SimCover, features: dict[str, Any]) -> float:
    """Covers heavy at the top want loud music with a high tonic, covers heavy at the bottom quiet music, low tonic.

    With ``loud`` = clip((loudness + 40) / 35, 0, 1), ``high`` = 1 for a tonic F# to B else 0 (C to F), and ``w`` the
    logistic of ``vertical_balance / 0.04``: the score is ``w * (loud + high) / 2 + (1 - w) * (2 - loud - high) / 2``.

    Args:
        cover: the cover; only its ``vertical_balance`` (where its dark mass sits) counts.
        features: the variant's features; ``loudness`` (dB) and ``key`` (C, C#, ... B) count.

    Returns:
        A score from 0 to 1.
    """
    loud = loudness_unit(features)
    high = high_tonic(features)
    weight = COVER_SWITCHES["balance_loudness_key"].weight(cover.image)
    return blend(weight, (loud + high) / 2, (2.0 - loud - high) / 2)


def high_valence(cover: SimCover, features: dict[str, Any]) -> float:
    """Happier music is better, whatever the cover: the score is the variant's ``valence`` (0-1)."""
    return float(features["valence"])


# Every built-in taste by name; ``--preference rlhf.preferences:<name>`` selects one.
BUILT_IN_TASTES: dict[str, Preference] = {
    "brightness_energy": brightness_energy,
    "warmth_tempo_mode": warmth_tempo_mode,
    "texture_acousticness": texture_acousticness,
    "balance_loudness_key": balance_loudness_key,
    "high_valence": high_valence,
}
