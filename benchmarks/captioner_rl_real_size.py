"""Time the RLHF stage at real size with random weights (no download needed): captioner GRPO and reward training.

1. Captioner RL: a few steps of the product's ``rlhf.captioner_rl.tune_captioner`` (TRL's GRPOTrainer, LoRA on the
   language model, schema-constrained sampling) on InternVL3-1B's architecture built as in
   ``benchmarks/captioner_real_size.py`` (random weights, tiny tokenizer whose ids fit the real vocabulary), with the
   production instruction and a retrieval context, so prompt lengths are realistic. The reward is a cheap function of
   the parsed features (energy): this measures speed, not learning. The first step (CUDA kernels, grammar
   compilation) is timed apart from the rest.
2. Reward model: ``rlhf.reward.train_reward_model`` (format albumgen-reward-v2) on synthetic preference rows in the
   export's format with random 512-d cover embeddings (CLIP ViT-B/16's size), and the scorer's throughput, which is
   what GRPO calls for every completion.

Usage: python benchmarks/captioner_rl_real_size.py [--steps 4] [--reward-steps 200] [--part rl|reward|both]
       [--device cuda] [--json PATH] [--smoke]
"""

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import (
    AutoTokenizer,
    GotOcr2ImageProcessorPil,
    InternVLForConditionalGeneration,
    InternVLProcessor,
    TrainerCallback,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.captioner_real_size import GENRES, TINY_CAPTIONER, internvl3_1b_config  # noqa: E402
from generation.caption import Captioner, images_only_processor  # noqa: E402
from generation.features import FeatureError, parse_features  # noqa: E402
from generation.instruction import build_instruction  # noqa: E402
from rlhf.captioner_rl import CaptionerRLConfig, RLCover, tune_captioner  # noqa: E402

# The reward tests' random feature objects: the same rows the export writes, without a catalog.
from tests.rlhf.test_reward import random_features  # noqa: E402


class StepClock(TrainerCallback):
    """Wall time at the end of every optimizer step (after a CUDA sync) and TRL's logged rows."""

    def __init__(self) -> None:
        self.marks: list[float] = []
        self.logs: list[dict] = []

    def _now(self) -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self.marks = [self._now()]

    def on_step_end(self, args, state, control, **kwargs):
        # Printed as it goes: a run cut off by a timeout still shows its step times.
        self.marks.append(self._now())
        print(f"step {state.global_step}: {self.marks[-1] - self.marks[-2]:.2f} s", flush=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs or {}))

    def step_seconds(self) -> tuple[float, float]:
        """(first step, mean of the later steps; the first one when there is no other)."""
        steps = [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]
        later = steps[1:] or steps
        return steps[0], sum(later) / len(later)


def rag_instruction(rng: random.Random) -> str:
    """The production instruction with a retrieval context (5 neighbours' genres and mean features)."""
    neighbours = [rng.choice(GENRES) for _ in range(5)]
    return build_instruction(genres=GENRES, context=random_features(rng), neighbour_genres=neighbours)


def gpu_peak_gib(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def captioner_rl(args: argparse.Namespace, workdir: Path) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(TINY_CAPTIONER)
    image_processor = GotOcr2ImageProcessorPil(size={"height": 448, "width": 448}, max_patches=12)
    # (448 / 14) ** 2 * 0.5 ** 2 = 256 image tokens per tile, as InternVL3-1B-hf's processor_config.json says.
    processor = images_only_processor(InternVLProcessor)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_length=256,
        chat_template=tokenizer.chat_template,
    )
    config = internvl3_1b_config(tokenizer.context_image_token_id, layers=2 if args.smoke else None)
    dtype = torch.float32 if args.smoke or args.device == "cpu" else torch.bfloat16
    torch.manual_seed(0)
    model = InternVLForConditionalGeneration(config).to(device=args.device, dtype=dtype)
    model.config._name_or_path = model.name_or_path = "internvl3-1b-random"
    total = sum(p.numel() for p in model.parameters())
    captioner = Captioner(model, processor, model_id="internvl3-1b-random", max_new_tokens=args.max_completion_length)

    rng = random.Random(0)
    colours = [(180, 40, 90), (20, 30, 40), (240, 220, 120), (60, 140, 200), (90, 200, 90), (250, 250, 250)]
    covers = [
        RLCover(
            f"cover-{i}", Image.new("RGB", (640, 640), colours[i % len(colours)]), rag_instruction(rng), np.zeros(512)
        )
        for i in range(args.covers)
    ]
    prompt_tokens = len(tokenizer(covers[0].instruction)["input_ids"]) + 256  # + the image's 256 tokens

    def energy_reward(embeddings: list, completions: list[str]) -> list[float | None]:
        scores: list[float | None] = []
        for text in completions:
            try:
                scores.append(parse_features(text, GENRES).energy)
            except FeatureError:
                scores.append(0.0)
        return scores

    completions = args.covers * args.group_size
    pass_size = min(args.pass_size, completions)
    if completions % pass_size:
        raise SystemExit(f"--pass-size {pass_size} must divide covers x group size ({completions})")
    rl_config = CaptionerRLConfig(
        group_size=args.group_size,
        per_device_train_batch_size=pass_size,
        gradient_accumulation_steps=completions // pass_size,
        max_steps=args.steps + 1,  # + the warm-up step
        max_completion_length=args.max_completion_length,
    )
    clock = StepClock()
    reset_peak(args.device)
    result = tune_captioner(
        rl_config,
        captioner=captioner,
        covers=covers,
        genres=GENRES,
        reward_fn=energy_reward,
        output_dir=workdir / "captioner-adapter",
        callbacks=[clock],
    )
    first, per_step = clock.step_seconds()
    rows = [row for row in clock.logs if "completions/mean_length" in row][1:] or clock.logs
    lengths = [row["completions/mean_length"] for row in rows if "completions/mean_length" in row]
    mean_length = sum(lengths) / len(lengths) if lengths else float("nan")
    return {
        "model": f"InternVL3-1B architecture{' (2 layers per tower, smoke)' if args.smoke else ''}, random weights",
        "device": args.device,
        "dtype": str(dtype),
        "steps_timed": len(clock.marks) - 2,  # after the warm-up step; 0: s_per_step is the warm-up's
        "covers_per_step": args.covers,
        "group_size": args.group_size,
        "completions_per_step": completions,
        "completions_per_pass": pass_size,
        "prompt_tokens": prompt_tokens,
        "mean_completion_tokens": mean_length,
        "first_step_s": first,
        "s_per_step": per_step,
        "completions_per_s": completions / per_step,
        "completion_tokens_per_s": completions * mean_length / per_step,
        "trainable_params": result.trainable_parameters,
        "total_params": total + result.trainable_parameters,
        "valid_share": result.validity_history[-1] if result.validity_history else None,
        "peak_gpu_gib": gpu_peak_gib(args.device),
        "runtime_s": result.runtime_s,
    }


