import io

import numpy as np
import pytest
import soundfile as sf

from generation.encode import EncodedAudio, encode_audio, waveform_peaks

SAMPLE_RATE = 32000


def tone(seconds: float = 2.0, *, amplitude: float = 0.5) -> np.ndarray:
    time = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(0)
    wave = amplitude * np.sin(2 * np.pi * 220 * time) * np.exp(-time) + 0.01 * rng.standard_normal(time.size)
    return wave.astype(np.float32)


def test_encodes_browser_playable_mp3() -> None:
    encoded = encode_audio(tone(), SAMPLE_RATE)
    assert isinstance(encoded, EncodedAudio)
    assert (encoded.extension, encoded.mime_type) == ("mp3", "audio/mpeg")
    assert encoded.duration_s == pytest.approx(2.0)
    # An MPEG audio frame sync or an ID3 tag opens the file.
    assert encoded.data[:3] == b"ID3" or encoded.data[0] == 0xFF


def test_two_encodes_give_identical_bytes() -> None:
    samples = tone()
    assert encode_audio(samples, SAMPLE_RATE).data == encode_audio(samples.copy(), SAMPLE_RATE).data


def test_different_audio_gives_different_bytes() -> None:
    assert encode_audio(tone(), SAMPLE_RATE).data != encode_audio(tone(amplitude=0.3), SAMPLE_RATE).data


@pytest.mark.parametrize("seconds", [0.5, 3.0, 10.0])
def test_bytes_decode_back_to_the_right_duration(seconds: float) -> None:
    samples = tone(seconds)
    decoded, rate = sf.read(io.BytesIO(encode_audio(samples, SAMPLE_RATE).data), dtype="float32")
    assert rate == SAMPLE_RATE
    assert decoded.ndim == 1
    assert decoded.size / rate == pytest.approx(seconds, rel=0.01)
    # Lossy, but the same sound: the decoded waveform follows the input closely.
    size = min(decoded.size, samples.size)
    error = np.sqrt(np.mean((decoded[:size] - samples[:size]) ** 2)) / np.sqrt(np.mean(samples**2))
    assert error < 0.2


def test_float64_and_out_of_range_samples_are_accepted_and_clipped() -> None:
    samples = tone().astype(np.float64) * 3
    decoded, _ = sf.read(io.BytesIO(encode_audio(samples, SAMPLE_RATE).data), dtype="float64")
    clipped = np.clip(samples, -1, 1)
    size = min(decoded.size, clipped.size)
    # Close to the clipped input (a lossy codec overshoots a little at the clipped edges).
    assert np.sqrt(np.mean((decoded[:size] - clipped[:size]) ** 2)) < 0.1 * np.sqrt(np.mean(clipped**2))
    assert np.abs(decoded).max() < 1.2


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.array([0.0, np.nan, 0.1], dtype=np.float32), "NaN"),
        (np.array([0.0, np.inf], dtype=np.float32), "infinite"),
        (np.zeros((2, 100), dtype=np.float32), "mono"),
        (np.zeros(100, dtype=bool), "real numbers"),
    ],
)
def test_bad_samples_are_refused(samples: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_audio(samples, SAMPLE_RATE)
    with pytest.raises(ValueError, match=message):
        waveform_peaks(samples)


def test_a_list_is_refused() -> None:
    with pytest.raises(ValueError, match="numpy array"):
        encode_audio([0.0, 0.1], SAMPLE_RATE)  # type: ignore[arg-type]


def test_a_rate_mp3_cannot_carry_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be stored as MP3"):
        encode_audio(tone(), 31999)


def test_peaks_have_the_requested_length_and_range() -> None:
    peaks = waveform_peaks(tone(), bins=200)
    assert len(peaks) == 200
    assert all(isinstance(peak, float) and 0.0 <= peak <= 1.0 for peak in peaks)
    assert all(peak == round(peak, 3) for peak in peaks)
    # The tone decays, so the first bins are louder than the last.
    assert peaks[0] > peaks[-1]


def test_peaks_are_the_max_abs_per_bin() -> None:
    samples = np.zeros(1000, dtype=np.float32)
    samples[10] = -0.8
    samples[510] = 0.25
    assert waveform_peaks(samples, bins=2) == [0.8, 0.25]


def test_peaks_clip_to_one_and_survive_short_clips() -> None:
    assert waveform_peaks(np.array([2.0, -0.5]), bins=4) == [1.0, 1.0, 0.5, 0.5]


def test_peaks_refuse_zero_bins() -> None:
    with pytest.raises(ValueError, match="bins"):
        waveform_peaks(tone(), bins=0)
