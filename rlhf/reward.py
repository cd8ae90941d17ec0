"""The reward model, input format ``albumgen-reward-v2``: it reads the cover itself and the variant's features.

One score is a function of two inputs:

- **the cover**: one of its embeddings as the pipeline computed them at generation time (stored with the cover and
  exported in the export's ``covers.parquet``, so training and scoring never recompute them), by default the
  retrieval CLIP's vector, or the mean of the image tokens the captioner's vision tower feeds its language model
  (``cover_encoder``; ``generation.caption.CaptionerImageEmbedder``; the README's architecture section has what each
  reads). The model reads the embedding's coordinates on the training covers' principal components
  (``cover_components``, default 16), standardised: a few dozen covers cannot pin down hundreds of directions, and
  the components are where covers differ.
- **the variant**: its feature JSON as numbers (``FeatureEncoder``): tempo, loudness and the 0-1 features scaled to
  0-1 by their schema ranges, one-hots of time signature, key, mode and genre (the training rows' genres plus one
  "other" slot), standardised on the training variants. Two different outputs never score alike because they share
  prompt-word buckets, which the v1 text format did.

``CoverRewardModel`` (a transformers ``PreTrainedModel``) is a low-rank bilinear model: the cover and the variant are
each mapped into a small taste space and the score is their dot product plus a taste all covers share, so the cover
decides how much each feature counts and in which direction (its docstring has the formula; the README's architecture
section the measurements that chose it over an MLP fusion). It is trained by TRL's ``RewardTrainer`` with its own
collator (``RewardPairCollator``); the held-out evaluation is ``rlhf.reward_evaluation``.

The checkpoint is a folder: the model (``config.json``, safetensors), the feature encoder
(``feature_encoder.json``) and ``albumgen_reward.json`` (format, embedder, split, metrics). A scorer refuses a
checkpoint of another format with one sentence.
"""

import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import datasets
import numpy as np
import torch
import transformers
import trl
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, TrainerCallback
from transformers.modeling_outputs import SequenceClassifierOutput
from trl import RewardConfig, RewardTrainer

from generation.features import (
    MODES,
    NUMERIC_RANGES,
    PITCH_CLASSES,
    TIME_SIGNATURE_RANGE,
    FeatureError,
    features_from_mapping,
)
from generation.loading import ModelLoadError
from rlhf.config import RewardTrainingConfig
from rlhf.reward_evaluation import RewardEvaluation, evaluate_pairs

INPUT_FORMAT = "albumgen-reward-v2"
FORMAT_VERSION = 2
METADATA_FILE = "albumgen_reward.json"
ENCODER_FILE = "feature_encoder.json"
REQUIRED_COLUMNS = ("chosen", "rejected", "cover_id")
# 4,096 inputs of a few hundred floats per forward pass: ~10 MB of activations, well under a second on 2 CPU cores.
SCORE_BATCH_SIZE = 4096
OTHER_GENRE = "(other)"


class PreferenceFormatError(ValueError):
    """A preference row without TRL's columns, or whose chosen/rejected text is not the captioner's feature JSON."""


class CoverDataError(ValueError):
    """A cover of the pairs without an embedding or an image to compute it from, or of another embedder."""


# --- the variant side ---------------------------------------------------------------------------------------------


