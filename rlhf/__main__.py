"""Command line: ``python -m rlhf {simulate,train-captioner,train-reward,score,oracle,tune-captioner} ...``.

Exit status: 0 when everything worked, 1 when the server could not be used or any step failed, 2 for bad options.
"""

import argparse
import dataclasses
import logging
import os
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

# Only what every subcommand needs is imported here; each handler imports its own (torch, TRL) when it runs.


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One ``--flag`` per field of a config dataclass, with the field's ``help`` metadata and default.

    A field without a default is a required flag; ``X | None`` fields take an X; ``bool`` fields are
    ``--flag/--no-flag``; ``Literal[...]`` fields take one of their values; ``list[X]`` fields take any number of X.
    """
    hints = typing.get_type_hints(config_class)
    for item in dataclasses.fields(config_class):
        kind: Any = hints[item.name]
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        options: dict[str, Any] = {"help": item.metadata.get("help")}
        if item.default is not dataclasses.MISSING:
            options["default"] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            options["default"] = item.default_factory()
        else:
            options["required"] = True
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is typing.Literal:
            options["choices"] = typing.get_args(kind)
            options["type"] = type(options["choices"][0])
        elif typing.get_origin(kind) is list:
            options["nargs"], options["type"] = "*", (typing.get_args(kind) or (str,))[0]
        else:
            options["type"] = kind
        parser.add_argument("--" + item.name.replace("_", "-"), **options)


def config_from_args(config_class: type, args: argparse.Namespace) -> Any:
    return config_class(**{item.name: getattr(args, item.name) for item in dataclasses.fields(config_class)})


def _say(message: str, *, error: bool = False) -> None:
    stream = sys.stderr if error else sys.stdout
    stream.write(message + "\n")


def _fail(args: argparse.Namespace, error: Exception | str, code: int) -> int:
    """Say why the command stopped, as one sentence after its name, and return its exit status."""
    _say(f"{args.command}: {str(error).rstrip('.')}.", error=True)
    return code


def cmd_simulate(args: argparse.Namespace) -> int:
    from rlhf.simulate import PreferenceError, SimulateConfig, SimulationError, simulate

    args.admin_token = args.admin_token or os.environ.get("ALBUMGEN_ADMIN_TOKEN", "")
    try:
        config = config_from_args(SimulateConfig, args)
        result = simulate(config)
    except (PreferenceError, ValueError) as exc:
        return _fail(args, exc, 2)
    except SimulationError as exc:
        return _fail(args, exc, 1)
    for labeler in result.labelers:
        _say(f"  {labeler.username}: {labeler.submitted} submitted, {labeler.errors} errors")
    for message in result.messages[:10]:
        _say(f"  error: {message}", error=True)
    _say(
        f"simulate: {len(result.labelers)} labelers submitted {result.submitted} assignments with {result.errors} "
        f"errors in {result.elapsed_s:.1f} s (preference {config.preference}, noise {config.noise:g}, "
        f"server {config.server})."
    )
    return 1 if result.errors else 0


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that send the run to a studio's train queue instead of training here."""
    parser.add_argument("--server", help="studio URL: launch the run on its train queue instead of training here")
    parser.add_argument("--admin-token", default="", help="staff API token (default: ALBUMGEN_ADMIN_TOKEN)")
    parser.add_argument("--name", default="", help="with --server: name of the model version the run registers")
    parser.add_argument("--no-wait", action="store_true", help="with --server: queue the run and return at once")


def launch_and_follow(args: argparse.Namespace, *, kind: str, config: Any, **related: int | None) -> int:
    from rlhf.launch import LaunchError, Studio, run_follow, run_launch

    studio = Studio(args.server, args.admin_token or os.environ.get("ALBUMGEN_ADMIN_TOKEN", ""))

    def report(state: dict[str, Any]) -> None:
        curves = {name: points[-1][1] for name, points in state["curves"].items() if points}
        shown = ", ".join(f"{name} {value:.4g}" for name, value in list(curves.items())[:4])
        _say(f"  [{state['status']}] step {state['step']}/{state['total_steps'] or '?'} {shown}".rstrip())

    try:
        run = run_launch(studio, kind=kind, name=args.name, config=dataclasses.asdict(config), **related)
        _say(f"{kind} run {run['id']} queued on {args.server} (run page: /studio/admin/training/runs/{run['id']}/)")
        if args.no_wait:
            return 0
        final = run_follow(studio, run["id"], report=report)
    except LaunchError as exc:
        return _fail(args, exc, 1)
    if final["status"] != "succeeded":
        _say(f"{args.command}: run {final['id']} {final['status']}: {final['failure_reason']}", error=True)
        return 1
    version = final["result_version_id"]
    _say(f"run {final['id']} succeeded" + (f"; registered model version {version}" if version else ""))
    return 0


