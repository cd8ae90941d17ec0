"""Command line: ``python -m rlhf {simulate,train-captioner,train-reward,tune-captioner} ...`` (``--help`` on each).

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
    from rlhf.reward import train_reward_model

    try:
        result = train_reward_model(config, args.dataset, args.out)
    except (ValueError, OSError) as exc:
        return _fail(args, exc, 2)
    _say(
        f"{result.train_pairs} training pairs ({result.train_covers} covers), {result.eval_pairs} held out "
        f"({result.eval_covers} covers); held-out pair accuracy {result.eval_accuracy_before} -> "
        f"{result.eval_accuracy_after}; trainable parameters {result.trainable_parameters:,} of "
        f"{result.total_parameters:,}; reward model in {result.output_dir}"
    )
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
    sft.add_argument("--profile", choices=("tiny", "full"), default="tiny", help="locally: model profile")
    sft.add_argument("--captioner", help="locally: captioner hub id or path (overrides the profile)")
    sft.add_argument("--out", help="locally: folder for the adapter and the SFT set snapshot")
    sft.set_defaults(handler=cmd_train_captioner)

    from rlhf.captioner_rl import CaptionerRLConfig
    from rlhf.config import RewardTrainingConfig

    reward = commands.add_parser(
        "train-reward",
        help="reward model on preference pairs with TRL's RewardTrainer, here or on a studio",
        description="Train a sequence-classifier reward model (optionally LoRA) on TRL preference pairs; held-out "
        "pair accuracy by cover. With --server it trains on a studio's export and registers a reward version.",
    )
    add_config_arguments(reward, RewardTrainingConfig)
    add_launch_arguments(reward)
    reward.add_argument("--export", type=int, help="with --server: id of the preference export")
    reward.add_argument("--dataset", help="locally: pairs.jsonl or pairs.parquet of an export")
    reward.add_argument("--out", help="locally: folder for the reward model")
    reward.set_defaults(handler=cmd_train_reward)

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
