"""The measuring instruments themselves, on signals whose tempo and key are known by construction."""

import numpy as np
import pytest

from generation.analysis import chroma, estimate_key, estimate_tempo, onset_envelope

SAMPLE_RATE = 16000


def click_track(bpm: float, seconds: float = 8.0) -> np.ndarray:
    samples = np.zeros(int(seconds * SAMPLE_RATE))
    click = np.random.default_rng(0).standard_normal(200) * np.exp(-np.arange(200) / 30)
    for time in np.arange(0.0, seconds - 0.1, 60.0 / bpm):
        start = int(round(time * SAMPLE_RATE))
        samples[start : start + click.size] += click
    return samples


def rock_beat(bpm: float, seconds: float = 8.0) -> np.ndarray:
    """Kick (a 60 Hz thump) on beats 1 and 3, snare (a noise burst) on 2 and 4, hi-hat on every eighth note."""
    samples = np.zeros(int(seconds * SAMPLE_RATE))
    rng = np.random.default_rng(0)
    time = np.arange(int(0.2 * SAMPLE_RATE)) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * 60 * time) * np.exp(-time / 0.08)
    snare = 0.5 * rng.standard_normal(time.size) * np.exp(-time / 0.05)
    hat = 0.2 * np.diff(rng.standard_normal(801)) * np.exp(-np.arange(800) / 150)
    for index, start_s in enumerate(np.arange(0.0, seconds - 0.3, 30.0 / bpm)):
        start = int(round(start_s * SAMPLE_RATE))
        samples[start : start + hat.size] += hat
        if index % 2 == 0:
            drum = kick if index % 4 == 0 else snare
            samples[start : start + drum.size] += drum
    return samples


def chord_tones(pitch_classes: list[int], seconds: float = 3.0) -> np.ndarray:
    time = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = np.zeros_like(time)
    for pitch_class in pitch_classes:
        wave += np.sin(2 * np.pi * 440.0 * 2 ** ((pitch_class - 9) / 12) * time)
    return wave


@pytest.mark.parametrize("bpm", [60.0, 97.0, 133.0, 180.0])
def test_tempo_of_a_click_track(bpm: float) -> None:
    assert estimate_tempo(click_track(bpm), SAMPLE_RATE) == pytest.approx(bpm, rel=0.01)


@pytest.mark.parametrize("bpm", [90.0, 120.0, 150.0])
def test_hats_on_the_eighths_do_not_double_the_tempo(bpm: float) -> None:
    # A beat has a kick or a snare besides its hat, an off-beat only a hat: the estimator should follow the drums.
    # (At 70 BPM this pattern reads 140: octave ambiguity, which autocorrelation alone cannot settle.)
    assert estimate_tempo(rock_beat(bpm), SAMPLE_RATE) == pytest.approx(bpm, rel=0.01)


def test_onset_envelope_peaks_at_the_clicks() -> None:
    envelope, rate = onset_envelope(click_track(120.0, 4.0), SAMPLE_RATE)
    assert rate == SAMPLE_RATE / 128
    peaks = np.flatnonzero((envelope[1:-1] > envelope[:-2]) & (envelope[1:-1] >= envelope[2:])) + 1
    strong = peaks[envelope[peaks] > 0.3 * envelope.max()] / rate
    # Every click after the first (which has no silence before it to rise from) shows, within 30 ms.
    assert np.allclose(strong, np.arange(1, 8) * 0.5, atol=0.03)


def test_a_clip_too_short_for_the_tempo_range_is_refused() -> None:
    with pytest.raises(ValueError, match="too short"):
        estimate_tempo(click_track(120.0, 1.0), SAMPLE_RATE, min_bpm=40.0)


def test_chroma_of_an_a_minor_triad() -> None:
    profile = chroma(chord_tones([9, 0, 4]), SAMPLE_RATE)
    assert profile.sum() == pytest.approx(1.0)
    assert set(np.argsort(profile)[-3:]) == {9, 0, 4}


@pytest.mark.parametrize(
    ("pitch_classes", "key"),
    [
        ([0, 4, 7, 0, 5, 9, 7, 11, 2, 0, 4, 7], ("C", "major")),
        ([9, 0, 4, 9, 2, 5, 4, 8, 11, 9, 0, 4], ("A", "minor")),
        ([6, 10, 1, 6, 11, 3, 1, 5, 8], ("F#", "major")),
    ],
)
def test_key_of_a_cadence(pitch_classes: list[int], key: tuple[str, str]) -> None:
    # Three-note chords in sequence: tonic, subdominant, dominant (with the leading tone), tonic.
    chords = [pitch_classes[index : index + 3] for index in range(0, len(pitch_classes), 3)]
    samples = np.concatenate([chord_tones(chord, 1.0) for chord in chords])
    assert estimate_key(samples, SAMPLE_RATE) == key


@pytest.mark.parametrize("bad", [np.zeros(0), np.zeros((2, 100))])
def test_bad_input_is_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="mono"):
        chroma(bad, SAMPLE_RATE)