def cmd_train_captioner(args: argparse.Namespace) -> int:
    from rlhf.sft_config import CaptionerSFTConfig

    try:
        config = config_from_args(CaptionerSFTConfig, args)
    except ValueError as exc:
        return _fail(args, exc, 2)
    if args.server:
        if args.parent_version is None:
            _say("train-captioner: with --server, name the base captioner version (--parent-version ID).", error=True)
            return 2
        return launch_and_follow(args, kind="sft", config=config, parent_version_id=args.parent_version)
    if args.out is None:
        _say("train-captioner: give --out DIR for the adapter (or --server to train on the studio).", error=True)
        return 2
    from rlhf.local import LocalRunError, train_captioner_locally

    try:
        report = train_captioner_locally(
            config, catalog=args.catalog, profile=args.profile, captioner=args.captioner, out=args.out
        )
    except LocalRunError as exc:
        return _fail(args, exc, 2)
    for line in report:
        _say(line)
    return 0


def cmd_train_reward(args: argparse.Namespace) -> int:
    from rlhf.config import RewardTrainingConfig

    try:
        config = config_from_args(RewardTrainingConfig, args)
    except ValueError as exc:
        return _fail(args, exc, 2)
    if args.server:
        if args.export is None:
            _say("train-reward: with --server, name the preference export (--export ID).", error=True)
            return 2
        return launch_and_follow(args, kind="reward", config=config, dataset_export_id=args.export)
    if args.dataset is None or args.out is None:
        _say("train-reward: give --dataset FILE and --out DIR (or --server with --export ID).", error=True)
        return 2
    from generation.loading import ModelLoadError
    from rlhf.reward import train_reward_model
    from rlhf.reward_evaluation import evaluation_lines

    try:
        covers = _cover_embeddings(args, args.dataset, config.cover_encoder)
        result = train_reward_model(config, args.dataset, covers, args.out)
    except (ValueError, OSError, ModelLoadError) as exc:
        return _fail(args, exc, 2)
    _say(
        f"{result.train_pairs} training pairs ({result.train_covers} covers), {result.eval_pairs} held out "
        f"({result.eval_covers} covers); {result.steps} steps in {result.train_seconds:.1f} s; "
        f"{result.trainable_parameters:,} trainable parameters; reward model in {result.output_dir}"
    )
    if result.evaluation_before and result.evaluation_after:
        _say(f"before training: held-out pair accuracy {result.evaluation_before.overall.accuracy:.3f}")
        for line in evaluation_lines(result.evaluation_after):
            _say(line)
    return 0


def _cover_embeddings(args: argparse.Namespace, dataset: str, cover_encoder: str) -> Any:
    """The covers of a local dataset, as ``cover_encoder`` reads them: from ``--covers FILE``, else the export's
    ``covers.parquet`` beside the pairs, else embedded from the pairs' images with the CLIP ``--embedder``."""
    from pathlib import Path

    from rlhf.reward import embed_covers, load_preference_rows, read_cover_embeddings

    beside = Path(dataset).with_name("covers.parquet")
    if args.covers or (beside.is_file() and not args.embedder):
        return read_cover_embeddings(args.covers or beside).for_encoder(cover_encoder)
    if not args.embedder:
        raise ValueError(
            f"no cover embeddings: give --covers covers.parquet (an export's) or --embedder tiny|CLIP-ID to embed "
            f"the pairs' images ({beside} does not exist)"
        )
    if cover_encoder != "clip":
        raise ValueError(
            f"--embedder embeds the covers with a CLIP: it takes --cover-encoder clip, not {cover_encoder}"
        )
    from generation.config import TINY_DIR
    from generation.embed import Embedder

    embedder = (
        Embedder.from_config(TINY_DIR / "clip") if args.embedder == "tiny" else Embedder.from_pretrained(args.embedder)
    )
    return embed_covers(load_preference_rows(dataset), embedder)