def preference_rows(pairs: int, pairs_per_cover: int = 4) -> list[dict]:
    """Rows as the preference export writes them: two feature JSON variants of a cover."""
    rng = random.Random(1)
    rows: list[dict] = []
    while len(rows) < pairs:
        cover_id = len(rows) // pairs_per_cover
        for _ in range(min(pairs_per_cover, pairs - len(rows))):
            chosen, rejected = random_features(rng), random_features(rng)
            margin = round(abs(chosen.energy - rejected.energy), 3)
            rows.append({"chosen": chosen.to_json(), "rejected": rejected.to_json(), "margin": margin})
            rows[-1] |= {"cover_id": cover_id, "images": [f"covers/{cover_id}.png"], "round_id": 1}
    return rows


def reward_training(args: argparse.Namespace, workdir: Path) -> dict:
    # TRL and datasets load here: the captioner part can run without the reward stack and vice versa.
    import numpy as np

    from rlhf.config import RewardTrainingConfig
    from rlhf.reward import CoverEmbeddings, RewardScorer, train_reward_model

    # One epoch over steps x batch pairs, nothing held out: every pair is a training step's.
    config = RewardTrainingConfig(num_train_epochs=1, eval_fraction=0.0)
    batch = config.per_device_train_batch_size
    rows = preference_rows(args.reward_steps * batch)
    vectors = np.random.default_rng(0).normal(size=(rows[-1]["cover_id"] + 1, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    covers = CoverEmbeddings("random-512", dict(enumerate(vectors)))
    clock = StepClock()
    reset_peak(args.device)
    result = train_reward_model(config, rows, covers, workdir / "reward-model", callbacks=[clock])
    first, per_step = clock.step_seconds()
    scorer = RewardScorer.load(workdir / "reward-model")
    completions = [row["chosen"] for row in rows] * max(1, 4096 // len(rows))
    embeddings = [covers.vectors[index % len(vectors)] for index in range(len(completions))]
    started = time.perf_counter()
    scorer.score(embeddings, completions)
    scoring = time.perf_counter() - started
    return {
        "model": "CoverRewardModel over 512-d cover embeddings",
        # The product's trainer picks CUDA whenever there is one (rlhf.reward._trainer_args), whatever --device says.
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "steps": result.steps,
        "pairs_per_step": batch,
        "first_step_s": first,
        "steps_per_s": 1 / per_step,
        "pairs_per_s": batch / per_step,
        "train_seconds": result.train_seconds,
        "trainable_params": result.trainable_parameters,
        "scored_per_s": len(completions) / scoring,
        "final_loss": result.loss_history[-1] if result.loss_history else None,
        "peak_gpu_gib": gpu_peak_gib("cuda" if torch.cuda.is_available() else "cpu"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--part", default="both", choices=("rl", "reward", "both"))
    parser.add_argument("--steps", type=int, default=4, help="timed GRPO steps, after one warm-up step")
    parser.add_argument("--covers", type=int, default=4, help="covers per GRPO step")
    parser.add_argument("--group-size", type=int, default=8, help="completions per cover")
    parser.add_argument(
        "--pass-size", type=int, default=8, help="completions per forward/backward pass (gradient accumulation)"
    )
    parser.add_argument("--max-completion-length", type=int, default=384)
    parser.add_argument("--reward-steps", type=int, default=200)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--smoke", action="store_true", help="CPU, 2 layers per tower, 1 step each: checks the code")
    args = parser.parse_args()
    if args.smoke:
        torch.set_num_threads(1)
        # One GRPO step (the warm-up alone) of 2 x 16 tokens: on 2 CPU cores TRL's chunked log-probabilities over the
        # 151,674-token vocabulary and the 448 px vision tower take minutes even at 2 layers.
        args.device, args.steps, args.covers, args.group_size = "cpu", 0, 1, 2
        args.max_completion_length, args.reward_steps = 16, 2

    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="albumgen-rl-bench-") as tmp:
        if args.part in ("rl", "both"):
            figures["captioner_rl"] = captioner_rl(args, Path(tmp))
        if args.part in ("reward", "both"):
            figures["reward_model"] = reward_training(args, Path(tmp))
    print("\n=== RLHF stage at real size (random weights) ===")
    for part, numbers in figures.items():
        print(f"[{part}]")
        for name, value in numbers.items():
            shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
            print(f"  {name:>24}: {shown}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
