"""What every renderer (MusicGen, the offline ``synth``) takes and returns."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from generation.features import AcousticFeatures


@dataclass(frozen=True)
class RenderRequest:
    """One variant to render: the music prompt (MusicGen reads it) and the features it came from (synth reads them)."""

    prompt: str
    features: AcousticFeatures


class Renderer(Protocol):
    sample_rate: int

    def render(self, requests: Sequence[RenderRequest], *, seed: int, duration_s: float) -> list[np.ndarray]:
        """Render all requests in one batch.

        Args:
            requests: the variants of one cover; all of them go into one batched call.
            seed: the round seed; the same requests, seed and duration give the same samples on the same device.
            duration_s: length of each clip in seconds.

        Returns:
            One mono float32 array in [-1, 1] per request, at ``sample_rate``.
        """
        ...
