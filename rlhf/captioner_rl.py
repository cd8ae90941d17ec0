"""Captioner RL: the captioner's LoRA adapter learns from a reward with TRL's ``GRPOTrainer``.

TRL 1.16 has no ``PPOTrainer``; GRPO is its PPO-family trainer for vision-language models: the PPO clipped
objective, advantages relative to the other samples of the same cover (no value model), and a KL penalty to a
reference policy. Here the reference is the parent captioner: the base model with the captioner's adapter.

How the parent becomes the reference: the policy is a private copy of the captioner's model carrying the parent's
LoRA adapter (reloaded from its directory, trainable) or, without a parent, a fresh zero-initialised LoRA. TRL keeps
a frozen copy of that adapter as ``ref`` and scores the reference with it. The trained adapter therefore is one LoRA
adapter over the original base model: saved as it is, it loads wherever the parent loads
(``Captioner.from_config/from_pretrained(adapter_path=...)``). Merging the parent into a copy of the base and
concatenating a new adapter onto it at the end would give the same model with a rank that grows every round and the
rounding of a merge; continuing the parent's adapter has neither. Its cost: with a parent, the adapter keeps the
parent's rank and target modules, and the ``lora_*`` settings apply to a captioner without adapter only.

Light to import (no torch at module level) so that the web process can validate a ``CaptionerRLConfig``.
"""

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from generation.features import FeatureError, parse_features

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image
    from transformers import TrainerCallback

    from generation.caption import Captioner

# The language model only: in transformers' InternVL the vision tower's attention is named q/k/v_proj too, and the
# paper froze the vision backbone and the projector. Attention and MLP projections: the learning figures in
# tests/rlhf/test_captioner_rl.py were measured with both.
LANGUAGE_MODEL_LORA_TARGET = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
# Module-name marker of the language model in transformers' VLMs (InternVL, Qwen2-VL, ...).
LANGUAGE_MODEL_MARKER = ".language_model."
RESULT_FILE = "captioner_rl.json"


