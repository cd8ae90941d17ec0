"""Supervised fine-tuning of the captioner's LoRA adapter on the catalog (the paper's section 3.4), with TRL.

Each training row is a catalog cover, the instruction the captioner sees at generation time (zero-shot, or with the
retrieval context of its neighbours, the cover itself excluded) and, as the answer, the album's own features as
JSON. Rows are stored in TRL's conversational vision format (``messages`` + ``images``); for training they are
split into ``prompt`` (the user turn) and ``completion`` (the assistant turn), so that TRL computes the loss on the
JSON only and the captioner does not spend capacity learning to repeat its instruction.
"""

import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import TrainerCallback

from generation.caption import Captioner
from generation.embed import Embedder
from generation.features import AcousticFeatures
from generation.images import load_cover_image
from generation.instruction import build_instruction
from generation.musicoset import Album
from generation.retrieve import RetrievalIndex, rag_instruction
from rlhf.sft_config import CONTEXTS, CaptionerSFTConfig


@dataclass(frozen=True)
class CatalogCover:
    """A catalog album of the train split with its cover file and its true (aggregated) features."""

    album_id: str
    cover_path: str
    features: AcousticFeatures

    @classmethod
    def of(cls, album: Album) -> "CatalogCover":
        """The catalog album, which must have a cover."""
        if album.cover_path is None:
            raise ValueError(f"album {album.album_id} has no cover")
        return cls(album.album_id, str(album.cover_path), album.features)


def sft_rows(
    albums: Iterable[CatalogCover],
    *,
    embedder: Embedder,
    index: RetrievalIndex,
    context: str = "rag",
    top_k: int = 5,
) -> Iterator[dict[str, Any]]:
    """Training rows in TRL's conversational vision format, one per album (two with ``context="both"``).

    Args:
        albums: the covers to learn from, with their albums' features as the target.
        embedder: the pipeline's image embedder (the index was built with it).
        index: the catalog's retrieval index; an album is never its own neighbour.
        context: ``rag`` (default; the instruction holds the neighbours' mean features, as at generation time),
            ``zero-shot`` or ``both``.
        top_k: neighbours in the RAG context, default 5 (the pipeline's default).
    """
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}; choose one of {', '.join(CONTEXTS)}")
    genres = index.genres
    for album in albums:
        instructions = []
        if context in ("zero-shot", "both"):
            instructions.append(("zero-shot", build_instruction(genres=genres)))
        if context in ("rag", "both"):
            embedding = embedder.embed([load_cover_image(album.cover_path)])[0]
            neighbours = index.search(embedding, k=top_k, exclude=[album.album_id])
            instructions.append(("rag", rag_instruction(genres, neighbours)))
        for name, instruction in instructions:
            yield chat_row(album.cover_path, album.album_id, instruction, album.features.to_json(), name)


def chat_row(cover_path: str, album_id: str, instruction: str, answer: str, context: str) -> dict[str, Any]:
    """One row in TRL's conversational vision format: the cover and the instruction, then the answer.

    ``album_id`` and ``context`` (which instruction it is) ride along for snapshots and evaluation.
    """
    return {
        "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
        "images": [cover_path],
        "album_id": album_id,
        "context": context,
    }


@dataclass
class SFTResult:
    adapter_path: Path
    train_rows: int
    trainable_parameters: int
    total_parameters: int
    loss_history: list[tuple[int, float]]
    config: dict[str, Any]

    @property
    def first_loss(self) -> float | None:
        return self.loss_history[0][1] if self.loss_history else None

    @property
    def last_loss(self) -> float | None:
        return self.loss_history[-1][1] if self.loss_history else None


class _LossRecorder(TrainerCallback):
    def __init__(self) -> None:
        self.history: list[tuple[int, float]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.history.append((state.global_step, float(logs["loss"])))


def prompt_completion_dataset(rows: Sequence[dict[str, Any]]) -> Dataset:
    """Stored ``messages`` rows -> TRL prompt/completion rows with the covers decoded."""
    for row in rows:
        if [m["role"] for m in row["messages"]] != ["user", "assistant"]:
            raise ValueError(f"row of album {row.get('album_id')} is not one user turn and one assistant turn")
    records = {
        "prompt": [row["messages"][:-1] for row in rows],
        "completion": [row["messages"][-1:] for row in rows],
        # Decoded as the pipeline decodes covers (validated, RGB), so training sees what generation sees.
        "images": [[load_cover_image(path) for path in row["images"]] for row in rows],
    }
    return Dataset.from_dict(records)


def train_captioner_sft(
    config: CaptionerSFTConfig,
    *,
    captioner: Captioner,
    rows: Sequence[dict[str, Any]],
    output_dir: str | Path,
    callbacks: Sequence[TrainerCallback] = (),
) -> SFTResult:
    """Fine-tune a LoRA adapter on the captioner's language model with TRL's ``SFTTrainer``.

    Args:
        config: LoRA and optimisation settings; defaults are the paper's.
        captioner: the base captioner (no adapter): the adapter records its model id as its base.
        rows: from ``sft_rows`` (or a stored SFT snapshot).
        output_dir: where the adapter is saved; written only when training succeeded.
        callbacks: transformers ``TrainerCallback`` instances (progress, cancel).

    Raises:
        ValueError: no rows, a captioner that already carries an adapter, malformed rows.
    """
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    if not rows:
        raise ValueError("the SFT split has no rows: no catalog cover of the train split has a cover image")
    if captioner.adapter_path is not None:
        raise ValueError("SFT starts from a base captioner; this one already carries an adapter")
    dataset = prompt_completion_dataset(rows)
    output = Path(output_dir)
    recorder = _LossRecorder()
    with tempfile.TemporaryDirectory(prefix="sft-", dir=output.parent if output.parent.exists() else None) as tmp:
        args = SFTConfig(
            output_dir=tmp,
            learning_rate=config.learning_rate,
            lr_scheduler_type=config.lr_scheduler_type,
            warmup_steps=config.warmup_ratio,  # transformers 5: a float below 1 is a ratio of the total steps
            num_train_epochs=config.num_train_epochs,
            per_device_train_batch_size=config.per_device_train_batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            seed=config.seed,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            max_length=None,  # truncating would cut image tokens; the feature JSON is short
            bf16=False,
            use_cpu=not torch.cuda.is_available(),
            gradient_checkpointing=False,
            dataloader_num_workers=0,
            remove_unused_columns=False,
        )
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.lora_target,
            task_type="CAUSAL_LM",
        )
        trainer = SFTTrainer(
            model=captioner.model,
            args=args,
            train_dataset=dataset,
            processing_class=captioner.processor,
            peft_config=lora,
            callbacks=[recorder, *callbacks],
        )
        model: Any = trainer.model
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        trainer.train()
        staged = Path(tmp) / "adapter"
        model.save_pretrained(staged)
        if output.exists():
            shutil.rmtree(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), output)
    return SFTResult(
        adapter_path=output,
        train_rows=len(rows),
        trainable_parameters=trainable,
        total_parameters=total,
        loss_history=recorder.history,
        config=asdict(config),
    )
