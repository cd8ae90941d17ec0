"""The built-in hidden tastes and their cover measures, and the fixture generator's restyled covers, whose look the
tastes read but the album's mood does not predict."""

import io
import random
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from generation.features import UNIT_FEATURES
from rlhf.preferences import (
    BUILT_IN_TASTES,
    COVER_SWITCHES,
    SimCover,
    balance_loudness_key,
    brightness_energy,
    edge_density,
    high_valence,
    mean_luminance,
    texture_acousticness,
    vertical_balance,
    warmth,
    warmth_tempo_mode,
)
from rlhf.simulate import load_preference
from tests.conftest import load_fixture_script

# A seed no other test draws covers with; 8 albums per genre = 112 covers.
RESTYLE_SEED = 31
RESTYLE_ALBUMS_PER_GENRE = 8
CATALOG_TASTES = [name for name in BUILT_IN_TASTES if name in COVER_SWITCHES]


def cover(image: Image.Image) -> SimCover:
    return SimCover(image=image, cover_url="/media/x.png", assignment_id=1)


def flat(rgb: tuple[int, int, int], size: int = 32) -> Image.Image:
    return Image.new("RGB", (size, size), rgb)


def grainy(seed: int = 0, size: int = 64) -> Image.Image:
    noise = np.random.default_rng(seed).normal(128, 40, (size, size))
    return Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).convert("RGB")