@dataclass
class CaptionerRLConfig:
    """How to tune the captioner with GRPO (``tune_captioner``); the names follow TRL's ``GRPOConfig`` in help."""

    group_size: int = field(
        default=4,
        metadata={
            "help": "Completions sampled per cover; advantages are relative to the group (TRL: num_generations)."
        },
    )
    clip_epsilon: float = field(
        default=0.2, metadata={"help": "PPO clipping range of the probability ratio, in (0, 1) (TRL: epsilon)."}
    )
    beta: float = field(
        default=0.04,
        metadata={
            "help": "KL coefficient towards the parent captioner, >= 0 (TRL's default is 0, which drops the reference)."
        },
    )
    num_iterations: int = field(
        default=1,
        metadata={"help": "Optimisation passes over each batch of generated completions (TRL: num_iterations)."},
    )
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak AdamW learning rate (linear decay)."})
    max_steps: int = field(default=100, metadata={"help": "Optimizer steps of the run."})
    per_device_train_batch_size: int = field(
        default=8,
        metadata={
            "help": "Completions per forward/backward pass and device: 8 with groups of 4 is 2 covers a pass. At "
            "InternVL3-1B's size 8 completions peak at 31 GiB on the GPU and 32 do not fit in 80 GiB."
        },
    )
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={
            "help": "Passes per optimizer step: a step holds per_device_train_batch_size x this many completions, "
            "sampled together, in whole groups (more covers a step without more GPU memory)."
        },
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank of a new adapter (a parent adapter keeps its own)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator of a new adapter (scale alpha/r)."})
    lora_dropout: float = field(
        default=0.0,
        metadata={"help": "Dropout on the LoRA path of a new adapter, in [0, 1); 0 samples and scores alike."},
    )
    lora_target: str = field(
        default=LANGUAGE_MODEL_LORA_TARGET,
        metadata={"help": "Regex of the modules a new adapter adapts; it must hit the language model only."},
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the completions, in (0, 5]."})
    max_completion_length: int = field(
        default=384,
        metadata={"help": "Token budget of a completion (the captioner's max_new_tokens; a feature object fits)."},
    )
    constrained: bool = field(
        default=True,
        metadata={
            "help": "Sample under the feature JSON schema (xgrammar, as generation.caption does), so every completion "
            "is valid feature JSON; off, the model must also learn the format (validity_weight rewards it)."
        },
    )
    validity_weight: float = field(
        default=1.0,
        metadata={"help": "Reward added when a completion parses as valid feature JSON, >= 0."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the LoRA initialisation, data order and sampling."})

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError(f"group_size must be at least 2 (GRPO compares samples of a cover), got {self.group_size}")
        if not 0 < self.clip_epsilon < 1:
            raise ValueError(f"clip_epsilon must be in (0, 1), got {self.clip_epsilon}")
        if self.beta < 0:
            raise ValueError(f"beta must not be negative, got {self.beta}")
        if self.num_iterations < 1:
            raise ValueError(f"num_iterations must be at least 1, got {self.num_iterations}")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")
        if self.per_device_train_batch_size < 1:
            raise ValueError(f"per_device_train_batch_size must be at least 1, got {self.per_device_train_batch_size}")
        if self.gradient_accumulation_steps < 1:
            raise ValueError(f"gradient_accumulation_steps must be at least 1, got {self.gradient_accumulation_steps}")
        if self.completions_per_step % self.group_size:
            raise ValueError(
                f"per_device_train_batch_size x gradient_accumulation_steps ({self.completions_per_step}) must be a "
                f"multiple of group_size ({self.group_size}): a step holds whole groups"
            )
        if self.lora_r < 1 or self.lora_alpha < 1:
            raise ValueError(f"lora_r and lora_alpha must be at least 1, got {self.lora_r} and {self.lora_alpha}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        try:
            re.compile(self.lora_target)
        except re.error as exc:
            raise ValueError(f"lora_target is not a regular expression: {exc}") from exc
        if not 0 < self.temperature <= 5:
            raise ValueError(f"temperature must be in (0, 5], got {self.temperature}")
        if self.max_completion_length < 16:
            raise ValueError(f"max_completion_length must be at least 16 tokens, got {self.max_completion_length}")
        if self.validity_weight < 0:
            raise ValueError(f"validity_weight must not be negative, got {self.validity_weight}")
        if self.seed < 0:
            raise ValueError(f"seed must not be negative, got {self.seed}")

    @property
    def completions_per_step(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RLCover(NamedTuple):
    """A training cover: its id, the image (RGB PIL image or a file path), the captioner's instruction for it and its
    embedding by the reward model's embedder (what the reward model reads of the cover)."""

    cover_id: str
    image: "Image.Image | str | Path"
    instruction: str
    embedding: "np.ndarray"


# reward_fn(cover embeddings, completions) -> one score per completion; None for a completion it cannot judge (text
# that is not feature JSON), which then earns only the validity reward.
RewardFn = Callable[[list["np.ndarray"], list[str]], Sequence[float | None]]


@dataclass(frozen=True)
class CaptionerRLResult:
    """What a run produced: the adapter and the per-step figures TRL logged."""

    adapter_path: Path
    parent_adapter_path: str | None
    base_model_id: str
    # One entry per step, as TRL logged it; the reward entries only for steps that generated (with num_iterations > 1
    # the other steps reuse a batch).
    reward_history: list[float]  # mean total reward (reward_fn + validity_weight * valid) of the step's completions
    preference_history: list[float]  # mean reward_fn score alone
    validity_history: list[float]  # share of completions that parsed as feature JSON
    kl_history: list[float]  # mean per-token KL to the parent, TRL's estimate on the sampled tokens
    loss_history: list[float]
    trainable_parameters: int
    runtime_s: float
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["adapter_path"] = str(self.adapter_path)
        return data


def tune_captioner(
    config: CaptionerRLConfig,
    *,
    captioner: "Captioner",
    covers: Sequence[RLCover],
    genres: Sequence[str],
    reward_fn: RewardFn,
    output_dir: str | Path,
    callbacks: Sequence["TrainerCallback"] = (),
) -> CaptionerRLResult:
    """Tune the captioner's LoRA adapter with GRPO and save it as one adapter over the captioner's base model.

    Each step samples ``group_size`` completions per cover, scores each with ``reward_fn`` plus ``validity_weight``
    when it parses as feature JSON, and takes a PPO-clipped step with advantages relative to the cover's group and
    a ``beta``-weighted KL penalty to the parent captioner. TRL logs ``reward``, ``kl`` and ``loss`` every step
    (``callbacks`` see them in ``on_log``).

    Args:
        config: GRPO, LoRA and sampling settings.
        captioner: the parent: a base captioner or one with an adapter (which is continued and is the reference).
            It is not modified; the policy is a copy.
        covers: the training covers with their instructions (as the pipeline builds them).
        genres: the genre vocabulary of the schema and of the validity check.
        reward_fn: ``reward_fn(cover_embeddings, completions)`` -> one score per completion, higher is preferred,
            None where it cannot judge (the platform passes its reward model's ``RewardScorer.score``).
        output_dir: where the adapter goes; written only when the run succeeded, and it must not hold files.
        callbacks: transformers ``TrainerCallback`` instances passed to the trainer (progress, cancel, metrics). A
            callback that stops training early still gets the adapter of the steps done; the caller decides.

    Raises:
        ValueError: no covers, no genres, an ``output_dir`` with files in it, LoRA outside the language model.
        generation.caption.AdapterMismatchError: the captioner's adapter was trained on another base model.
    """
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    if not covers:
        raise ValueError("there are no covers to tune on: a captioner RL run needs at least one cover")
    if not genres:
        raise ValueError("the genre vocabulary is empty: import a catalog first")
    output = Path(output_dir)
    if output.exists() and any(output.iterdir()):
        raise ValueError(f"the output directory {output} is not empty; choose a new one")

    started = time.perf_counter()
    policy = _policy_model(captioner, config)
    if config.constrained:
        _constrain_generation(policy, captioner, genres)
    # TRL's sampler drops a step that cannot be filled with distinct covers; with fewer covers than a step holds,
    # each cover appears more than once per step (as if its group were larger).
    per_step = config.completions_per_step // config.group_size
    dataset = Dataset.from_dict(_rows(list(covers) * -(-per_step // len(covers))))
    device = next(captioner.model.parameters()).device
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}-", dir=output.parent) as tmp:
        args = GRPOConfig(
            output_dir=str(Path(tmp) / "trainer"),
            num_generations=config.group_size,
            epsilon=config.clip_epsilon,
            beta=config.beta,
            num_iterations=config.num_iterations,
            learning_rate=config.learning_rate,
            max_steps=config.max_steps,
            per_device_train_batch_size=config.per_device_train_batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            temperature=config.temperature,
            max_completion_length=config.max_completion_length,
            reward_weights=[1.0, config.validity_weight],
            seed=config.seed,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            use_cpu=device.type == "cpu",
            bf16=captioner.model.dtype == torch.bfloat16,
            fp16=False,
            gradient_checkpointing=False,
            dataloader_num_workers=0,
        )
        trainer = GRPOTrainer(
            model=policy,
            reward_funcs=[_preference_reward(reward_fn), _validity_reward(genres)],
            args=args,
            train_dataset=dataset,
            processing_class=captioner.processor,
            callbacks=list(callbacks),
        )
        # Trainer prints every log row to stdout (tqdm off) or draws a progress bar; the caller's callbacks report.
        trainer.remove_callback(PrinterCallback)
        trainable = sum(p.numel() for p in policy.parameters() if p.requires_grad)
        trainer.train()
        staged = Path(tmp) / "adapter"
        # Only the trained adapter: TRL's frozen copy of the parent ("ref") stays behind.
        policy.save_pretrained(str(staged), selected_adapters=["default"])
        result = _result(trainer.state.log_history, output, captioner, config, trainable, started)
        (staged / RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        if output.exists():
            output.rmdir()
        shutil.move(str(staged), output)
    return result


def _policy_model(captioner: "Captioner", config: CaptionerRLConfig) -> Any:
    """A private copy of the captioner's model with a trainable LoRA adapter: the parent's, or a fresh one."""
    import copy

    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    from generation.caption import apply_adapter

    model = copy.deepcopy(captioner.model)
    if isinstance(model, PeftModel):
        if captioner.adapter_path is None:
            raise ValueError("the captioner's model carries an adapter but the captioner names no adapter_path")
        # The bare base; the parent adapter is read again from its directory, which the platform records.
        model = model.unload()
    if captioner.adapter_path is None:
        torch.manual_seed(config.seed)
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.lora_target,
        )
        policy = get_peft_model(model, lora)
    else:
        policy = apply_adapter(model, captioner.adapter_path, base_model_id=captioner.model_id)
        policy.peft_config["default"].inference_mode = False
        policy.set_requires_grad("default", True)
    outside = sorted(
        name
        for name, module in policy.named_modules()
        if hasattr(module, "lora_A") and LANGUAGE_MODEL_MARKER not in f".{name}."
    )
    if outside:
        source = "the parent adapter" if captioner.adapter_path else "lora_target"
        raise ValueError(
            f"{source} adapts modules outside the language model ({', '.join(outside[:3])}, ...); "
            "captioner RL tunes the language model only"
        )
    return policy


def _constrain_generation(policy: Any, captioner: "Captioner", genres: Sequence[str]) -> None:
    """Make the policy's ``generate`` decode under the feature JSON schema, as ``Captioner.generate`` does.

    TRL's GRPOTrainer samples with ``model.generate(**inputs, generation_config=...)`` and has no option for
    logits processors, and xgrammar's processor keeps per-row matcher state, so a new one must go into every call.
    The policy is this run's private copy, so wrapping its ``generate`` touches nothing else. The loss scores the
    sampled tokens with the unmasked model (TRL's forward pass), whose gradient differs from the masked policy's by
    the gradient of the log of the allowed tokens' mass; the tiny twin still learns with it (the tests' figures).
    """
    from transformers import LogitsProcessorList

    generate = policy.generate
    genre_tuple = tuple(genres)

    def constrained_generate(*args: Any, **kwargs: Any) -> Any:
        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        processors.append(captioner.json_logits_processor(genre_tuple))
        return generate(*args, logits_processor=processors, **kwargs)

    policy.generate = constrained_generate


def _rows(covers: Sequence[RLCover]) -> dict[str, list[Any]]:
    """TRL's conversational vision columns: ``prompt`` with an image placeholder and ``image``; the rest is kept
    for the reward functions (TRL passes every column to them)."""
    from generation.images import load_cover_image

    rows: dict[str, list[Any]] = {"prompt": [], "image": [], "instruction": [], "cover_id": [], "cover_embedding": []}
    for cover in covers:
        image = cover.image if not isinstance(cover.image, str | Path) else load_cover_image(cover.image)
        rows["prompt"].append(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": cover.instruction}]}]
        )
        rows["image"].append(image.convert("RGB"))
        rows["instruction"].append(cover.instruction)
        rows["cover_id"].append(cover.cover_id)
        rows["cover_embedding"].append([float(value) for value in cover.embedding])
    return rows


def _completion_text(completion: Any) -> str:
    # Conversational prompts give conversational completions: [{"role": "assistant", "content": text}].
    text = completion[-1]["content"] if isinstance(completion, list) else completion
    return str(text).strip()


def _preference_reward(reward_fn: RewardFn) -> Callable[..., list[float | None]]:
    import numpy as np

    def preference(*, completions: list[Any], cover_embedding: list[list[float]], **_: Any) -> list[float | None]:
        embeddings = [np.asarray(vector, dtype=np.float32) for vector in cover_embedding]
        scores = reward_fn(embeddings, [_completion_text(c) for c in completions])
        return [None if score is None else float(score) for score in scores]

    return preference


def _validity_reward(genres: Sequence[str]) -> Callable[..., list[float | None]]:
    def schema_valid(*, completions: list[Any], **_: Any) -> list[float | None]:
        scores: list[float | None] = []
        for completion in completions:
            try:
                parse_features(_completion_text(completion), genres)
                scores.append(1.0)
            except FeatureError:
                scores.append(0.0)
        return scores

    return schema_valid


def _result(
    log_history: list[dict[str, Any]],
    output: Path,
    captioner: "Captioner",
    config: CaptionerRLConfig,
    trainable: int,
    started: float,
) -> CaptionerRLResult:
    steps = [row for row in log_history if "loss" in row and "train_runtime" not in row]
    return CaptionerRLResult(
        adapter_path=output,
        parent_adapter_path=captioner.adapter_path,
        base_model_id=captioner.model_id,
        reward_history=[float(row["reward"]) for row in steps if "reward" in row],
        # TRL logs None for a step in which the reward model judged no completion (none was feature JSON).
        preference_history=[
            float(row["rewards/preference/mean"]) for row in steps if row.get("rewards/preference/mean") is not None
        ],
        validity_history=[
            float(row["rewards/schema_valid/mean"]) for row in steps if "rewards/schema_valid/mean" in row
        ],
        kl_history=[float(row["kl"]) for row in steps if "kl" in row],
        loss_history=[float(row["loss"]) for row in steps],
        trainable_parameters=trainable,
        runtime_s=time.perf_counter() - started,
        config=config.to_dict(),
    )
