"""Command line: ``python -m generation {run,build-index,evaluate} ...`` (``--help`` on each)."""

import argparse
import json
import os
import sys
from pathlib import Path

from generation.caption import AdapterMismatchError
from generation.config import PROFILES, RENDERERS, PipelineConfig
from generation.features import FeatureError
from generation.images import CoverImageError, load_cover_image
from generation.loading import ModelLoadError
from generation.musicoset import MusicOSetError, read_musicoset
from generation.pipeline import Pipeline, index_albums, load_embedder, save_cover_result
from generation.retrieve import IndexMismatchError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CATALOG = REPO / "fixtures" / "musicoset"


def default_index_dir(profile: str) -> Path:
    var = Path(os.environ.get("ALBUMGEN_VAR_DIR", REPO / "var"))
    return var / "index" / profile


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="tiny",
        help="tiny twins, the small trained models or pretrained (default tiny)",
    )
    parser.add_argument("--embedder", help="CLIP hub id or local path (overrides the profile)")
    parser.add_argument("--captioner", help="vision-language model hub id or local path (overrides the profile)")
    parser.add_argument("--adapter", help="PEFT LoRA adapter directory for the captioner")
    parser.add_argument("--index", type=Path, help="retrieval index directory (default var/index/<profile>)")
    parser.add_argument("--top-k", type=int, default=5, help="neighbours for the RAG context (default 5)")


def cmd_run(args: argparse.Namespace) -> None:
    config = PipelineConfig(
        profile=args.profile,
        renderer=args.renderer,
        embedder=args.embedder,
        captioner=args.captioner,
        adapter=args.adapter,
        musicgen=args.musicgen,
        top_k=args.top_k,
        rag=not args.zero_shot,
        constrained=not args.unconstrained,
        temperature=args.temperature,
        duration_s=args.duration,
    )
    image = load_cover_image(args.cover)
    pipeline = Pipeline.load(config, index_dir=args.index or default_index_dir(args.profile))
    result = pipeline.run(image, variants=args.variants, seed=args.seed)
    report = save_cover_result(result, args.out)
    valid = sum(v["features"] is not None for v in report["variants"])
    print(
        f"{valid}/{len(report['variants'])} variants rendered into {args.out} (report.json); "
        f"timings: {report['timings_s']}"
    )


def cmd_build_index(args: argparse.Namespace) -> None:
    config = PipelineConfig(profile=args.profile, embedder=args.embedder)
    catalog = read_musicoset(args.catalog, covers_dir=args.covers)
    albums = [album for album in catalog.albums if album.cover_path is not None]
    if not albums:
        raise MusicOSetError(f"no album in {args.catalog} has a cover image to index")
    embedder = load_embedder(config)
    out = args.out or default_index_dir(args.profile)
    index_albums(albums, embedder).save(out)
    print(f"indexed {len(albums)} covers ({len(catalog.genres)} genres) with {embedder.model_id} into {out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from generation.evaluate import evaluate, format_table

    config = PipelineConfig(
        profile=args.profile, embedder=args.embedder, captioner=args.captioner, adapter=args.adapter, top_k=args.top_k
    )
    catalog = read_musicoset(args.catalog)
    albums = [album for album in catalog.albums if album.split == args.split][: args.limit]
    pipeline = Pipeline.load(config, index_dir=args.index or default_index_dir(args.profile))
    rows = evaluate(pipeline, albums, seed=args.seed, unconstrained=not args.constrained_only, greedy=not args.sample)
    print(
        f"{len(albums)} covers of the {args.split} split, captioner {pipeline.captioner.model_id}"
        f"{' + ' + args.adapter if args.adapter else ''}"
    )
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generation", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="generate variants for one cover and write audio + report.json")
    run.add_argument("cover", type=Path, help="cover image file")
    run.add_argument("--variants", type=int, default=4, help="variants (default 4)")
    run.add_argument("--seed", type=int, default=0, help="round seed (default 0)")
    run.add_argument("--renderer", choices=RENDERERS, default="synth", help="default synth (offline)")
    run.add_argument("--musicgen", help="MusicGen hub id or local path (overrides the profile)")
    run.add_argument("--duration", type=float, default=10.0, help="seconds of audio per variant (default 10)")
    run.add_argument("--temperature", type=float, default=1.0, help="captioner sampling temperature (default 1)")
    run.add_argument("--zero-shot", action="store_true", help="no retrieval context")
    run.add_argument("--unconstrained", action="store_true", help="decode without the JSON schema (comparison)")
    run.add_argument("--out", type=Path, required=True, help="output directory")
    add_model_options(run)
    run.set_defaults(handler=cmd_run)

    build = commands.add_parser("build-index", help="embed a MusicOSet catalog's covers into a FAISS index")
    build.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG, help="MusicOSet directory (default fixture)")
    build.add_argument("--covers", type=Path, help="folder of <album_id>.<jpg|png|webp> covers")
    build.add_argument("--out", type=Path, help="index directory (default var/index/<profile>)")
    build.add_argument("--profile", choices=PROFILES, default="tiny")
    build.add_argument("--embedder", help="CLIP hub id or local path (overrides the profile)")
    build.set_defaults(handler=cmd_build_index)

    ev = commands.add_parser("evaluate", help="valid-JSON rate and MSE on a catalog split, zero-shot vs RAG")
    ev.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG, help="MusicOSet directory (default fixture)")
    ev.add_argument("--split", default="test", choices=("train", "test"), help="default test")
    ev.add_argument("--limit", type=int, help="evaluate at most this many covers")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument(
        "--sample", action="store_true", help="score one sample per cover (temperature 1) instead of greedy decoding"
    )
    ev.add_argument("--constrained-only", action="store_true", help="skip the unconstrained decoding")
    ev.add_argument("--json", type=Path, help="also write the table as JSON")
    add_model_options(ev)
    ev.set_defaults(handler=cmd_evaluate)

    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except (
        CoverImageError,
        FeatureError,
        MusicOSetError,
        ModelLoadError,
        AdapterMismatchError,
        IndexMismatchError,
        FileNotFoundError,
        ValueError,
    ) as exc:
        print(f"error: {str(exc).rstrip('.')}.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
