"""The pipeline's configuration: light to import (no torch), so the web process can validate round settings."""

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

# The default checkpoints live here, not in the stage modules, which import torch.
DEFAULT_EMBEDDER = "openai/clip-vit-base-patch16"
DEFAULT_CAPTIONER = "OpenGVLab/InternVL3-1B-hf"
DEFAULT_TOP_K = 5
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY_DIR = FIXTURES / "tiny"
DEFAULT_MUSICGEN = "facebook/musicgen-small"
PROFILES = ("tiny", "full")
RENDERERS = ("synth", "musicgen")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that decides a variant's output besides the cover, the seed and the variant's index.

    ``embedder``, ``captioner`` and ``musicgen`` override the profile's checkpoints (hub ids or local paths);
    unset, the ``full`` profile reads ``ALBUMGEN_EMBEDDER``, ``ALBUMGEN_CAPTIONER`` and ``ALBUMGEN_MUSICGEN``.
    """

    profile: str = "tiny"
    renderer: str = "synth"
    embedder: str | None = None
    captioner: str | None = None
    adapter: str | None = None
    musicgen: str | None = None
    top_k: int = DEFAULT_TOP_K
    rag: bool = True
    constrained: bool = True
    temperature: float = 1.0
    duration_s: float = 10.0

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        if self.renderer not in RENDERERS:
            raise ValueError(f"unknown renderer {self.renderer!r}; choose one of {', '.join(RENDERERS)}")
        if not 1 <= self.top_k <= 100:
            raise ValueError("top_k must be between 1 and 100")
        if not 0.5 <= self.duration_s <= 60:
            raise ValueError("duration_s must be between 0.5 and 60 seconds")
        if not 0 < self.temperature <= 5:
            raise ValueError("temperature must be in (0, 5]")

    def fingerprint(self) -> str:
        """A short stable hash of the config: part of a variant's natural key."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def checkpoint(self, role: str) -> str:
        """The hub id or path the ``full`` profile loads for ``role`` (embedder, captioner, musicgen)."""
        explicit = getattr(self, role)
        defaults = {"embedder": DEFAULT_EMBEDDER, "captioner": DEFAULT_CAPTIONER, "musicgen": DEFAULT_MUSICGEN}
        return explicit or os.environ.get(f"ALBUMGEN_{role.upper()}") or defaults[role]
