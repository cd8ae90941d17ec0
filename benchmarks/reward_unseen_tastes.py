"""The reward model on tastes it was never built for: an export's variants relabeled offline, one run per taste.

Takes a preference export folder (``pairs.jsonl`` and ``covers.parquet``, e.g. one the taste proof
``tests/rlhf/test_reward_tastes.py`` wrote under its ``--basetemp``), rebuilds each cover's variants from its pairs,
and for every taste below (none of them built in, ``rlhf.preferences``) relabels them as ``python -m rlhf simulate``
would: per labeler a noisy score (noise 0.1) per variant, a ranking by it; pairs from the labelers' mean ranks by
``rlhf.pairs.task_pairs`` (the export's own rule). A reward run with the defaults (a quarter of the covers held out,
seed 0) then trains on them; printed per taste: the oracle ceiling and the model's accuracy on the held-out pairs,
overall and per side of the taste's cover switch, and the training time. The tastes are ``module:function``
preferences, so ``python -m rlhf simulate --preference benchmarks.reward_unseen_tastes:saturation_dance_mode`` labels
a live round with one of them.

Each taste switches between two answers at a cover measure's median over the 490 restyled covers of
``fixtures/make_catalog.py --restyle --seed 43 --albums-per-genre 35`` (the taste proof's covers), with a logistic
scale of a quarter of its standard deviation there (texture: the built-in switch, edge density being two-humped).

Usage: python benchmarks/reward_unseen_tastes.py EXPORT_DIR [EXPORT_DIR ...] [--labelers 2] [--noise 0.1]
       [--cover-encoder captioner|clip]
"""

import argparse
import json
import random
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlhf.config import COVER_ENCODERS, RewardTrainingConfig  # noqa: E402 - after the path set-up
from rlhf.preferences import (  # noqa: E402 - after the path set-up
    CoverSwitch,
    SimCover,
    blend,
    edge_density,
    high_tonic,
    loudness_unit,
    luma_of,
    major_unit,
    mean_luminance,
    tempo_unit,
)

# --- cover measures no built-in taste uses --------------------------------------------------------------------------


def chroma(image: Image.Image) -> float:
    """Mean of each pixel's max minus min channel, 0 (grey) to 1."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    return float((rgb.max(-1) - rgb.min(-1)).mean())


def contrast(image: Image.Image) -> float:
    """Standard deviation of the luma, 0 (flat) to 0.5."""
    return float(luma_of(image).std())


def horizontal_balance(image: Image.Image) -> float:
    """Mean luma of the right half minus that of the left half: positive when the dark mass sits on the left."""
    luma = luma_of(image)
    half = luma.shape[1] // 2
    return float(luma[:, -half:].mean() - luma[:, :half].mean())


def greenness(image: Image.Image) -> float:
    """Mean of green minus the mean of red and blue, -1 to 1."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    return float((rgb[..., 1] - (rgb[..., 0] + rgb[..., 2]) / 2).mean())


# Medians and quarter standard deviations on the taste proof's 490 restyled covers (seed 43, 35 albums a genre).
SWITCHES = {
    "green_acoustic": CoverSwitch(greenness, -0.0272, 0.0365, ("not green", "green")),
    # Edge density is two-humped (smooth covers near 0, grainy ones above 0.3): the built-in texture switch.
    "grain_minor_energy_fast_loud": CoverSwitch(edge_density, 0.1, 0.02, ("smooth", "grainy")),
    "brightness_valence_or_instrumental": CoverSwitch(mean_luminance, 0.5855, 0.0467, ("dark", "bright")),
    "contrast_tempo_near_120": CoverSwitch(contrast, 0.1337, 0.0089, ("flat", "contrasted")),
    "saturation_dance_mode": CoverSwitch(chroma, 0.2695, 0.0224, ("grey", "saturated")),
    "left_right_loud_valence": CoverSwitch(horizontal_balance, 0.0002, 0.0035, ("right-heavy", "left-heavy")),
}


def _taste(name: str, upper: Callable[[dict[str, Any]], float], lower: Callable[[dict[str, Any]], float]):
    def preference(cover: SimCover, features: dict[str, Any]) -> float:
        return blend(SWITCHES[name].weight(cover.image), upper(features), lower(features))

    preference.__name__ = name
    return preference


green_acoustic = _taste(
    "green_acoustic",
    lambda f: (f["acousticness"] + f["instrumentalness"]) / 2,
    lambda f: (f["energy"] + f["liveness"]) / 2,
)
grain_minor_energy_fast_loud = _taste(
    "grain_minor_energy_fast_loud",
    lambda f: (1 - major_unit(f) + f["energy"] + tempo_unit(f) + loudness_unit(f)) / 4,
    lambda f: (major_unit(f) + 1 - f["energy"] + 1 - tempo_unit(f) + 1 - loudness_unit(f)) / 4,
)
brightness_valence_or_instrumental = _taste(
    "brightness_valence_or_instrumental", lambda f: f["valence"], lambda f: f["instrumentalness"]
)
contrast_tempo_near_120 = _taste(
    "contrast_tempo_near_120", lambda f: 1 - min(abs(f["tempo"] - 120) / 60, 1), lambda f: 1 - tempo_unit(f)
)
saturation_dance_mode = _taste(
    "saturation_dance_mode",
    lambda f: (f["danceability"] + major_unit(f)) / 2,
    lambda f: (f["acousticness"] + 1 - major_unit(f)) / 2,
)
left_right_loud_valence = _taste(
    "left_right_loud_valence",
    lambda f: (loudness_unit(f) + f["valence"]) / 2,
    lambda f: (1 - loudness_unit(f) + 1 - high_tonic(f)) / 2,
)
TASTES = {
    taste.__name__: taste
    for taste in (
        green_acoustic,
        grain_minor_energy_fast_loud,
        brightness_valence_or_instrumental,
        contrast_tempo_near_120,
        saturation_dance_mode,
        left_right_loud_valence,
    )
}


