"""Captioner RL on a cover-dependent taste: how much of the base -> best-of-N gap GRPO closes, per side of the cover.

The measure of issue #14's RL proof, without the studio around it: the trained captioner (``trained`` profile) is
tuned by ``rlhf.captioner_rl.tune_captioner`` on covers of both sides of a built-in taste's switch, then base and
tuned sample 8 constrained variants of held-out covers under 2 seeds, which the hidden taste scores. Printed per side
and overall: the base mean, best-of-8 (per cover the best variant of the base, averaged), the tuned mean and the share
of the gap the tuned captioner closed (``(tuned - base) / (best - base)``), and the training time.

The reward is the taste itself (``--reward oracle``: a perfect reward model, the upper bound of what GRPO can learn
from labels) or a reward run's checkpoint (``--reward DIR``), which reads each cover through its embedder, as
``run_rl`` feeds it. Covers: restyled ones, whose look is drawn apart from the album's mood (``python
fixtures/make_catalog.py --restyle --seed 43 --out DIR``); only clear covers (taste weight below 0.15 or above 0.85)
are used, the first ``--train`` / 2 of each side to train, the next ``--held`` / 2 to evaluate.

Usage: python -m generation build-index --profile trained --out INDEX
       python benchmarks/captioner_rl_tastes.py --covers DIR/covers --index INDEX [--taste warmth_tempo_mode]
       [--reward oracle|CHECKPOINT] [--train 32] [--held 16] [--steps 100] [--lr 5e-3] [--beta 0.1] [--group 8]
       [--covers-per-step 4] [--num-iterations 1] [--captioner DIR]
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generation.config import PipelineConfig  # noqa: E402 - after the path set-up
from generation.features import FeatureError, parse_features  # noqa: E402
from generation.images import load_cover_image  # noqa: E402
from generation.pipeline import Pipeline  # noqa: E402
from generation.retrieve import rag_instruction  # noqa: E402
from rlhf.captioner_rl import CaptionerRLConfig, RLCover, tune_captioner  # noqa: E402
from rlhf.preferences import BUILT_IN_TASTES, COVER_SWITCHES, SimCover  # noqa: E402

EVALUATION_SEEDS = (101, 102)
VARIANTS = 8
# Covers whose taste weight lies between these are a blend of both sides: left out, as in the loop proof
# (tests/rlhf/test_loop_tastes.py).
CLEAR = (0.15, 0.85)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--covers", type=Path, required=True, help="a folder of cover images")
    parser.add_argument("--index", type=Path, required=True, help="the trained profile's retrieval index")
    parser.add_argument("--taste", default="warmth_tempo_mode", choices=sorted(COVER_SWITCHES))
    parser.add_argument("--reward", default="oracle", help="'oracle' (the taste itself) or a reward checkpoint")
    parser.add_argument("--train", type=int, default=32, help="training covers, half from each side")
    parser.add_argument("--held", type=int, default=16, help="held-out covers, half from each side")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--group", type=int, default=8, help="completions per cover (GRPO's group)")
    parser.add_argument("--covers-per-step", type=int, default=4)
    parser.add_argument("--num-iterations", type=int, default=1)
    parser.add_argument("--captioner", help="a captioner checkpoint in place of the trained profile's (a rebuild)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    pipeline = Pipeline.load(PipelineConfig(profile="trained", captioner=args.captioner), index_dir=args.index)
    genres = pipeline.genres()
    taste, switch = BUILT_IN_TASTES[args.taste], COVER_SWITCHES[args.taste]
    by_side: dict[str, list[Image.Image]] = {side: [] for side in switch.sides}
    for path in sorted(args.covers.glob("*.png")):
        image = load_cover_image(path)
        if not CLEAR[0] < switch.weight(image) < CLEAR[1]:
            by_side[switch.side(image)].append(image)
    train_half, held_half = args.train // 2, args.held // 2
    short = [side for side, images in by_side.items() if len(images) < train_half + held_half]
    if short:
        print(f"too few clear covers on the {' and '.join(short)} side for {args.train} + {args.held} covers")
        return 2
    train = [image for images in by_side.values() for image in images[:train_half]]
    held = {side: images[train_half : train_half + held_half] for side, images in by_side.items()}

    def instruction_of(image: Image.Image) -> str:
        neighbours = pipeline.index.search(pipeline.embedder.embed([image])[0], k=pipeline.config.top_k)
        return rag_instruction(genres, neighbours)

    reward_fn, embed = _reward(args.reward, taste, pipeline, genres)
    covers = [RLCover(str(i), image, instruction_of(image), embed(image)) for i, image in enumerate(train)]

    def taste_scores(image: Image.Image, seed: int) -> list[float]:
        captions = pipeline.captioner.generate(
            image, instruction=instruction_of(image), genres=genres, num_variants=VARIANTS, seed=seed
        )
        cover = SimCover(image, "", 0)
        return [taste(cover, caption.features.to_dict()) for caption in captions if caption.features is not None]

    def evaluate() -> dict[str, tuple[float, float]]:
        """Per side: the mean taste score of the variants and the mean of each cover's best variant."""
        figures = {}
        for side, images in held.items():
            scores = [taste_scores(image, seed) for seed in EVALUATION_SEEDS for image in images]
            figures[side] = (statistics.mean(map(statistics.mean, scores)), statistics.mean(map(max, scores)))
        return figures

    base = evaluate()
    config = CaptionerRLConfig(
        group_size=args.group,
        learning_rate=args.lr,
        beta=args.beta,
        max_steps=args.steps,
        per_device_train_batch_size=args.group * args.covers_per_step,
        num_iterations=args.num_iterations,
    )
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = tune_captioner(
            config, captioner=pipeline.captioner, covers=covers, genres=genres, reward_fn=reward_fn, output_dir=tmp
        )
        train_s = time.perf_counter() - started
        pipeline.captioner.use_adapter(tmp)
        tuned = evaluate()
        pipeline.captioner.use_adapter(None)
        shutil.rmtree(tmp, ignore_errors=True)

    rewards = result.preference_history
    print(f"taste {args.taste}, reward {args.reward}, {len(train)} training covers, {config.to_dict()}")
    print(
        f"training: {train_s:.0f} s; reward of the first / last 5 steps "
        f"{_mean(rewards[:5]):.3f} / {_mean(rewards[-5:]):.3f}"
    )
    print("| side | base | best-of-8 | tuned | gap closed |")
    print("|---|---|---|---|---|")
    rows = {side: (base[side][0], base[side][1], tuned[side][0]) for side in switch.sides}
    rows["overall"] = tuple(statistics.mean(row[i] for row in rows.values()) for i in range(3))
    for side, (b, best, t) in rows.items():
        print(f"| {side} | {b:.3f} | {best:.3f} | {t:.3f} | {(t - b) / (best - b):.2f} |")
    return 0


