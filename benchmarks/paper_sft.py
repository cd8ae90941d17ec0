"""The paper's SFT experiment in small: the describer's held-out table before and after LoRA SFT on the demo catalog.

LoRA SFT teaches a captioner that describes music in words to write the acoustic features as JSON, as the paper's
section 3.4 taught InternVL3-1B on MusicOSet.

The base is the describer (``fixtures/small/describer``, ``fixtures/small/DESCRIBER.md``): the trained captioner's
architecture and recipe, trained on another synthetic catalog to describe a cover's music in words, never shown the
pipeline's JSON instruction. Both stages run the product's code: the SFT is ``python -m rlhf train-captioner``'s
(``rlhf.local.train_captioner_locally``: TRL's ``SFTTrainer`` with a PEFT LoRA on the language model's attention), the
evaluation ``python -m generation evaluate``'s (``generation.evaluate.evaluate``, greedy decoding, the index over the
demo catalog built by the trained CLIP). Printed: the held-out table of the base, of the base + SFT adapter, and the
retrieval baseline (the paper's 21/107 -> 75/107 valid JSON is the "unconstrained" rows' column).

Usage: python benchmarks/paper_sft.py [--out var/paper-sft] [--limit 0] [any flag of python -m rlhf train-captioner]
The defaults are ``SMALL_SETTINGS``; ``--lora-r 4 --lora-alpha 8 --learning-rate 4e-5 --num-train-epochs 1 --context
rag`` are the paper's.
"""

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generation.caption import Captioner  # noqa: E402 - after the path set-up
from generation.config import PipelineConfig  # noqa: E402
from generation.embed import Embedder  # noqa: E402
from generation.evaluate import evaluate  # noqa: E402
from generation.musicoset import Album, read_musicoset  # noqa: E402
from generation.pipeline import Pipeline, index_albums, load_embedder  # noqa: E402
from generation.retrieve import RetrievalIndex  # noqa: E402
from generation.synth import SynthRenderer  # noqa: E402
from rlhf.__main__ import add_config_arguments, config_from_args  # noqa: E402
from rlhf.local import train_captioner_locally  # noqa: E402
from rlhf.sft_config import CaptionerSFTConfig  # noqa: E402

DESCRIBER = ROOT / "fixtures" / "small" / "describer"
CATALOG = ROOT / "fixtures" / "musicoset"
# The settings that work at this size (the paper's, rank 4 at lr 4e-5 for one epoch, do not move 1.6M weights):
# measured in the README's evaluation section.
SMALL_SETTINGS = {"lora_r": 8, "lora_alpha": 16, "learning_rate": 2e-3, "num_train_epochs": 5.0, "context": "both"}


@dataclass
class Experiment:
    """The held-out tables (``generation.evaluate.evaluate`` rows) of the describer and of it with the SFT adapter."""

    base: list[dict[str, object]]
    tuned: list[dict[str, object]]
    report: list[str]  # what ``python -m rlhf train-captioner`` prints
    sft_seconds: float
    adapter: Path


def held_out_rows(
    config: PipelineConfig, albums: Sequence[Album], index: RetrievalIndex, embedder: Embedder
) -> list[dict[str, object]]:
    """``python -m generation evaluate``'s table for one captioner (base, or base + adapter)."""
    captioner = Captioner.from_pretrained(config.checkpoint("captioner"), adapter_path=config.adapter, device="cpu")
    pipeline = Pipeline(config=config, embedder=embedder, index=index, captioner=captioner, renderer=SynthRenderer())
    return evaluate(pipeline, albums)


def run_experiment(sft: CaptionerSFTConfig, *, catalog: Path, out: Path, limit: int = 0) -> Experiment:
    """Evaluate the describer on the catalog's test split, LoRA-SFT it on the train split into ``out``, evaluate again.

    Args:
        limit: evaluate the first this many test covers (0: all).
    """
    base = PipelineConfig(profile="trained", captioner=str(DESCRIBER))
    albums = [album for album in read_musicoset(catalog).albums if album.cover_path is not None]
    held_out = [album for album in albums if album.split == "test"][: limit or None]
    embedder = load_embedder(base)
    index = index_albums(albums, embedder)
    base_rows = held_out_rows(base, held_out, index, embedder)
    started = time.perf_counter()
    report = train_captioner_locally(sft, catalog=catalog, profile="trained", captioner=str(DESCRIBER), out=out)
    seconds = time.perf_counter() - started
    tuned = PipelineConfig(profile="trained", captioner=str(DESCRIBER), adapter=str(out / "adapter"))
    return Experiment(base_rows, held_out_rows(tuned, held_out, index, embedder), report, seconds, out / "adapter")


def cell(row: dict[str, object]) -> str:
    mse = f"{row['mse']:.4f}" if row["mse"] is not None else "-"
    accuracy = f"{row['genre_accuracy']:.0%}" if row["genre_accuracy"] is not None else "-"
    return f"{row['valid']}/{row['attempted']} | {mse} | {accuracy}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "paper-sft", help="adapter folder's parent")
    parser.add_argument("--catalog", type=Path, default=CATALOG, help="MusicOSet folder (default the demo catalog)")
    parser.add_argument("--limit", type=int, default=0, help="held-out covers to evaluate (0: the whole test split)")
    add_config_arguments(parser, CaptionerSFTConfig)  # every flag of python -m rlhf train-captioner
    parser.set_defaults(**SMALL_SETTINGS)
    args = parser.parse_args()
    sft = config_from_args(CaptionerSFTConfig, args)
    experiment = run_experiment(sft, catalog=args.catalog, out=args.out, limit=args.limit)
    print("\n".join(experiment.report))
    print(
        f"SFT: rank {sft.lora_r}, alpha {sft.lora_alpha}, lr {sft.learning_rate}, {sft.lr_scheduler_type}, "
        f"warm-up {sft.warmup_ratio}, {sft.num_train_epochs:g} epochs, batch {sft.per_device_train_batch_size}, "
        f"context {sft.context}, LoRA on {sft.lora_target}: {experiment.sft_seconds:.0f} s"
    )
    print(f"\n{experiment.base[0]['attempted']} held-out covers of {args.catalog} (greedy decoding)\n")
    print("| method | describer: valid JSON / MSE (scaled) / genre | + LoRA SFT: valid JSON / MSE / genre |")
    print("|---|---|---|")
    for before, after in zip(experiment.base, experiment.tuned, strict=True):
        tuned = "(the same)" if str(before["method"]).startswith("retrieval") else cell(after)
        print(f"| {before['method']} | {cell(before)} | {tuned} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
