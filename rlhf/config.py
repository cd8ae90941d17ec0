"""Dataclass configs of the learning stages, TRL-style: one per algorithm, ``help`` metadata on every field.

Light to import (no torch), so the web process can validate a training run's settings before it enqueues the run.
``transformers.HfArgumentParser(RewardTrainingConfig)`` turns a config into CLI flags.
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

# The cover embeddings a reward model can read (``rlhf.reward.ExportCovers.for_encoder``).
CoverEncoder = Literal["captioner", "clip"]
COVER_ENCODERS: tuple[str, ...] = get_args(CoverEncoder)


@dataclass
class RewardTrainingConfig:
    """How to train the cover-aware reward model (``rlhf.reward.train_reward_model``, format ``albumgen-reward-v2``).

    The model is small (a few hundred weights over the cover's embedding and the variant's features), so the
    defaults train a few hundred pairs in seconds on 2 CPU cores; the figures that chose them are in the README's
    architecture section.
    """

    cover_encoder: CoverEncoder = field(
        default="clip",
        metadata={
            "help": "How the model sees the cover, among the embeddings stored with it at generation time: 'clip' "
            "(the retrieval embedder's vector) or 'captioner' (the mean of the image tokens the captioner's vision "
            "tower gives its language model; better on tastes for a cover's saturation or contrast, worse on its "
            "texture: README)."
        },
    )
    cover_components: int = field(
        default=16,
        metadata={
            "help": "Principal components of the training covers' embeddings the model reads (at most the number "
            "of training covers less one). Few covers cannot pin down hundreds of directions; 16 keep what varies."
        },
    )
    taste_rank: int = field(
        default=2,
        metadata={
            "help": "Dimensions of the taste space in which the cover weighs the features: 1 is one cover-dependent "
            "direction of taste (bright covers want X, dark ones the opposite), 2 leaves room for two."
        },
    )
    learning_rate: float = field(default=3e-3, metadata={"help": "Peak AdamW learning rate (linear decay)."})
    weight_decay: float = field(
        default=0.3,
        metadata={
            "help": "AdamW weight decay. Decoupled, it shrinks the weights each step, so it restrains long runs on "
            "large rounds (where the labelers' noise is fit) more than short ones on a few hundred pairs."
        },
    )
    num_train_epochs: float = field(default=30.0, metadata={"help": "Passes over the training pairs."})
    per_device_train_batch_size: int = field(
        default=32, metadata={"help": "Preference pairs per step and device (each pair is two scored inputs)."}
    )
    eval_fraction: float = field(
        default=0.2,
        metadata={
            "help": "Share of covers held out for the pair accuracy, 0 to <1. The split is by cover: no pair of a "
            "held-out cover is trained on. 0 trains on everything and reports no accuracy."
        },
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of the cover split, the weights' initialisation and the shuffling."}
    )
    use_margin: bool = field(
        default=False,
        metadata={
            "help": "Pass each pair's `margin` to TRL, whose loss becomes -logsigmoid(r_chosen - r_rejected - margin)."
        },
    )

    def __post_init__(self) -> None:
        if self.cover_encoder not in COVER_ENCODERS:
            raise ValueError(f"cover_encoder must be one of {', '.join(COVER_ENCODERS)}, got {self.cover_encoder!r}")
        if self.cover_components < 1:
            raise ValueError(f"cover_components must be at least 1, got {self.cover_components}")
        if self.taste_rank < 1:
            raise ValueError(f"taste_rank must be at least 1, got {self.taste_rank}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must not be negative, got {self.weight_decay}")
        if not self.num_train_epochs > 0:
            raise ValueError(f"num_train_epochs must be positive, got {self.num_train_epochs}")
        if self.per_device_train_batch_size < 1:
            raise ValueError(f"per_device_train_batch_size must be at least 1, got {self.per_device_train_batch_size}")
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.seed < 0:
            raise ValueError(f"seed must not be negative, got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
