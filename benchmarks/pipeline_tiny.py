"""Variants per second through the whole pipeline on the tiny profile (CPU), batched vs one by one, per stage.

Needs an index: python -m generation build-index (default var/index/tiny).
Usage: python benchmarks/pipeline_tiny.py [--covers 3] [--variants 4] [--duration 10] [--renderer synth]
"""

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from generation.__main__ import default_index_dir  # noqa: E402
from generation.config import RENDERERS, PipelineConfig  # noqa: E402
from generation.images import load_cover_image  # noqa: E402
from generation.pipeline import Pipeline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--covers", type=int, default=3)
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--renderer", choices=RENDERERS, default="synth")
    parser.add_argument("--index", type=Path, default=default_index_dir("tiny"))
    args = parser.parse_args()

    pipeline = Pipeline.load(PipelineConfig(renderer=args.renderer, duration_s=args.duration), index_dir=args.index)
    covers = [load_cover_image(p) for p in sorted((ROOT / "fixtures/musicoset/covers").glob("*.png"))[: args.covers]]
    pipeline.run(covers[0], variants=1, seed=0)  # warm-up: first calls compile the grammar and allocate

    for label, calls in (("batched", [(args.variants, 0)]), ("one-by-one", [(1, i) for i in range(args.variants)])):
        stages: dict[str, float] = defaultdict(float)
        began = time.perf_counter()
        for cover in covers:
            for variants, seed in calls:
                for stage, seconds in pipeline.run(cover, variants=variants, seed=seed).timings.items():
                    stages[stage] += seconds
        total = time.perf_counter() - began
        produced = len(covers) * args.variants
        per_stage = ", ".join(f"{stage} {seconds / produced * 1000:.0f}" for stage, seconds in stages.items())
        print(
            f"{label:>10}: {produced / total:5.2f} variants/s ({produced} variants, {total:.1f} s); "
            f"ms per variant: {per_stage}"
        )


if __name__ == "__main__":
    main()