def halves(top: int, bottom: int, size: int = 32) -> Image.Image:
    image = flat((bottom, bottom, bottom), size)
    image.paste((top, top, top), (0, 0, size, size // 2))
    return image


def random_features(rng: random.Random) -> dict:
    return {
        "genre": "pop",
        "key": rng.choice(("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")),
        "mode": rng.choice(("major", "minor")),
        "time_signature": 4,
        "tempo": rng.uniform(40, 220),
        "loudness": rng.uniform(-60, 0),
        **{name: rng.random() for name in UNIT_FEATURES},
    }


def test_the_measures_read_what_their_names_say():
    assert mean_luminance(flat((255, 255, 255))) == 1.0 and mean_luminance(flat((0, 0, 0))) == 0.0
    assert warmth(flat((255, 120, 0))) == pytest.approx(1.0) and warmth(flat((0, 60, 255))) == pytest.approx(-1.0)
    assert warmth(flat((128, 128, 128))) == 0.0
    assert edge_density(flat((90, 90, 90))) == 0.0 and edge_density(grainy()) > 0.5
    assert vertical_balance(halves(top=20, bottom=230)) == pytest.approx(210 / 255, abs=0.01)  # dark mass on top
    assert vertical_balance(halves(top=230, bottom=20)) == pytest.approx(-210 / 255, abs=0.01)
    assert edge_density(flat((1, 2, 3), size=1)) == 0.0 and vertical_balance(flat((1, 2, 3), size=1)) == 0.0


def test_each_cover_switch_puts_clear_covers_on_their_side():
    clear = {
        "brightness_energy": (flat((20, 20, 20)), flat((235, 235, 235))),
        "warmth_tempo_mode": (flat((40, 80, 200)), flat((220, 110, 40))),
        "texture_acousticness": (flat((120, 120, 120)), grainy()),
        "balance_loudness_key": (halves(top=220, bottom=30), halves(top=30, bottom=220)),
    }
    assert sorted(clear) == sorted(COVER_SWITCHES)
    for name, (lower, upper) in clear.items():
        switch = COVER_SWITCHES[name]
        assert switch.weight(lower) < 0.05 and switch.weight(upper) > 0.95, name
        assert (switch.side(lower), switch.side(upper)) == switch.sides


def test_the_registry_names_every_built_in_and_each_loads_as_a_preference():
    assert sorted(BUILT_IN_TASTES) == sorted([*COVER_SWITCHES, "high_valence"])
    for name, taste in BUILT_IN_TASTES.items():
        assert taste.__name__ == name and load_preference(f"rlhf.preferences:{name}") is taste


@pytest.mark.parametrize("name", sorted(BUILT_IN_TASTES))
def test_every_taste_is_deterministic_and_scores_from_0_to_1(name):
    taste = BUILT_IN_TASTES[name]
    rng = random.Random(name)
    images = [flat((20, 20, 20)), flat((220, 110, 40)), grainy(), halves(top=30, bottom=220), flat((128, 128, 128))]
    for image in images:
        for _ in range(50):
            features = random_features(rng)
            score = taste(cover(image), features)
            assert 0.0 <= score <= 1.0 and taste(cover(image), dict(features)) == score


def test_brightness_energy_is_unchanged():
    # The loop proof's brightness figures (README) rest on this exact formula: w = logistic((luminance - 0.5) / 0.05).
    image = flat((150, 150, 150))
    weight = 1.0 / (1.0 + np.exp(-(150 / 255 - 0.5) / 0.05))
    assert brightness_energy(cover(image), {"energy": 0.7}) == pytest.approx(weight * 0.7 + (1 - weight) * 0.3)
    assert brightness_energy(cover(flat((128, 128, 128))), {"energy": 0.9}) == pytest.approx(0.5, abs=0.05)
    assert high_valence(cover(image), {"valence": 0.3}) == 0.3


def test_warm_covers_want_fast_major_music_and_cool_ones_slow_minor():
    warm, cool = cover(flat((220, 110, 40))), cover(flat((40, 80, 200)))
    fast_major = {"tempo": 190.0, "mode": "major"}
    slow_minor = {"tempo": 70.0, "mode": "minor"}
    assert warmth_tempo_mode(warm, fast_major) > 0.9 > 0.1 > warmth_tempo_mode(warm, slow_minor)
    assert warmth_tempo_mode(cool, slow_minor) > 0.9 > 0.1 > warmth_tempo_mode(cool, fast_major)
    # Tempo counts on its own too, and is clipped at 60 and 200 BPM.
    assert warmth_tempo_mode(warm, {"tempo": 150.0, "mode": "minor"}) > warmth_tempo_mode(
        warm, {"tempo": 90.0, "mode": "minor"}
    )
    assert warmth_tempo_mode(warm, {"tempo": 220.0, "mode": "major"}) == warmth_tempo_mode(
        warm, {"tempo": 200.0, "mode": "major"}
    )


def test_grainy_covers_want_electric_dance_music_and_smooth_ones_acoustic():
    busy, smooth = cover(grainy()), cover(flat((120, 120, 120)))
    electric = {"acousticness": 0.05, "danceability": 0.9}
    acoustic = {"acousticness": 0.9, "danceability": 0.2}
    assert texture_acousticness(busy, electric) > 0.8 > 0.2 > texture_acousticness(busy, acoustic)
    assert texture_acousticness(smooth, acoustic) > 0.8 > 0.2 > texture_acousticness(smooth, electric)


def test_top_heavy_covers_want_loud_music_in_a_high_key_and_bottom_heavy_ones_quiet_in_a_low_key():
    top_heavy, bottom_heavy = cover(halves(top=30, bottom=220)), cover(halves(top=220, bottom=30))
    loud_high = {"loudness": -4.0, "key": "A"}
    quiet_low = {"loudness": -35.0, "key": "D"}
    assert balance_loudness_key(top_heavy, loud_high) > 0.9 > 0.1 > balance_loudness_key(top_heavy, quiet_low)
    assert balance_loudness_key(bottom_heavy, quiet_low) > 0.9 > 0.1 > balance_loudness_key(bottom_heavy, loud_high)
    # The key alone moves the score by half of the scale (F# is the lowest of the high tonics).
    assert balance_loudness_key(top_heavy, {"loudness": -20.0, "key": "F#"}) - balance_loudness_key(
        top_heavy, {"loudness": -20.0, "key": "F"}
    ) == pytest.approx(0.5, abs=0.01)


# --- restyled fixture covers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def make_catalog() -> ModuleType:
    return load_fixture_script("make_catalog.py")


@pytest.fixture(scope="module")
def restyled(make_catalog) -> tuple[list, list[Image.Image]]:
    """The moods and the restyled covers (as labelers get them: decoded from the PNG) of a seed used nowhere else."""
    _, moods = make_catalog.make_rows(albums_per_genre=RESTYLE_ALBUMS_PER_GENRE, seed=RESTYLE_SEED)
    images = []
    for album_id, mood in moods.items():
        image = make_catalog.album_cover(album_id, mood, seed=RESTYLE_SEED, restyle=True)
        images.append(Image.open(io.BytesIO(make_catalog.png_bytes(image))).convert("RGB"))
    return list(moods.values()), images


@pytest.mark.parametrize("name", CATALOG_TASTES)
def test_restyled_covers_hide_the_album_mood_from_each_taste_and_fill_both_sides(name, restyled):
    moods, images = restyled
    switch = COVER_SWITCHES[name]
    measured = np.array([switch.measure(image) for image in images])
    for mood_name in ("valence", "energy", "acousticness"):
        mood = np.array([getattr(album, mood_name) for album in moods])
        r = np.corrcoef(measured, mood)[0, 1]
        assert abs(r) < 0.3, f"{name}: r = {r:.2f} against {mood_name}"
    sides = [switch.side(image) for image in images]
    for side in switch.sides:
        assert sides.count(side) >= 0.25 * len(images), f"{name}: {side} holds {sides.count(side)}/{len(images)}"


def test_unrestyled_covers_follow_the_mood_that_restyling_hides(restyled, make_catalog):
    # The reason for --restyle: drawn from the mood alone, brightness gives valence away.
    moods, _ = restyled
    plain = [
        mean_luminance(make_catalog.album_cover(f"album{index}", mood, seed=RESTYLE_SEED))
        for index, mood in enumerate(moods)
    ]
    assert np.corrcoef(plain, [mood.valence for mood in moods])[0, 1] > 0.6


def test_restyle_is_deterministic_and_leaves_the_csv_files_alone(make_catalog, tmp_path):
    make_catalog.make_catalog(tmp_path / "a", albums_per_genre=1, seed=RESTYLE_SEED, restyle=True)
    make_catalog.make_catalog(tmp_path / "b", albums_per_genre=1, seed=RESTYLE_SEED, restyle=True)
    make_catalog.make_catalog(tmp_path / "plain", albums_per_genre=1, seed=RESTYLE_SEED)
    files = sorted(path.relative_to(tmp_path / "a") for path in (tmp_path / "a").rglob("*") if path.is_file())
    assert len([path for path in files if path.suffix == ".png"]) == 14
    for relative in files:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative
        plain = (tmp_path / "plain" / relative).read_bytes()
        same = (tmp_path / "a" / relative).read_bytes() == plain
        assert same == (relative.suffix == ".csv"), relative  # the covers change, the rows do not
