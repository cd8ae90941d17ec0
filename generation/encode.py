"""Browser-playable compressed audio and waveform peaks for a rendered clip.

Format: MP3 (LAME through libsndfile 1.2.2), because the studio needs the same cover, seed and config to give
identical audio bytes, and MP3 is the format that is both byte-deterministic and playable in every browser.
Measured here (soundfile 0.14, 10 s at 32 kHz, two encodes of the same samples in one process and in two):

- Ogg Vorbis and Ogg Opus differ on every page: libsndfile picks a random Ogg stream serial number, so bytes
  14-17 (serial) and 22-25 (page CRC) of each page change (175 of 87,870 bytes for Vorbis, 104 of 77,245 for
  Opus). Making them deterministic would mean rewriting every page header and CRC after the encoder.
- MP3 and FLAC come out identical every time, also across processes; FLAC is lossless and ~4x larger (387 kB
  against ~100 kB).
- MP3 decodes back to exactly the input length (libsndfile honours the LAME gapless header).

Identical bytes hold for the same samples on the same build of libsndfile; the samples themselves are the
renderer's business.
"""

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf

MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# Variable bitrate at level 0.4 (0 best, 1 smallest; also libsndfile's default): ~80 kbps for the synth's mono 32 kHz
# clips, 97-101 kB per 10 s, encoded in ~75 ms.
MP3_COMPRESSION_LEVEL = 0.4


@dataclass(frozen=True)
class EncodedAudio:
    """One clip's compressed bytes, ready to store and serve."""

    data: bytes
    extension: str
    mime_type: str
    duration_s: float


def _checked_samples(samples: np.ndarray) -> np.ndarray:
    if not isinstance(samples, np.ndarray):
        raise ValueError(f"samples must be a numpy array, got {type(samples).__name__}")
    if samples.ndim != 1:
        raise ValueError(f"samples must be mono (one dimension), got shape {samples.shape}")
    if samples.size == 0:
        raise ValueError("samples are empty: nothing to encode")
    if not np.issubdtype(samples.dtype, np.number) or np.iscomplexobj(samples):
        raise ValueError(f"samples must be real numbers, got dtype {samples.dtype}")
    if not np.all(np.isfinite(samples)):
        raise ValueError("samples contain NaN or infinite values")
    return samples


def encode_audio(samples: np.ndarray, sample_rate: int) -> EncodedAudio:
    """Encode a mono clip as MP3; the same samples always give the same bytes.

    Args:
        samples: mono audio in [-1, 1] (values beyond are clipped), any real dtype.
        sample_rate: its rate in Hz; one of MPEG's rates (``MP3_SAMPLE_RATES``), e.g. 32000 for MusicGen.

    Returns:
        The MP3 bytes with extension ``"mp3"``, MIME type ``"audio/mpeg"`` and the clip's duration in seconds.

    Raises:
        ValueError: for empty, non-finite or multi-dimensional samples, or a rate MP3 cannot carry.
    """
    samples = _checked_samples(samples)
    if sample_rate not in MP3_SAMPLE_RATES:
        raise ValueError(f"sample_rate {sample_rate} Hz cannot be stored as MP3; use one of {MP3_SAMPLE_RATES}")
    buffer = io.BytesIO()
    sf.write(
        buffer,
        np.clip(samples, -1.0, 1.0).astype(np.float32),
        sample_rate,
        format="MP3",
        subtype="MPEG_LAYER_III",
        bitrate_mode="VARIABLE",
        compression_level=MP3_COMPRESSION_LEVEL,
    )
    return EncodedAudio(
        data=buffer.getvalue(), extension="mp3", mime_type="audio/mpeg", duration_s=samples.size / sample_rate
    )


def waveform_peaks(samples: np.ndarray, *, bins: int = 200) -> list[float]:
    """The loudest absolute sample in each of ``bins`` equal slices of the clip, for drawing a waveform.

    Not normalised, so a quiet clip looks quiet. A clip shorter than ``bins`` samples repeats samples so that the
    list still has ``bins`` values.

    Args:
        samples: mono audio in [-1, 1].
        bins: how many values to return (default 200).

    Returns:
        ``bins`` floats in [0, 1], rounded to 3 decimals (JSON-friendly).

    Raises:
        ValueError: for empty, non-finite or multi-dimensional samples, or fewer than one bin.
    """
    samples = _checked_samples(samples)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    magnitude = np.minimum(np.abs(samples.astype(np.float64)), 1.0)
    starts = (np.arange(bins) * samples.size) // bins
    # reduceat takes the max over [starts[i], starts[i + 1]); where a slice is empty it returns the sample at
    # starts[i], which is what a too-short clip should show.
    peaks = np.maximum.reduceat(magnitude, starts)
    return [round(float(peak), 3) for peak in peaks]
