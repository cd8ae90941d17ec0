"""Small numpy measurements of rendered audio: tempo by onset autocorrelation, key by chroma and key profiles.

The synth's tests use them to check that the music has the requested tempo and key instead of trusting the code;
they are also cheap enough to show beside a clip. Good for clips of a few seconds or more with a clear beat.
"""

import numpy as np

from generation.features import MODES, PITCH_CLASSES

# Krumhansl-Kessler key profiles (probe-tone ratings), tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _check_mono(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 1 or samples.size == 0:
        raise ValueError(f"expected non-empty mono samples, got shape {samples.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    return samples


def _log_bands(frame: int, sample_rate: int, *, count: int = 16, fmin: float = 30.0) -> np.ndarray:
    """A (bins, count) matrix summing FFT power into log-spaced bands from ``fmin`` to Nyquist."""
    frequencies = np.fft.rfftfreq(frame, 1.0 / sample_rate)
    edges = np.geomspace(fmin, sample_rate / 2, count + 1)
    index = np.searchsorted(edges, frequencies, side="right") - 1
    matrix = np.zeros((frequencies.size, count))
    inside = (index >= 0) & (index < count)
    matrix[np.flatnonzero(inside), index[inside]] = 1.0
    return matrix


def onset_envelope(
    samples: np.ndarray, sample_rate: int, *, frame: int = 1024, hop: int = 128
) -> tuple[np.ndarray, float]:
    """Onset strength: half-wave rectified flux of log-compressed energy in 16 log-spaced frequency bands.

    Log-spaced bands let a kick's few low bins count as much as a hi-hat's many high ones; with plain FFT bins the
    hats dominated and busy off-beats read as the beat.

    Args:
        samples: mono audio.
        sample_rate: its rate in Hz.
        frame: STFT frame length in samples (default 1024, 32 ms at 32 kHz).
        hop: hop in samples (default 128: 4 ms at 32 kHz, fine enough for a 1% tempo estimate).

    Returns:
        The envelope (one value per hop, local mean removed, never negative) and its rate in frames per second.
    """
    # Centred frames (half a frame of silence each side), so envelope index i is time i * hop.
    samples = np.pad(_check_mono(samples, sample_rate), frame // 2)
    frames = np.lib.stride_tricks.sliding_window_view(samples, frame)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1)) ** 2
    bands = power @ _log_bands(frame, sample_rate)
    # Log compression (gamma 1000) lets quiet and loud onsets both count.
    log_bands = np.log1p(1000.0 * np.sqrt(bands) / (frame / 2))
    flux = np.maximum(np.diff(log_bands, axis=0), 0.0).sum(axis=1)
    flux = np.concatenate([[0.0], flux])
    rate = sample_rate / hop
    # Subtracting a ~0.4 s moving mean keeps fades and crescendos out of the periodicity.
    width = max(1, int(0.4 * rate))
    local_mean = np.convolve(flux, np.ones(width) / width, mode="same")
    return np.maximum(flux - local_mean, 0.0), rate


def _autocorrelation(envelope: np.ndarray) -> np.ndarray:
    # Biased (not divided by overlap): long lags weigh less, which breaks the tie between a beat and its multiples.
    size = 1 << int(np.ceil(np.log2(2 * envelope.size)))
    spectrum = np.fft.rfft(envelope - envelope.mean(), size)
    return np.fft.irfft(np.abs(spectrum) ** 2, size)[: envelope.size]


def _peak_near(values: np.ndarray, centre: float, radius: int) -> float | None:
    low, high = int(np.floor(centre)) - radius, int(np.ceil(centre)) + radius
    if low < 1 or high >= values.size - 1:
        return None
    index = low + int(np.argmax(values[low : high + 1]))
    left, middle, right = values[index - 1], values[index], values[index + 1]
    curvature = left - 2 * middle + right
    offset = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    return index + offset


