"""Options of the captioner's supervised fine-tuning; light to import (no torch), so the web validates launches."""

from dataclasses import dataclass, field

# Attention projections of the language model only: in transformers' InternVL the vision tower's attention is named
# q/k/v_proj too, and the paper froze the vision backbone and the projector.
LANGUAGE_MODEL_LORA_TARGET = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"
CONTEXTS = ("rag", "zero-shot", "both")


@dataclass
class CaptionerSFTConfig:
    """LoRA supervised fine-tuning of the captioner. Defaults are the paper's settings (section 3.4)."""

    lora_r: int = field(default=4, metadata={"help": "LoRA rank (paper: 4)."})
    lora_alpha: int = field(default=8, metadata={"help": "LoRA scaling alpha (PEFT's default 8)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    lora_target: str = field(
        default=LANGUAGE_MODEL_LORA_TARGET,
        metadata={"help": "Regex of the modules that get LoRA; default the language model's attention projections."},
    )
    learning_rate: float = field(default=4e-5, metadata={"help": "Peak learning rate (paper: 4e-5)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule (paper: cosine)."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Share of steps spent warming up (paper: 0.03)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the training rows (paper: 1)."})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "Rows per optimizer step and device."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Batches accumulated per step."})
    seed: int = field(default=0, metadata={"help": "Seed of LoRA initialisation and data order."})
    context: str = field(
        default="rag",
        metadata={"help": "Instruction per row: rag (neighbours' mean features, as at generation), zero-shot or both."},
    )
    top_k: int = field(default=5, metadata={"help": "Neighbours in the RAG context (the pipeline's default)."})
    max_covers: int = field(
        default=0, metadata={"help": "Train on at most this many covers of the split (0: all); for quick trials."}
    )
    eval_limit: int = field(
        default=40, metadata={"help": "Held-out covers evaluated after training, base and tuned (0: skip)."}
    )

    def __post_init__(self) -> None:
        if self.context not in CONTEXTS:
            raise ValueError(f"context must be one of {', '.join(CONTEXTS)}")
        if not 1 <= self.top_k <= 100 or self.eval_limit < 0 or self.max_covers < 0:
            raise ValueError("top_k must be 1-100, and eval_limit and max_covers at least 0")
        if self.lora_r < 1 or self.lora_alpha < 1:
            raise ValueError("lora_r and lora_alpha must be at least 1")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError("lora_dropout must be in [0, 1)")
        if not 0 < self.learning_rate < 1:
            raise ValueError("learning_rate must be in (0, 1)")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("warmup_ratio must be in [0, 1)")
        if self.num_train_epochs <= 0 or self.per_device_train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("epochs, batch size and gradient accumulation must be positive")