def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def _reward(source: str, taste: Any, pipeline: Pipeline, genres: list[str]) -> tuple[Any, Any]:
    """The reward function GRPO gets and the cover vector each RLCover carries for it."""
    if source != "oracle":
        from rlhf.reward import RewardScorer

        try:
            scorer = RewardScorer.load(source)
            embedder = pipeline.cover_embedder(scorer.embedder_id)
        except ValueError as exc:  # ModelLoadError is one
            raise SystemExit(str(exc)) from exc
        return (
            lambda embeddings, completions: scorer.score(embeddings, completions, invalid="none"),
            lambda image: embedder.embed([image])[0],
        )
    # The taste needs the image: each cover's vector is its CLIP embedding, which finds the image again.
    images: dict[bytes, Image.Image] = {}

    def embed(image: Image.Image) -> np.ndarray:
        vector = pipeline.embedder.embed([image])[0].astype(np.float32)
        images[vector.tobytes()] = image
        return vector

    def score(embeddings: list[np.ndarray], completions: list[str]) -> list[float | None]:
        scores: list[float | None] = []
        for vector, text in zip(embeddings, completions, strict=True):
            try:
                features = parse_features(text, genres)
            except FeatureError:
                scores.append(None)
                continue
            cover = SimCover(images[np.asarray(vector, dtype=np.float32).tobytes()], "", 0)
            scores.append(taste(cover, features.to_dict()))
        return scores

    return score, embed


if __name__ == "__main__":
    raise SystemExit(main())