def cmd_score(args: argparse.Namespace) -> int:
    import csv
    import json
    from pathlib import Path

    from generation.loading import ModelLoadError
    from rlhf.reward import RewardScorer, load_preference_rows, read_cover_embeddings

    export = Path(args.export)
    try:
        scorer = RewardScorer.load(args.checkpoint)
        rows = load_preference_rows(export / "pairs.jsonl")
        covers = read_cover_embeddings(export / "covers.parquet").of(scorer.embedder_id)
    except (ValueError, OSError, ModelLoadError) as exc:
        return _fail(args, exc, 2)
    variants: dict[int, tuple[int, str]] = {}
    for row in rows:
        for side in ("chosen", "rejected"):
            variants.setdefault(int(row[f"{side}_variant_id"]), (int(row["cover_id"]), row[side]))
    missing = sorted({cover for cover, _ in variants.values() if cover not in covers.vectors})
    if missing:
        return _fail(args, f"{len(missing)} cover(s) of the export have no embedding (first: cover {missing[0]})", 2)
    ids = sorted(variants)
    scores = scorer.score([covers.vectors[variants[i][0]] for i in ids], [variants[i][1] for i in ids])
    table = [
        {"variant_id": i, "cover_id": variants[i][0], "score": score} for i, score in zip(ids, scores, strict=True)
    ]
    out = open(args.out, "w", newline="") if args.out else sys.stdout  # noqa: SIM115 - stdout is not closed
    try:
        if args.format == "json":
            out.write(json.dumps(table, indent=2) + "\n")
        else:
            writer = csv.DictWriter(out, fieldnames=["variant_id", "cover_id", "score"])
            writer.writeheader()
            writer.writerows(table)
    finally:
        if args.out:
            out.close()
    if args.out:
        _say(f"scored {len(table)} variants of {len({v[0] for v in variants.values()})} covers into {args.out}")
    return 0


def cmd_oracle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from generation.loading import ModelLoadError
    from rlhf.oracle import OracleError, oracle_ceiling, read_oracle_scores
    from rlhf.reward import load_preference_rows, read_reward_metadata

    try:
        metadata = read_reward_metadata(args.checkpoint)
        scores = read_oracle_scores(args.oracle)
        rows = load_preference_rows(Path(args.export) / "pairs.jsonl")
    except (ValueError, OSError, ModelLoadError, OracleError) as exc:
        return _fail(args, exc, 2)
    held_out = set(metadata["eval_cover_ids"])
    if not held_out:
        return _fail(args, "the reward model held out no covers (eval_fraction 0): there is nothing to compare", 2)
    evaluation = metadata["metrics"]["evaluation_after"]
    groups = {int(cover): f"group {group + 1}" for cover, group in evaluation["cover_groups"].items()}
    ceiling = oracle_ceiling([row for row in rows if row["cover_id"] in held_out], scores, groups=groups)
    if ceiling.accuracy is None:
        return _fail(args, "no held-out pair has both variants in the oracle file: is it this export's simulation?", 2)
    _say(
        f"oracle ceiling on the {ceiling.pairs} held-out pairs: {ceiling.accuracy:.3f}; the reward model: "
        f"{evaluation['overall']['accuracy']:.3f} ({ceiling.missing} pair(s) without oracle scores left out)"
    )
    for name, group in sorted(ceiling.groups.items()):
        model = evaluation["groups"].get(name, {}).get("accuracy")
        shown = f"{model:.3f}" if model is not None else "-"
        _say(f"  cover {name}: oracle ceiling {group.accuracy:.3f} on {group.pairs} pairs; the reward model {shown}")
    return 0


def cmd_tune_captioner(args: argparse.Namespace) -> int:
    from rlhf.captioner_rl import CaptionerRLConfig

    try:
        config = config_from_args(CaptionerRLConfig, args)
    except ValueError as exc:
        return _fail(args, exc, 2)
    if not args.server or args.parent_version is None or args.reward_version is None:
        _say(
            "tune-captioner: runs on a studio (its covers, index and reward model): give --server, "
            "--parent-version ID and --reward-version ID.",
            error=True,
        )
        return 2
    return launch_and_follow(
        args, kind="rl", config=config, parent_version_id=args.parent_version, reward_version_id=args.reward_version
    )