def features_or_error(text: str) -> dict[str, Any]:
    """The captioner's feature JSON as a dict, any non-empty genre allowed (the scorer may meet unseen genres).

    Raises:
        FeatureError: naming what is wrong (not JSON, not an object, a field missing or out of range).
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise FeatureError(f"not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise FeatureError("not a JSON object")
    if not isinstance(data.get("genre"), str) or not data["genre"].strip():
        raise FeatureError("genre is missing or not a string")
    return features_from_mapping(data, [data["genre"]]).to_dict()


class FeatureEncoder:
    """Feature JSON -> the model's variant input: numeric features scaled by their schema ranges, then one-hots.

    It is the processing class TRL's ``RewardTrainer`` is given: the trainer asks any processing class for a padding
    token (it pads token ids for text models), which this one names although nothing here is padded.
    """

    pad_token = "<pad>"
    pad_token_id = 0
    eos_token = None

    def __init__(self, genres: Iterable[str]) -> None:
        self.genres = tuple(sorted(set(genres)))
        self._genre_slot = {genre: slot for slot, genre in enumerate(self.genres)}
        self.names = (
            *NUMERIC_RANGES,
            *(f"time_signature={n}" for n in range(TIME_SIGNATURE_RANGE[0], TIME_SIGNATURE_RANGE[1] + 1)),
            *(f"key={key}" for key in PITCH_CLASSES),
            *(f"mode={mode}" for mode in MODES),
            *(f"genre={genre}" for genre in (*self.genres, OTHER_GENRE)),
        )

    @property
    def dimension(self) -> int:
        return len(self.names)

    def get_vocab(self) -> dict[str, int]:
        return {self.pad_token: self.pad_token_id}

    def encode(self, features: Mapping[str, Any]) -> list[float]:
        """One variant's input vector from validated features (``AcousticFeatures.to_dict()``)."""
        vector = [(float(features[name]) - low) / (high - low) for name, (low, high) in NUMERIC_RANGES.items()]
        signatures = [0.0] * (TIME_SIGNATURE_RANGE[1] - TIME_SIGNATURE_RANGE[0] + 1)
        signatures[int(features["time_signature"]) - TIME_SIGNATURE_RANGE[0]] = 1.0
        keys = [float(features["key"] == key) for key in PITCH_CLASSES]
        modes = [float(features["mode"] == mode) for mode in MODES]
        genres = [0.0] * (len(self.genres) + 1)
        genres[self._genre_slot.get(features["genre"], len(self.genres))] = 1.0
        return vector + signatures + keys + modes + genres

    def encode_text(self, text: str) -> list[float]:
        """One variant's input vector from the captioner's output text.

        Raises:
            FeatureError: the text is not the captioner's feature JSON.
        """
        return self.encode(features_or_error(text))

    def save_pretrained(self, directory: str | Path) -> None:
        Path(directory, ENCODER_FILE).write_text(json.dumps({"genres": list(self.genres)}, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "FeatureEncoder":
        path = Path(directory, ENCODER_FILE)
        if not path.is_file():
            raise ModelLoadError(f"{directory} is not a reward model checkpoint: it has no {ENCODER_FILE}")
        return cls(json.loads(path.read_text())["genres"])


# --- the model ----------------------------------------------------------------------------------------------------


class CoverRewardConfig(PretrainedConfig):
    """Sizes of ``CoverRewardModel``: ``cover_dim`` is the embedder's, ``feature_dim`` the encoder's, of which the first
    ``numeric_features`` are numeric (tempo, loudness, the 0-1 features) and the rest one-hots."""

    model_type = "albumgen-cover-reward"

    def __init__(
        self,
        cover_dim: int = 512,
        cover_components: int = 16,
        feature_dim: int = 32,
        numeric_features: int = len(NUMERIC_RANGES),
        taste_rank: int = 2,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("num_labels", 1)
        super().__init__(**kwargs)
        self.cover_dim = cover_dim
        self.cover_components = cover_components
        self.feature_dim = feature_dim
        self.numeric_features = numeric_features
        self.taste_rank = taste_rank


# Centres, in standard units of the training variants, of the bumps each numeric feature is also read through: a
# taste that peaks inside a feature's range (tempo near 120 BPM, not faster is better) is then linear in the inputs.
BUMP_CENTRES = (-1.5, 0.0, 1.5)


class CoverRewardModel(PreTrainedModel):
    """Scores (cover embedding, encoded features) inputs; ``forward`` returns ``logits`` of shape (batch, 1).

    ``score = (U c) . (V v) + w . v + b``: ``c`` the cover on its principal components, ``v`` the variant's standardised
    features with a few bumps of each numeric one (``BUMP_CENTRES``). ``U c`` places the cover in a ``taste_rank``-d
    taste space and ``V v`` the variant in the same space, so how much each feature counts, and in which direction,
    depends on the cover; ``w . v`` is the taste every cover shares. Within one cover's pairs a term of the cover alone
    cancels, so nothing else is needed. The input normalisation (the covers' mean and principal components, the
    features' mean and scale) is fitted on the training data by ``fit_normalisation`` and saved with the weights as
    buffers.
    """

    config_class = CoverRewardConfig
    base_model_prefix = "reward"
    main_input_name = "cover_embeds"
    cover_mean: torch.Tensor
    cover_basis: torch.Tensor
    cover_scale: torch.Tensor
    feature_mean: torch.Tensor
    feature_scale: torch.Tensor
    bump_centres: torch.Tensor

    def __init__(self, config: CoverRewardConfig) -> None:
        super().__init__(config)
        self.register_buffer("cover_mean", torch.zeros(config.cover_dim))
        self.register_buffer("cover_basis", torch.zeros(config.cover_components, config.cover_dim))
        self.register_buffer("cover_scale", torch.ones(config.cover_components))
        self.register_buffer("feature_mean", torch.zeros(config.feature_dim))
        self.register_buffer("feature_scale", torch.ones(config.feature_dim))
        self.register_buffer("bump_centres", torch.tensor(BUMP_CENTRES))
        variant_dim = config.feature_dim + config.numeric_features * len(BUMP_CENTRES)
        self.cover_taste = nn.Linear(config.cover_components, config.taste_rank)
        self.variant_taste = nn.Linear(variant_dim, config.taste_rank, bias=False)
        self.shared_taste = nn.Linear(variant_dim, 1)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # PyTorch's own Linear init: the library default (normal, std 0.02) starts the product term near 0, where its
        # gradient is near 0 too.
        if isinstance(module, nn.Linear):
            module.reset_parameters()

    @torch.no_grad()
    def fit_normalisation(self, covers: np.ndarray, features: np.ndarray) -> None:
        """Set the input normalisation from the training covers' embeddings and the training variants' inputs.

        Args:
            covers: (training covers, cover_dim), one row per distinct cover.
            features: (training variants, feature_dim), encoded by ``FeatureEncoder``.
        """
        cover_matrix = torch.as_tensor(covers, dtype=torch.float32)
        mean = cover_matrix.mean(0)
        _, singular, right = torch.linalg.svd(cover_matrix - mean, full_matrices=False)
        # Components beyond the covers' rank stay zero rows: those inputs read 0 for every cover.
        usable = min(self.config.cover_components, max(len(cover_matrix) - 1, 0), right.shape[0])
        self.cover_mean.copy_(mean)
        self.cover_basis.zero_()
        self.cover_scale.fill_(1.0)
        if usable:
            self.cover_basis[:usable] = right[:usable]
            # One scale for every component, the first one's spread: whitening would blow the faint components (noise
            # between a few covers) up to the size of the ones where covers really differ.
            spread = float(singular[0]) / math.sqrt(max(len(cover_matrix) - 1, 1))
            self.cover_scale.fill_(spread if spread > 1e-6 else 1.0)
        feature_matrix = torch.as_tensor(features, dtype=torch.float32)
        scale = feature_matrix.std(0, unbiased=False)
        self.feature_mean.copy_(feature_matrix.mean(0))
        # Inputs constant on the training variants (an unused key or genre) keep scale 1: an unseen value reads as 1.
        self.feature_scale.copy_(torch.where(scale > 1e-6, scale, torch.ones_like(scale)))

    def forward(
        self,
        cover_embeds: torch.Tensor,
        features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        """Rewards of a batch.

        Args:
            cover_embeds: (batch, cover_dim) CLIP embeddings of the covers.
            features: (batch, feature_dim) encoded variants.
            attention_mask, use_cache: accepted because TRL's ``RewardTrainer`` passes them (it counts tokens in
                the mask and turns the cache off); unused.
        """
        cover = ((cover_embeds - self.cover_mean) @ self.cover_basis.T) / self.cover_scale
        standard = (features - self.feature_mean) / self.feature_scale
        numeric = standard[:, : self.config.numeric_features, None]
        variant = torch.cat([standard, torch.exp(-((numeric - self.bump_centres) ** 2)).flatten(1)], -1)
        taste = (self.cover_taste(cover) * self.variant_taste(variant)).sum(-1, keepdim=True)
        return SequenceClassifierOutput(logits=taste + self.shared_taste(variant))


@dataclass
class RewardPairCollator:
    """TRL preference batches for ``CoverRewardModel``: the chosen inputs, then the rejected ones.

    ``RewardTrainer.compute_loss`` splits the logits in two halves (chosen first) and reads ``margin`` when present,
    so the cover's embedding is repeated for both halves. The encoded variants sit in TRL's ``chosen_ids`` and
    ``rejected_ids`` columns: TRL takes a dataset with those columns as already processed and hands rows to the
    collator as they are.
    """

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        covers = torch.tensor([example["cover_embedding"] for example in examples], dtype=torch.float32)
        chosen = torch.tensor([example["chosen_ids"] for example in examples], dtype=torch.float32)
        rejected = torch.tensor([example["rejected_ids"] for example in examples], dtype=torch.float32)
        batch = {
            "cover_embeds": torch.cat([covers, covers]),
            "features": torch.cat([chosen, rejected]),
            "attention_mask": torch.ones((2 * len(examples), 1), dtype=torch.long),
        }
        if "margin" in examples[0]:
            batch["margin"] = torch.tensor([float(example["margin"]) for example in examples], dtype=torch.float32)
        return batch


# --- covers -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoverEmbeddings:
    """The covers' embeddings by cover id, all from one embedder (a CLIP ``Embedder`` or a
    ``CaptionerImageEmbedder``, named by its ``model_id``)."""

    embedder_id: str
    vectors: dict[int, np.ndarray]

    @property
    def dimension(self) -> int:
        return len(next(iter(self.vectors.values()))) if self.vectors else 0

    def matrix(self, cover_ids: Sequence[int]) -> np.ndarray:
        return np.stack([self.vectors[cover_id] for cover_id in cover_ids]).astype(np.float32)


def cover_encoder_of(embedder_id: str) -> str:
    """The ``cover_encoder`` (``rlhf.config.COVER_ENCODERS``) an embedder id is of."""
    from generation.caption import is_captioner_image_embedder

    return "captioner" if is_captioner_image_embedder(embedder_id) else "clip"


@dataclass(frozen=True)
class ExportCovers:
    """An export's cover embeddings, by embedder: the round's CLIP and its captioner's image tokens."""

    path: Path
    by_embedder: dict[str, CoverEmbeddings]

    def of(self, embedder_id: str) -> CoverEmbeddings:
        """The embeddings a scorer of ``embedder_id`` reads.

        Raises:
            CoverDataError: the export holds none of that embedder.
        """
        if embedder_id not in self.by_embedder:
            raise CoverDataError(
                f"the covers of {self.path} hold no embeddings by {embedder_id}, which the reward model reads "
                f"(they hold: {', '.join(self.by_embedder) or 'none'})"
            )
        return self.by_embedder[embedder_id]

    def for_encoder(self, cover_encoder: str) -> CoverEmbeddings:
        """The embeddings a reward run of ``cover_encoder`` trains on; none at all when no cover has any (the
        trainer then names the covers without one).

        Raises:
            CoverDataError: the covers hold none of that kind (rendered before this release stored the captioner's)
                or several (covers of rounds of several profiles).
        """
        if not self.by_embedder:
            return CoverEmbeddings("", {})
        matching = [embedder for embedder in self.by_embedder if cover_encoder_of(embedder) == cover_encoder]
        if not matching:
            raise CoverDataError(
                f"the covers of {self.path} hold no {cover_encoder} embeddings (only {', '.join(self.by_embedder)}; "
                "rounds rendered before covers stored the captioner's image tokens): train with another cover_encoder "
                "or render the covers again"
            )
        if len(matching) > 1:
            raise CoverDataError(
                f"the covers of {self.path} hold {cover_encoder} embeddings of several models ({', '.join(matching)}); "
                "export rounds of one pipeline profile apart"
            )
        return self.by_embedder[matching[0]]


def read_cover_embeddings(path: str | Path) -> ExportCovers:
    """The covers of an export (``covers.parquet``: a row per cover and embedder, ``cover_id``, ``embedder_id``,
    ``embedding``, ``image``).

    Covers without an embedding (rendered before embeddings were stored) are left out; the trainer names them.

    Raises:
        CoverDataError: the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise CoverDataError(f"the export's cover file {path} does not exist")
    table = datasets.Dataset.from_parquet(str(path)).to_list()  # type: ignore[union-attr]
    by_embedder: dict[str, dict[int, np.ndarray]] = {}
    for row in table:
        if row.get("embedding"):
            vectors = by_embedder.setdefault(row["embedder_id"], {})
            vectors[int(row["cover_id"])] = np.asarray(row["embedding"], dtype=np.float32)
    return ExportCovers(
        path, {embedder: CoverEmbeddings(embedder, vectors) for embedder, vectors in by_embedder.items()}
    )


def embed_covers(rows: Sequence[Mapping[str, Any]], embedder: Any) -> CoverEmbeddings:
    """Embed each cover of the rows from its image (the first of ``images``) with a ``generation.embed.Embedder`` or
    a ``generation.caption.CaptionerImageEmbedder``.

    For pairs that come without an export's ``covers.parquet``; rows of one cover share its image.

    Raises:
        CoverDataError: a cover whose row names no image, or whose image file is missing or unreadable.
    """
    from generation.images import CoverImageError, load_cover_image

    paths: dict[int, str] = {}
    for row in rows:
        images = row.get("images") or []
        if not images:
            raise CoverDataError(f"cover {row['cover_id']} has no image path in its pairs (the images column)")
        paths.setdefault(int(row["cover_id"]), str(images[0]))
    images = []
    for cover_id, image_path in paths.items():
        if not Path(image_path).is_file():
            raise CoverDataError(f"the image of cover {cover_id} ({image_path}) does not exist")
        try:
            images.append(load_cover_image(image_path))
        except CoverImageError as exc:
            raise CoverDataError(f"the image of cover {cover_id} ({image_path}) cannot be read: {exc}") from exc
    vectors = embedder.embed(images)
    return CoverEmbeddings(embedder.model_id, dict(zip(paths, vectors, strict=True)))


# --- dataset --------------------------------------------------------------------------------------------------------


def load_preference_rows(source: "str | Path | datasets.Dataset | Iterable[Mapping[str, Any]]") -> list[dict[str, Any]]:
    """Read preference rows from a JSONL or Parquet file, a ``datasets.Dataset`` or an iterable of mappings.

    Raises:
        PreferenceFormatError: a JSONL line that is not a JSON object.
    """
    if isinstance(source, datasets.Dataset):
        return source.to_list()
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"the preference dataset {path} does not exist")
        if path.suffix == ".parquet":
            return datasets.Dataset.from_parquet(str(path)).to_list()  # type: ignore[union-attr]
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PreferenceFormatError(f"line {number} of {path} is not JSON: {exc}") from exc
            if not isinstance(row, dict):
                raise PreferenceFormatError(f"line {number} of {path} is not a JSON object")
            rows.append(row)
        return rows
    rows = []
    for index, row in enumerate(source):
        if not isinstance(row, Mapping):
            raise PreferenceFormatError(f"row {index} is a {type(row).__name__}, not a mapping of columns")
        rows.append(dict(row))
    return rows


def check_preference_rows(rows: Sequence[Mapping[str, Any]], *, require_margin: bool) -> None:
    """Check every row has TRL's columns and that chosen and rejected are the captioner's feature JSON.

    Raises:
        ValueError: no rows at all ("no preference pairs").
        PreferenceFormatError: naming the first bad row (0-based index) and what is wrong with it.
    """
    if not rows:
        raise ValueError("the preference dataset has no preference pairs")
    required = REQUIRED_COLUMNS + (("margin",) if require_margin else ())
    for index, row in enumerate(rows):
        missing = [name for name in required if name not in row or row[name] is None]
        if missing:
            raise PreferenceFormatError(f"row {index} lacks the column(s) {', '.join(missing)}")
        cover_id = row["cover_id"]
        if isinstance(cover_id, bool) or not isinstance(cover_id, int):
            raise PreferenceFormatError(f"row {index}: cover_id {cover_id!r} is not an integer")
        where = f"row {index} (cover {cover_id})"
        for column in ("chosen", "rejected"):
            try:
                features_or_error(row[column])
            except FeatureError as exc:
                raise PreferenceFormatError(f"{where}: {column} is not the captioner's feature JSON: {exc}") from exc
        if "margin" in row and row["margin"] is not None:
            margin = row["margin"]
            if isinstance(margin, bool) or not isinstance(margin, int | float) or not math.isfinite(margin):
                raise PreferenceFormatError(f"{where}: margin {margin!r} is not a finite number")


def split_by_cover(
    rows: Sequence[Mapping[str, Any]], eval_fraction: float, seed: int
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Hold out a seeded random share of covers: every pair of a held-out cover goes to eval, none to training.

    Args:
        rows: checked preference rows.
        eval_fraction: share of covers to hold out (rounded, at least one cover when above 0).
        seed: the same rows and seed give the same split.
    """
    if eval_fraction == 0:
        return list(rows), []
    covers = sorted({row["cover_id"] for row in rows})
    held_out = max(1, round(len(covers) * eval_fraction))
    if held_out >= len(covers):
        raise ValueError(
            f"holding out {eval_fraction:.0%} of {len(covers)} cover(s) leaves no cover to train on: "
            "rate more covers or set eval_fraction to 0"
        )
    shuffled = list(covers)
    random.Random(seed).shuffle(shuffled)
    eval_covers = set(shuffled[:held_out])
    return (
        [row for row in rows if row["cover_id"] not in eval_covers],
        [row for row in rows if row["cover_id"] in eval_covers],
    )


def _check_covers(rows: Sequence[Mapping[str, Any]], covers: CoverEmbeddings) -> None:
    cover_ids = sorted({row["cover_id"] for row in rows})
    if len(cover_ids) < 2:
        raise ValueError(
            f"all {len(rows)} pairs come from one cover ({cover_ids[0]}): a reward model that reads the cover needs "
            "pairs of several covers; label more covers"
        )
    missing = [cover_id for cover_id in cover_ids if cover_id not in covers.vectors]
    if missing:
        raise CoverDataError(
            f"{len(missing)} cover(s) of the pairs have no stored embedding (first: cover {missing[0]}); "
            "render them in a round with this release, or train from the images with an embedder"
        )


def _pair_dataset(
    rows: Sequence[Mapping[str, Any]], covers: CoverEmbeddings, encoder: FeatureEncoder, use_margin: bool
) -> datasets.Dataset:
    columns: dict[str, Any] = {
        "cover_embedding": [covers.vectors[row["cover_id"]].tolist() for row in rows],
        "chosen_ids": [encoder.encode_text(row["chosen"]) for row in rows],
        "rejected_ids": [encoder.encode_text(row["rejected"]) for row in rows],
    }
    if use_margin:
        columns["margin"] = [float(row["margin"]) for row in rows]
    return datasets.Dataset.from_dict(columns)


# --- training -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RewardTrainingResult:
    """What one reward-model training run produced and measured (``evaluation_*`` are None without held-out covers)."""

    output_dir: Path
    evaluation_before: RewardEvaluation | None
    evaluation_after: RewardEvaluation | None
    loss_history: list[float]
    trainable_parameters: int
    train_pairs: int
    eval_pairs: int
    train_covers: int
    eval_covers: int
    steps: int
    max_steps: int
    train_seconds: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def stopped_early(self) -> bool:
        """True when a callback ended training before the last step (the model so far was saved)."""
        return self.steps < self.max_steps


def build_reward_model(config: RewardTrainingConfig, *, cover_dim: int, encoder: FeatureEncoder) -> CoverRewardModel:
    """A new, untrained reward model for covers of ``cover_dim`` and the encoder's inputs (seeded by ``config``)."""
    torch.manual_seed(config.seed)
    model_config = CoverRewardConfig(
        cover_dim=cover_dim,
        cover_components=config.cover_components,
        feature_dim=encoder.dimension,
        taste_rank=config.taste_rank,
    )
    return CoverRewardModel(model_config)


def train_reward_model(
    config: RewardTrainingConfig,
    dataset: "str | Path | datasets.Dataset | Iterable[Mapping[str, Any]]",
    covers: CoverEmbeddings,
    output_dir: str | Path,
    *,
    callbacks: Sequence[TrainerCallback] = (),
) -> RewardTrainingResult:
    """Train a cover-aware reward model on preference pairs with TRL's ``RewardTrainer``; save it to ``output_dir``.

    Nothing is written to ``output_dir`` unless training succeeds: the checkpoint is built in a sibling temp folder
    and moved.

    Args:
        config: the run's settings.
        dataset: JSONL/Parquet path, ``datasets.Dataset`` or rows with ``prompt``, ``chosen``, ``rejected``,
            ``cover_id`` (and ``margin`` when ``config.use_margin``); other columns are ignored.
        covers: the embedding of every cover of the pairs, by one embedder (``read_cover_embeddings(...)``
            ``.for_encoder(config.cover_encoder)`` or ``embed_covers``); the checkpoint records which.
        output_dir: where the checkpoint goes; must not exist or be empty.
        callbacks: ``transformers.TrainerCallback`` instances passed to the trainer (progress, cancel). One that
            raises aborts the run with nothing written; one that sets ``control.should_training_stop`` ends it early
            and the model so far is saved (``result.stopped_early``).

    Raises:
        ValueError: no pairs, pairs of one cover only, a non-empty ``output_dir``, or a split leaving nothing to train.
        PreferenceFormatError: a row without the columns or with text that is not the captioner's feature JSON.
        CoverDataError: a cover of the pairs without an embedding.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise ValueError(f"the reward model output folder {output_dir} already exists and is not empty")
    rows = load_preference_rows(dataset)
    check_preference_rows(rows, require_margin=config.use_margin)
    _check_covers(rows, covers)
    train_rows, eval_rows = split_by_cover(rows, config.eval_fraction, config.seed)

    encoder = FeatureEncoder(
        features_or_error(row[column])["genre"] for row in train_rows for column in ("chosen", "rejected")
    )
    train_set = _pair_dataset(train_rows, covers, encoder, config.use_margin)
    train_cover_ids = sorted({row["cover_id"] for row in train_rows})
    model = build_reward_model(config, cover_dim=covers.dimension, encoder=encoder)
    model.fit_normalisation(
        covers.matrix(train_cover_ids), np.asarray(list(train_set["chosen_ids"]) + list(train_set["rejected_ids"]))
    )

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="albumgen-reward-trainer-") as workspace:
            trainer = RewardTrainer(
                model=model,
                args=_trainer_args(config, workspace),
                train_dataset=train_set,
                processing_class=encoder,  # type: ignore[arg-type]
                data_collator=RewardPairCollator(),
                callbacks=list(callbacks),
            )
            # disable_tqdm swaps the progress bar for a callback that prints every log line; the logs are returned.
            trainer.remove_callback(transformers.PrinterCallback)
            scorer = RewardScorer(model, encoder, embedder_id=covers.embedder_id)
            before = _evaluate(scorer, eval_rows, covers) if eval_rows else None
            started = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - started
            after = _evaluate(scorer, eval_rows, covers) if eval_rows else None
            losses = [float(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
            steps, max_steps = trainer.state.global_step, trainer.state.max_steps
        model.save_pretrained(staging)
        encoder.save_pretrained(staging)
        eval_cover_ids = sorted({row["cover_id"] for row in eval_rows})
        metadata: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "input_format": INPUT_FORMAT,
            "embedder_id": covers.embedder_id,
            "cover_dim": covers.dimension,
            "config": config.to_dict(),
            "eval_cover_ids": eval_cover_ids,
            "metrics": {
                "evaluation_before": before.to_dict() if before else None,
                "evaluation_after": after.to_dict() if after else None,
                "final_loss": losses[-1] if losses else None,
                "train_pairs": len(train_rows),
                "eval_pairs": len(eval_rows),
                "train_covers": len(train_cover_ids),
                "eval_covers": len(eval_cover_ids),
                "steps": steps,
                "max_steps": max_steps,
                "train_seconds": seconds,
            },
            "versions": {"transformers": transformers.__version__, "trl": trl.__version__, "torch": torch.__version__},
        }
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        if output_dir.exists():
            output_dir.rmdir()
        staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    numbers = metadata["metrics"]
    return RewardTrainingResult(
        output_dir=output_dir,
        evaluation_before=before,
        evaluation_after=after,
        loss_history=losses,
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        train_pairs=numbers["train_pairs"],
        eval_pairs=numbers["eval_pairs"],
        train_covers=numbers["train_covers"],
        eval_covers=numbers["eval_covers"],
        steps=steps,
        max_steps=max_steps,
        train_seconds=seconds,
        metadata=metadata,
    )


def _evaluate(scorer: "RewardScorer", rows: Sequence[Mapping[str, Any]], covers: CoverEmbeddings) -> RewardEvaluation:
    """Held-out pair accuracy overall, per cover group (k-means on every cover of ``covers``) and by margin."""
    embeddings = [covers.vectors[row["cover_id"]] for row in rows]
    # The rows were checked: every text is feature JSON, so every score is a number.
    chosen = cast(list[float], scorer.score(embeddings, [row["chosen"] for row in rows]))
    rejected = cast(list[float], scorer.score(embeddings, [row["rejected"] for row in rows]))
    return evaluate_pairs(
        correct=[better > worse for better, worse in zip(chosen, rejected, strict=True)],
        cover_ids=[row["cover_id"] for row in rows],
        margins=[row.get("margin") for row in rows],
        embeddings=covers.vectors,
    )


def _trainer_args(config: RewardTrainingConfig, workspace: str) -> RewardConfig:
    cuda = torch.cuda.is_available()
    return RewardConfig(
        output_dir=workspace,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        num_train_epochs=config.num_train_epochs,
        per_device_train_batch_size=config.per_device_train_batch_size,
        seed=config.seed,
        # The inputs are fixed-size vectors: nothing to truncate or filter by length.
        max_length=None,
        # The collator's columns are not the forward's argument names; TRL must hand the rows over as they are.
        remove_unused_columns=False,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        # TRL turns it on by default; a network this small keeps every activation.
        activation_checkpointing=False,
        # A model of a few hundred weights: half precision would save nothing and round the rewards.
        bf16=False,
        use_cpu=not cuda,
        dataloader_num_workers=0,
    )


# --- scoring ------------------------------------------------------------------------------------------------------


def read_reward_metadata(path: str | Path) -> dict[str, Any]:
    """The ``albumgen_reward.json`` of a reward checkpoint.

    Raises:
        ModelLoadError: the folder is not a reward checkpoint, or one of a format this code does not read.
    """
    meta_file = Path(path) / METADATA_FILE
    if not meta_file.is_file():
        raise ModelLoadError(f"{path} is not a reward model checkpoint: it has no {METADATA_FILE}")
    metadata: dict[str, Any] = json.loads(meta_file.read_text())
    if metadata.get("format_version") != FORMAT_VERSION or metadata.get("input_format") != INPUT_FORMAT:
        raise ModelLoadError(
            f"the reward checkpoint {path} has input format {metadata.get('input_format')!r}, which this release does "
            f"not read (it reads {INPUT_FORMAT}, which sees the cover): train a new reward model on the export"
        )
    return metadata


class RewardScorer:
    """A trained reward model: (cover embedding, captioner output) -> scalar reward, higher is preferred.

    The one scorer of the platform: captioner RL's reward function, the reward run's evaluation and
    ``python -m rlhf score`` all call ``score``.
    """

    def __init__(
        self, model: CoverRewardModel, encoder: FeatureEncoder, *, embedder_id: str, batch_size: int = SCORE_BATCH_SIZE
    ) -> None:
        self.model = model
        self.encoder = encoder
        self.embedder_id = embedder_id
        self.batch_size = batch_size

    @property
    def cover_dim(self) -> int:
        return int(self.model.config.cover_dim)

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> "RewardScorer":
        """Load a checkpoint written by ``train_reward_model``.

        Args:
            path: the checkpoint folder (must hold ``albumgen_reward.json``).
            device: default CUDA when available, else CPU.

        Raises:
            ModelLoadError: no metadata, another input format, unreadable weights, or weights of another architecture
                (an earlier release's model of the same input format, which transformers would fill in at random).
        """
        metadata = read_reward_metadata(path)
        encoder = FeatureEncoder.from_pretrained(path)
        try:
            # output_loading_info makes it a (model, info) pair, which transformers' annotation does not say.
            model, loading = cast(
                tuple[CoverRewardModel, dict[str, list[str]]],
                CoverRewardModel.from_pretrained(str(path), output_loading_info=True),
            )
        except OSError as exc:
            raise ModelLoadError(f"cannot load the reward model weights in {path}: {exc}") from exc
        if loading["missing_keys"] or loading["unexpected_keys"]:
            raise ModelLoadError(
                f"the reward checkpoint {path} holds the weights of another reward model architecture (an earlier "
                "release's, e.g. the MLP fusion) that this release does not read: train a new reward model on the "
                "export"
            )
        model.to(torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")))  # type: ignore[arg-type]  # transformers types .to as a wrapped call
        return cls(model.eval(), encoder, embedder_id=str(metadata["embedder_id"]))

    def score(
        self, cover_embeddings: Sequence[np.ndarray] | np.ndarray, completions: Sequence[str], *, invalid: str = "raise"
    ) -> list[float | None]:
        """Rewards for (cover embedding, captioner output) pairs, batched and without gradients.

        Args:
            cover_embeddings: one embedding per completion, from the checkpoint's embedder (``embedder_id``).
            completions: the captioner's output texts.
            invalid: ``"raise"`` (default) refuses text that is not feature JSON; ``"none"`` scores it None (captioner
                RL, where a validity reward judges the format).

        Raises:
            ValueError: lengths or embedding dimensions that do not match; with ``invalid="raise"`` a completion that
                is not feature JSON (``FeatureError``, naming it).
        """
        if len(cover_embeddings) != len(completions):
            raise ValueError(f"{len(cover_embeddings)} cover embeddings but {len(completions)} completions")
        if invalid not in ("raise", "none"):
            raise ValueError(f"invalid must be 'raise' or 'none', got {invalid!r}")
        encoded: list[list[float] | None] = []
        for index, text in enumerate(completions):
            try:
                encoded.append(self.encoder.encode_text(text))
            except FeatureError as exc:
                if invalid == "raise":
                    raise FeatureError(f"completion {index} is not the captioner's feature JSON: {exc}") from exc
                encoded.append(None)
        valid = [index for index, vector in enumerate(encoded) if vector is not None]
        scores: list[float | None] = [None] * len(completions)
        if not valid:
            return scores
        covers = np.asarray([cover_embeddings[index] for index in valid], dtype=np.float32)
        if covers.ndim != 2 or covers.shape[1] != self.cover_dim:
            raise ValueError(
                f"cover embeddings of shape {covers.shape[1:]} given; this reward model reads {self.cover_dim}-d "
                f"embeddings of {self.embedder_id}"
            )
        features = np.asarray([encoded[index] for index in valid], dtype=np.float32)
        for index, value in zip(valid, self._rewards(covers, features), strict=True):
            scores[index] = value
        return scores

    @torch.inference_mode()
    def _rewards(self, covers: np.ndarray, features: np.ndarray) -> list[float]:
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        values: list[float] = []
        try:
            for start in range(0, len(covers), self.batch_size):
                logits = self.model(
                    cover_embeds=torch.from_numpy(covers[start : start + self.batch_size]).to(device),
                    features=torch.from_numpy(features[start : start + self.batch_size]).to(device),
                ).logits
                values.extend(logits[:, 0].float().cpu().tolist())
        finally:
            self.model.train(was_training)
        return values