def estimate_tempo(
    samples: np.ndarray, sample_rate: int, *, min_bpm: float = 40.0, max_bpm: float = 240.0, harmonics: int = 4
) -> float:
    """Estimate the beat tempo in BPM from the autocorrelation of the onset envelope.

    Each candidate beat period is scored by the autocorrelation summed at its first ``harmonics`` multiples (a
    comb), which prefers the beat over its half (off-beats are weaker than beats) and over its double (the biased
    autocorrelation decays with lag). The winner is refined by a least-squares fit through the interpolated peaks
    at its multiples. Like any estimator without a tempo prior it can land an octave off when off-beats are as busy
    as beats (a plain rock beat with eighth-note hats at 70 BPM reads 140).

    Args:
        samples: mono audio, a few seconds or more.
        sample_rate: its rate in Hz.
        min_bpm: slowest tempo considered (default 40).
        max_bpm: fastest tempo considered (default 240).
        harmonics: multiples of the period in the comb (default 4).

    Returns:
        The tempo in beats per minute.
    """
    envelope, rate = onset_envelope(samples, sample_rate)
    correlation = _autocorrelation(envelope)
    shortest, longest = int(np.floor(60.0 * rate / max_bpm)), int(np.ceil(60.0 * rate / min_bpm))
    longest = min(longest, (correlation.size - 1) // harmonics)
    if longest <= shortest:
        raise ValueError("the clip is too short to measure a tempo in that range")
    # Candidate periods every half frame; the k-th multiple of a period known to half a frame is known to about
    # k / 4 frames, so each multiple takes the maximum within a radius that grows with k. Sampling single integer
    # lags instead missed the narrow peaks of non-integer periods and picked a multiple (180 BPM read as 60).
    lags = np.arange(max(shortest, 1), longest + 0.5, 0.5)
    scores = np.zeros(lags.size)
    for k in range(1, harmonics + 1):
        radius = 1 + k // 2
        padded = np.pad(correlation, radius, constant_values=-np.inf)
        widest = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1).max(axis=1)
        scores += widest[np.minimum(np.rint(k * lags).astype(int), correlation.size - 1)]
    period = float(lags[int(np.argmax(scores))])
    peaks = [(k, _peak_near(correlation, k * period, radius=1 + k // 2)) for k in range(1, harmonics + 1)]
    found = [(k, peak) for k, peak in peaks if peak is not None]
    if found:
        period = sum(k * peak for k, peak in found) / sum(k * k for k, _ in found)
    return 60.0 * rate / period


def chroma(samples: np.ndarray, sample_rate: int, *, fmin: float = 55.0, fmax: float = 2000.0) -> np.ndarray:
    """Energy per pitch class (C first) from the whole clip's power spectrum between ``fmin`` and ``fmax``.

    Args:
        samples: mono audio.
        sample_rate: its rate in Hz.
        fmin: lowest frequency counted, Hz (default 55, A1).
        fmax: highest frequency counted, Hz (default 2000).

    Returns:
        Twelve non-negative values summing to 1.
    """
    samples = _check_mono(samples, sample_rate)
    # A flat window with 20 ms tapers: a Hann window over the whole clip would weigh its middle bars most.
    taper = min(samples.size // 2, int(0.02 * sample_rate))
    window = np.ones(samples.size)
    if taper > 0:
        ramp = np.hanning(2 * taper)
        window[:taper], window[samples.size - taper :] = ramp[:taper], ramp[taper:]
    power = np.abs(np.fft.rfft(samples * window)) ** 2
    frequencies = np.fft.rfftfreq(samples.size, 1.0 / sample_rate)
    band = (frequencies >= fmin) & (frequencies <= fmax)
    pitch_classes = np.rint(69 + 12 * np.log2(frequencies[band] / 440.0)).astype(int) % 12
    energy = np.bincount(pitch_classes, weights=power[band], minlength=12)
    total = energy.sum()
    return energy / total if total > 0 else energy


def key_scores(profile: np.ndarray) -> np.ndarray:
    """Correlation of a chroma profile with the 24 rotated Krumhansl-Kessler profiles, shape (2, 12): mode, tonic."""
    # The square root tames the few loudest partials, which otherwise decide alone.
    compressed = np.sqrt(profile)
    scores = np.empty((len(MODES), len(PITCH_CLASSES)))
    for mode_index, template in enumerate((MAJOR_PROFILE, MINOR_PROFILE)):
        for tonic in range(len(PITCH_CLASSES)):
            scores[mode_index, tonic] = np.corrcoef(compressed, np.roll(template, tonic))[0, 1]
    return scores


def estimate_key(samples: np.ndarray, sample_rate: int) -> tuple[str, str]:
    """Estimate key and mode (Krumhansl-Schmuckler on the clip's chroma).

    Args:
        samples: mono audio.
        sample_rate: its rate in Hz.

    Returns:
        The tonic pitch class name and the mode, e.g. ``("A", "minor")``.
    """
    scores = key_scores(chroma(samples, sample_rate))
    mode_index, tonic = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return PITCH_CLASSES[int(tonic)], MODES[int(mode_index)]