def build_parser() -> argparse.ArgumentParser:
    from generation.config import PROFILES
    from rlhf.simulate import SimulateConfig

    parser = argparse.ArgumentParser(prog="python -m rlhf", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step (and every HTTP request)")
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser(
        "simulate",
        help="simulated labelers with a hidden preference label through the studio's HTTP API",
        description="Create labeler accounts with an admin token and label every task they can get: score each "
        "variant with a hidden preference (cover, features) -> 0-1 plus Gaussian noise, rate by fifths of the "
        "score, rank by it, submit. See rlhf/simulate.py and rlhf/preferences.py.",
    )
    add_config_arguments(simulate, SimulateConfig)
    simulate.set_defaults(handler=cmd_simulate)

    from rlhf.sft_config import CaptionerSFTConfig

    sft = commands.add_parser(
        "train-captioner",
        help="LoRA SFT of the captioner on the catalog (the paper's section 3.4), here or on a studio",
        description="Fine-tune a LoRA adapter on the captioner's language model with TRL's SFTTrainer: each catalog "
        "cover of the train split with the captioner's instruction (RAG context of its neighbours, itself excluded) "
        "and its album's features as the answer. Defaults are the paper's settings. With --server the run goes to "
        "the studio's train queue and registers a captioner version; without it, it trains here on a MusicOSet "
        "folder and writes the adapter to --out.",
    )
    add_config_arguments(sft, CaptionerSFTConfig)
    add_launch_arguments(sft)
    sft.add_argument("--parent-version", type=int, help="with --server: id of the base captioner version")
    sft.add_argument("--catalog", default="fixtures/musicoset", help="locally: MusicOSet folder (default fixture)")
    sft.add_argument("--profile", choices=PROFILES, default="tiny", help="locally: model profile")
    sft.add_argument("--captioner", help="locally: captioner hub id or path (overrides the profile)")
    sft.add_argument("--out", help="locally: folder for the adapter and the SFT set snapshot")
    sft.set_defaults(handler=cmd_train_captioner)

    from rlhf.captioner_rl import CaptionerRLConfig
    from rlhf.config import RewardTrainingConfig

    reward = commands.add_parser(
        "train-reward",
        help="reward model on preference pairs with TRL's RewardTrainer, here or on a studio",
        description="Train the cover-aware reward model (format albumgen-reward-v2: the cover's embedding by the "
        "CLIP or the captioner's vision tower, and the variant's features) on TRL preference pairs; held-out pair "
        "accuracy by cover, per cover group and by margin. With --server it trains on a studio's export and "
        "registers a reward version.",
    )
    add_config_arguments(reward, RewardTrainingConfig)
    add_launch_arguments(reward)
    reward.add_argument("--export", type=int, help="with --server: id of the preference export")
    reward.add_argument("--dataset", help="locally: pairs.jsonl or pairs.parquet of an export")
    reward.add_argument("--out", help="locally: folder for the reward model")
    reward.add_argument(
        "--covers", help="locally: the export's covers.parquet (default: the one beside --dataset, if there is one)"
    )
    reward.add_argument(
        "--embedder",
        help="locally, without covers.parquet: embed the pairs' cover images with this CLIP (a hub id, a folder, or "
        "tiny for the tiny profile's twin); for --cover-encoder clip",
    )
    reward.set_defaults(handler=cmd_train_reward)

    score = commands.add_parser(
        "score",
        help="score every variant of a preference export with a reward model (CSV or JSON)",
        description="Score each distinct variant of an export (its pairs.jsonl and covers.parquet) with the reward "
        "model that RL and the reward runs' evaluation use; one row per variant: variant_id, cover_id, score.",
    )
    score.add_argument("--checkpoint", required=True, help="the reward model folder (a reward version's path)")
    score.add_argument("--export", required=True, help="the export folder (with pairs.jsonl and covers.parquet)")
    score.add_argument("--format", choices=("csv", "json"), default="csv", help="output format (default csv)")
    score.add_argument("--out", help="output file (default: standard output)")
    score.set_defaults(handler=cmd_score)

    oracle = commands.add_parser(
        "oracle",
        help="the oracle ceiling of a reward run's held-out pairs, from a simulation's oracle file",
        description="The share of a reward model's held-out pairs whose label agrees with the simulated labelers' "
        "noise-free taste (python -m rlhf simulate --oracle-out): the best accuracy any model could reach on those "
        "labels. Printed beside the model's own accuracy, overall and per cover group of its evaluation.",
    )
    oracle.add_argument("--checkpoint", required=True, help="the reward model folder")
    oracle.add_argument("--export", required=True, help="the export folder it was trained on (with pairs.jsonl)")
    oracle.add_argument("--oracle", required=True, help="the oracle file the simulation wrote")
    oracle.set_defaults(handler=cmd_oracle)

    tune = commands.add_parser(
        "tune-captioner",
        help="RL of the captioner's LoRA with TRL's GRPOTrainer (its PPO-family trainer for VLMs) on a studio",
        description="GRPO: PPO's clipped objective with advantages relative to the completions of one cover, a KL "
        "penalty to the parent captioner, reward = the reward model's score plus schema validity. Registers the "
        "new adapter as a captioner version.",
    )
    add_config_arguments(tune, CaptionerRLConfig)
    add_launch_arguments(tune)
    tune.add_argument("--parent-version", type=int, help="id of the captioner version to tune")
    tune.add_argument("--reward-version", type=int, help="id of the reward model version")
    tune.set_defaults(handler=cmd_tune_captioner)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.verbose:
        # The HTTP client logs every request at INFO; the summary is what matters.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
