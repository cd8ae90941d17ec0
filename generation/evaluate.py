"""The paper's evaluation: valid-JSON rate and error of predicted vs true features, zero-shot vs RAG.

Each method is scored on its point estimate: the captioner decodes greedily (the most likely token at every step). A
sample at temperature 1, what a round renders, carries the model's spread on top: for a model that samples from the
right distribution its expected error is twice the conditional variance, while a mean of K neighbours' features
(the baseline) has about (1 + 1/K) times it, so sampled MSE would compare a distribution with a point. ``greedy=False``
scores one sample per cover instead.

Error is the mean squared error over the numeric features, each scaled to [0, 1] by its range (tempo 40-220 BPM
and loudness -60-0 dB would otherwise dominate), plus genre accuracy. The retrieval baseline (the neighbours'
mean features, no captioner) is swept over K.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from generation.config import BASELINE_KS
from generation.features import NUMERIC_RANGES, AcousticFeatures
from generation.images import load_cover_image
from generation.instruction import build_instruction
from generation.pipeline import Pipeline
from generation.retrieve import mean_features


class HeldOutAlbum(Protocol):
    """A catalog album with its cover and true features (``generation.musicoset.Album``, ``rlhf.sft.CatalogCover``)."""

    @property
    def album_id(self) -> str: ...

    @property
    def cover_path(self) -> str | Path | None: ...

    @property
    def features(self) -> AcousticFeatures: ...


def scaled_squared_errors(predicted: AcousticFeatures, true: AcousticFeatures) -> dict[str, float]:
    """Per numeric feature, ((predicted - true) / range) ** 2."""
    errors = {}
    for name, (low, high) in NUMERIC_RANGES.items():
        errors[name] = ((getattr(predicted, name) - getattr(true, name)) / (high - low)) ** 2
    return errors


@dataclass
class MethodScore:
    name: str
    attempted: int = 0
    valid: int = 0
    genre_hits: int = 0
    errors: list[dict[str, float]] = field(default_factory=list)

    def add(self, predicted: AcousticFeatures | None, true: AcousticFeatures) -> None:
        self.attempted += 1
        if predicted is None:
            return
        self.valid += 1
        self.genre_hits += predicted.genre == true.genre
        self.errors.append(scaled_squared_errors(predicted, true))

    @property
    def mse(self) -> float | None:
        return float(np.mean([np.mean(list(e.values())) for e in self.errors])) if self.errors else None

    def mse_per_feature(self) -> dict[str, float]:
        return {name: float(np.mean([e[name] for e in self.errors])) for name in NUMERIC_RANGES} if self.errors else {}

    def row(self) -> dict[str, object]:
        return {
            "method": self.name,
            "valid": self.valid,
            "attempted": self.attempted,
            "valid_rate": self.valid / self.attempted if self.attempted else None,
            "mse": self.mse,
            "genre_accuracy": self.genre_hits / self.valid if self.valid else None,
            "mse_per_feature": self.mse_per_feature(),
        }


def evaluate(
    pipeline: Pipeline,
    albums: Sequence[HeldOutAlbum],
    *,
    seed: int = 0,
    ks: Sequence[int] = BASELINE_KS,
    unconstrained: bool = True,
    greedy: bool = True,
) -> list[dict[str, object]]:
    """Score the captioner (zero-shot and RAG; constrained and, optionally, unconstrained) and the K sweep.

    Args:
        pipeline: loaded with an index over the catalog; each album is excluded from its own neighbours.
        albums: held-out albums with covers and true features.
        seed: sampling seed of the captioner (one sample per album and method).
        ks: neighbour counts for the retrieval baseline.
        unconstrained: also decode freely, as the paper did, to compare valid-JSON rates.
        greedy: decode greedily (default), else one sample per album at the pipeline's temperature.
    """
    if not albums:
        raise ValueError("no albums to evaluate: the split is empty")
    if pipeline.index is None:
        raise ValueError("evaluation needs a retrieval index over the catalog")
    genres = pipeline.index.genres
    decodings = (True, False) if unconstrained else (True,)
    scores = {
        (rag, constrained): MethodScore(
            f"{'RAG' if rag else 'zero-shot'} {'constrained' if constrained else 'unconstrained'}"
        )
        for rag in (False, True)
        for constrained in decodings
    }
    baselines = {k: MethodScore(f"retrieval baseline K={k}") for k in ks}
    for album in albums:
        if album.cover_path is None:
            continue
        image = load_cover_image(album.cover_path)
        embedding = pipeline.embedder.embed([image])[0]
        neighbours = pipeline.index.search(embedding, k=max(ks), exclude=[album.album_id])
        for k in ks:
            baselines[k].add(mean_features(neighbours[:k]), album.features)
        context_neighbours = neighbours[: pipeline.config.top_k]
        for (rag, constrained), score in scores.items():
            instruction = build_instruction(
                genres=genres,
                context=mean_features(context_neighbours) if rag else None,
                neighbour_genres=[n.genre for n in context_neighbours] if rag else (),
            )
            (caption,) = pipeline.captioner.generate(
                image,
                instruction=instruction,
                genres=genres,
                num_variants=1,
                seed=seed,
                constrained=constrained,
                temperature=pipeline.config.temperature,
                greedy=greedy,
            )
            score.add(caption.features, album.features)
    return [score.row() for score in scores.values()] + [score.row() for score in baselines.values()]


def format_table(rows: Sequence[dict[str, object]]) -> str:
    lines = [f"{'method':34} {'valid JSON':>14} {'MSE (scaled)':>13} {'genre acc.':>10}"]
    for row in rows:
        valid = f"{row['valid']}/{row['attempted']}"
        mse = f"{row['mse']:.4f}" if row["mse"] is not None else "-"
        accuracy = f"{row['genre_accuracy']:.0%}" if row["genre_accuracy"] is not None else "-"
        lines.append(f"{row['method']:34} {valid:>14} {mse:>13} {accuracy:>10}")
    return "\n".join(lines)
