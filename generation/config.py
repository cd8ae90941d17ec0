"""The pipeline's configuration: light to import (no torch), so the web process can validate round settings."""

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from generation.loading import ModelLoadError

# The default checkpoints live here, not in the stage modules, which import torch.
DEFAULT_EMBEDDER = "openai/clip-vit-base-patch16"
DEFAULT_CAPTIONER = "OpenGVLab/InternVL3-1B-hf"
DEFAULT_TOP_K = 5
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY_DIR = FIXTURES / "tiny"
SMALL_DIR = FIXTURES / "small"
DEFAULT_MUSICGEN = "facebook/musicgen-small"
SMALL_CAPTIONER_DIR = SMALL_DIR / "captioner"
# tiny: random-initialised twins of every model (fast unit tests). trained: the models trained in-house and shipped in
# fixtures/small (the CLIP embedder, fixtures/small/TRAINING.md; the InternVL captioner, fixtures/small/CAPTIONER.md)
# and the tiny MusicGen twin (the demo). small: the trained CLIP embedder with the tiny twins of the others (the reward
# model's taste proof, whose variants come from the random captioner). full: the pretrained checkpoints (GPU workers).
PROFILES = ("tiny", "small", "trained", "full")
# The profiles that run offline, on what fixtures/ holds.
OFFLINE_PROFILES = ("tiny", "small", "trained")
# The offline profiles that embed with the trained CLIP (fixtures/small/clip).
TRAINED_EMBEDDER_PROFILES = ("small", "trained")
RENDERERS = ("synth", "musicgen")
# Variants of one cover in one batch, and a clip's length in seconds (inclusive).
MAX_VARIANTS = 16
DURATION_S_RANGE = (0.5, 60.0)
# The stages whose checkpoint a config resolves (an explicit field, a variable of the full profile, a shipped model).
CHECKPOINT_ROLES = ("embedder", "captioner", "musicgen")


def tiny_captioner_id(config_dir: str | Path = TINY_DIR / "captioner", seed: int = 0) -> str:
    """The model id a tiny captioner twin records (adapters store it as their base, exports as the captioner's)."""
    return f"tiny-internvl:{Path(config_dir).name}:seed{seed}"


def small_captioner_id(directory: str | Path = SMALL_CAPTIONER_DIR) -> str:
    """The model id the small captioner records: its weights' hash, not its path, which differs between checkouts.

    An adapter stores it as its base, so one trained on an earlier build of the weights is refused, not misapplied.

    Raises:
        ModelLoadError: the weights are missing.
    """
    return f"small-internvl:{shipped_weights_hash(Path(directory), 'captioner', 'build_captioner.py')}"


def shipped_weights_hash(directory: Path, role: str, build_script: str) -> str:
    """The first 12 hex digits of the SHA-256 of a shipped model's ``model.safetensors``.

    Raises:
        ModelLoadError: the weights are missing.
    """
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(
            f"the trained profile's {role} weights are missing ({weights}); "
            f"restore them from git or rebuild them with python fixtures/small/{build_script}"
        )
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:12]


def offline_captioner_id(profile: str) -> str:
    """The base model id of an offline profile's default captioner."""
    return small_captioner_id() if profile == "trained" else tiny_captioner_id()


def shipped_model_id(role: str, profile: str) -> str:
    """What an offline profile loads for ``role`` when nothing overrides it: a trained model by its weights' hash
    (checkouts keep them at different paths), a random twin by its config and seed."""
    if role == "captioner":
        return offline_captioner_id(profile)
    if role == "embedder" and profile in TRAINED_EMBEDDER_PROFILES:
        return f"small-clip:{shipped_weights_hash(SMALL_DIR / 'clip', 'embedder', 'build_embedder.py')}"
    folder = {"embedder": "clip", "musicgen": "musicgen"}[role]
    return f"tiny-{folder}:{folder}:seed0"  # as the twins name themselves (Embedder.from_config)


# Neighbour counts of the retrieval baseline in the evaluation (the paper's sweep).
BASELINE_KS = (1, 3, 5, 10, 20)


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
        if not DURATION_S_RANGE[0] <= self.duration_s <= DURATION_S_RANGE[1]:
            raise ValueError(f"duration_s must be between {DURATION_S_RANGE[0]} and {DURATION_S_RANGE[1]:g} seconds")
        if not 0 < self.temperature <= 5:
            raise ValueError("temperature must be in (0, 5]")

    def fingerprint(self) -> str:
        """A short stable hash of everything that decides a variant's output (part of its natural key): the config
        and the checkpoints it resolves to in this process, so two processes whose ``ALBUMGEN_*`` variables or
        shipped weights differ get two fingerprints."""
        described = {**asdict(self), "resolved": self.resolved_checkpoints()}
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]

    def resolved_checkpoints(self) -> dict[str, str]:
        """What each stage loads: a checkpoint set here, else the ``full`` profile's variable or default
        (``checkpoint``), else the offline profile's shipped model (``shipped_model_id``)."""
        return {
            role: self.checkpoint(role)
            if getattr(self, role) or self.profile not in OFFLINE_PROFILES
            else shipped_model_id(role, self.profile)
            for role in CHECKPOINT_ROLES
        }

    def checkpoint(self, role: str) -> str:
        """The hub id or path the ``full`` profile loads for ``role`` (embedder, captioner, musicgen)."""
        explicit = getattr(self, role)
        defaults = {"embedder": DEFAULT_EMBEDDER, "captioner": DEFAULT_CAPTIONER, "musicgen": DEFAULT_MUSICGEN}
        return explicit or os.environ.get(f"ALBUMGEN_{role.upper()}") or defaults[role]


@dataclass
class EvaluationConfig:
    """Options of an evaluation run."""

    limit: int = field(default=40, metadata={"help": "Held-out covers to evaluate (0: all of the split)."})
    seed: int = field(default=0, metadata={"help": "Sampling seed of the captioner (with --no-greedy)."})
    ks: tuple[int, ...] = field(default=BASELINE_KS, metadata={"help": "Neighbour counts of the retrieval baseline."})
    unconstrained: bool = field(default=True, metadata={"help": "Also decode freely, as the paper did."})
    greedy: bool = field(
        default=True, metadata={"help": "Score the greedy decoding (the point estimate); else one sample per cover."}
    )

    def __post_init__(self) -> None:
        self.ks = tuple(int(k) for k in self.ks)
        if self.limit < 0:
            raise ValueError("limit must be at least 0")
        if not self.ks or min(self.ks) < 1 or max(self.ks) > 100:
            raise ValueError("ks must be neighbour counts between 1 and 100")