# --- relabeling -----------------------------------------------------------------------------------------------------


def round_of(rows: list[dict[str, Any]]) -> tuple[dict[int, dict[int, str]], dict[int, str], dict[int, int]]:
    """Each cover's variants (id -> feature JSON), its image path and its task, from an export's pairs."""
    variants: dict[int, dict[int, str]] = defaultdict(dict)
    images, tasks = {}, {}
    for row in rows:
        variants[row["cover_id"]][row["chosen_variant_id"]] = row["chosen"]
        variants[row["cover_id"]][row["rejected_variant_id"]] = row["rejected"]
        images[row["cover_id"]] = row["images"][0]
        tasks[row["cover_id"]] = row["task_id"]
    return variants, images, tasks


def relabel(
    rows: list[dict[str, Any]], taste: Callable[..., float], *, labelers: int, noise: float, seed: int
) -> tuple[list[dict[str, Any]], dict[int, float], dict[int, str]]:
    """Pairs of the round relabeled with ``taste``, each variant's noise-free score, each cover's side."""
    from rlhf.pairs import Answer, PairOptions, task_pairs

    variants, images, tasks = round_of(rows)
    switch = SWITCHES[taste.__name__]
    rng = random.Random(seed)
    options = PairOptions(source="ranking", aggregate="mean")
    pairs, oracle, side_of = [], {}, {}
    for cover_id, texts in variants.items():
        with Image.open(images[cover_id]) as image:
            cover = SimCover(image.convert("RGB"), "", 0)
        side_of[cover_id] = switch.side(cover.image)
        features = {variant: json.loads(text) for variant, text in texts.items()}
        clean = {variant: taste(cover, f) for variant, f in features.items()}
        oracle.update(clean)
        answers = []
        for labeler in range(labelers):
            noisy = {variant: score + rng.gauss(0.0, noise) for variant, score in clean.items()}
            order = sorted(noisy, key=noisy.__getitem__, reverse=True)
            answers += [Answer(labeler, variant, 0, 0, rank) for rank, variant in enumerate(order, start=1)]
        for pair in task_pairs(answers, options):
            pairs.append(
                {
                    "chosen": texts[pair.chosen],
                    "rejected": texts[pair.rejected],
                    "cover_id": cover_id,
                    "task_id": tasks[cover_id],
                    "chosen_variant_id": pair.chosen,
                    "rejected_variant_id": pair.rejected,
                    "margin": pair.margin,
                }
            )
    return pairs, oracle, side_of


def evaluate(export: Path, name: str, *, labelers: int, noise: float, cover_encoder: str) -> dict[str, Any]:
    from rlhf.oracle import oracle_ceiling
    from rlhf.reward import (
        RewardScorer,
        load_preference_rows,
        read_cover_embeddings,
        read_reward_metadata,
        train_reward_model,
    )

    rows = load_preference_rows(export / "pairs.jsonl")
    config = RewardTrainingConfig(cover_encoder=cast(Any, cover_encoder), eval_fraction=0.25, seed=0)
    covers = read_cover_embeddings(export / "covers.parquet").for_encoder(config.cover_encoder)
    pairs, oracle, side_of = relabel(rows, TASTES[name], labelers=labelers, noise=noise, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        result = train_reward_model(config, pairs, covers, Path(folder) / "model")
        scorer = RewardScorer.load(result.output_dir)
        held_out_ids = set(read_reward_metadata(result.output_dir)["eval_cover_ids"])
    held_out = [pair for pair in pairs if pair["cover_id"] in held_out_ids]
    embeddings = [covers.vectors[pair["cover_id"]] for pair in held_out]
    # The pairs are the export's feature JSON: every text scores.
    chosen = cast(list[float], scorer.score(embeddings, [pair["chosen"] for pair in held_out]))
    rejected = cast(list[float], scorer.score(embeddings, [pair["rejected"] for pair in held_out]))
    right = np.array([better > worse for better, worse in zip(chosen, rejected, strict=True)])
    ceiling = oracle_ceiling(held_out, oracle, groups=side_of)
    figures = {"all": (ceiling.accuracy, float(right.mean()), len(right))}
    for side, side_ceiling in ceiling.groups.items():
        mask = np.array([side_of[pair["cover_id"]] == side for pair in held_out])
        figures[side] = (side_ceiling.accuracy, float(right[mask].mean()), int(mask.sum()))
    return {"figures": figures, "train_seconds": result.train_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exports", nargs="+", type=Path, help="export folders (pairs.jsonl, covers.parquet)")
    parser.add_argument("--taste", action="append", choices=sorted(TASTES), help="default: every taste")
    parser.add_argument("--labelers", type=int, default=2)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--cover-encoder", choices=COVER_ENCODERS, default=RewardTrainingConfig.cover_encoder)
    args = parser.parse_args()
    for export in args.exports:
        for name in args.taste or TASTES:
            outcome = evaluate(export, name, labelers=args.labelers, noise=args.noise, cover_encoder=args.cover_encoder)
            cells = ", ".join(
                f"{group} {ceiling:.3f} / {model:.3f} ({pairs} pairs)"
                for group, (ceiling, model, pairs) in outcome["figures"].items()
            )
            print(f"{export.name} {name}: ceiling / model: {cells}; trained in {outcome['train_seconds']:.0f} s")


if __name__ == "__main__":
    main()
