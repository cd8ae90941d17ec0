"""Bodies of the training runs: load rows, call one ``rlhf`` or ``generation`` function, report progress.

Imported only by the train worker (and lazily by the web for the config classes): torch loads here, never in the web
process. Every run writes into a staging folder and registers its model version only once everything succeeded, so
a failed or cancelled run leaves no version behind.
"""

import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from transformers import TrainerCallback

from labelstudio_site.catalog.models import Album
from labelstudio_site.catalog.selectors import album_list
from labelstudio_site.training import services
from labelstudio_site.training.models import ModelKind, ModelVersion, RunKind, TrainingRun
from labelstudio_site.training.paths import model_dir, run_log_path

logger = logging.getLogger("labelstudio_site.training.runs")
# The loggers whose lines belong in a run's log file besides ours.
RUN_LOGGERS = ("labelstudio_site.training.runs", "rlhf", "trl", "transformers.trainer")


# What the Trainer logs once when training ends: one value each, so it goes to the log, not to the curves.
TRAINER_SUMMARY_METRICS = frozenset(
    {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}
)


class RunCancelled(Exception):
    """An admin asked the run to stop."""


class RunProgress(TrainerCallback):
    """Reports steps and logged metrics of a transformers/TRL trainer to the run's row; stops it when cancelled."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.total = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.total = int(state.max_steps or 0)
        self._report(0, None)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        values = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float) and k != "epoch"}
        if values:
            logger.info("step %d/%d: %s", state.global_step, self.total, _format_values(values))
            curves = {k: v for k, v in values.items() if k not in TRAINER_SUMMARY_METRICS}
            self._report(state.global_step, curves or None)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._report(state.global_step, None)

    def _report(self, step: int, values: dict[str, float] | None) -> None:
        if services.training_run_progress(run_id=self.run_id, step=step, total_steps=self.total, values=values):
            raise RunCancelled


def _format_values(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in values.items())


@contextmanager
def run_log(run: TrainingRun) -> Iterator[Path]:
    """Copy the run's log lines (ours, rlhf's, TRL's) into its log file while the block runs."""
    path = run_log_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    for each in loggers:
        each.addHandler(handler)
        if each.getEffectiveLevel() > logging.INFO:
            each.setLevel(logging.INFO)
    try:
        yield path
    finally:
        for each in loggers:
            each.removeHandler(handler)
        handler.close()


def execute(run: TrainingRun) -> None:
    """Run a claimed run to its end: succeeded (with its version), failed with a reason, or cancelled."""
    runners: dict[str, Callable[[TrainingRun], None]] = {
        RunKind.SFT: run_sft,
        RunKind.EVALUATE: run_evaluate,
        RunKind.REWARD: run_reward,
        RunKind.RL: run_rl,
    }
    with run_log(run):
        logger.info("%s run %d (attempt %d) on %s: %s", run.kind, run.pk, run.attempts, run.worker, run.config)
        try:
            runners[run.kind](run)
        except RunCancelled:
            logger.info("cancelled by an admin at step %d", run.step)
            services.training_run_fail(run=run, reason="cancelled by an admin", cancelled=True)
        except Exception as exc:
            logger.exception("run failed")
            services.training_run_fail(run=run, reason=f"{type(exc).__name__}: {exc}")
        else:
            logger.info("run finished")


def _catalog_covers(split: str) -> list[Any]:
    from generation.features import features_from_mapping
    from rlhf.sft import CatalogCover

    albums: list[Album] = list(album_list(split=split, with_cover=True))
    genres = sorted({album.genre for album in Album.objects.all()})
    return [
        CatalogCover(album.musicoset_id, album.cover.path, features_from_mapping(album.features, genres))
        for album in albums
    ]


def _captioner_pipeline(version: ModelVersion) -> Any:
    """The version's pipeline without audio: embedder, catalog index and captioner (with its adapter)."""
    from generation.config import PipelineConfig
    from generation.pipeline import Pipeline

    config = PipelineConfig(
        profile=version.profile, captioner=version.base_model_id or None, adapter=version.adapter_path or None
    )
    return Pipeline.load(config, index_dir=settings.ALBUMGEN_INDEX_DIR / version.profile)


def _evaluation_table(version: ModelVersion, options: Any) -> dict[str, Any]:
    from generation.evaluate import evaluate

    pipeline = _captioner_pipeline(version)
    albums = _catalog_covers("test")[: options.limit or None]
    logger.info("evaluating %s on %d held-out covers", version, len(albums))
    rows = evaluate(
        pipeline, albums, seed=options.seed, ks=options.ks, unconstrained=options.unconstrained, greedy=options.greedy
    )
    return {"split": "test", "covers": len(albums), "seed": options.seed, "rows": rows}


def run_evaluate(run: TrainingRun) -> None:
    """The paper's evaluation of a captioner version on the held-out split; stored in the version's metrics."""
    from generation.config import EvaluationConfig

    assert run.parent_version is not None
    options = EvaluationConfig(**run.config)
    table = _evaluation_table(run.parent_version, options)
    services.model_version_metrics_update(version=run.parent_version, metrics={"evaluation": table})
    services.training_run_succeed(run=run, summary={"evaluation": table}, version=None)


def run_sft(run: TrainingRun) -> None:
    """LoRA SFT of a base captioner on the catalog's train split; the adapter becomes a captioner version."""
    from generation.config import EvaluationConfig
    from rlhf.sft import CaptionerSFTConfig, sft_rows, train_captioner_sft

    parent = run.parent_version
    assert parent is not None
    config = CaptionerSFTConfig(**run.config)
    covers = _catalog_covers("train")[: config.max_covers or None]
    if not covers:
        raise ValueError("the catalog's train split has no album with a cover: import a catalog first")
    pipeline = _captioner_pipeline(parent)
    rows = list(
        sft_rows(covers, embedder=pipeline.embedder, index=pipeline.index, context=config.context, top_k=config.top_k)
    )
    export = _sft_export_register(run, rows, pipeline.captioner.model_id)
    logger.info("SFT set: %d rows from %d covers (export %d)", len(rows), len(covers), export.pk)
    adapter_dir = model_dir(run)
    result = train_captioner_sft(
        config, captioner=pipeline.captioner, rows=rows, output_dir=adapter_dir, callbacks=[RunProgress(run.pk)]
    )
    logger.info(
        "trainable parameters: %d of %d (%.3f%%)",
        result.trainable_parameters,
        result.total_parameters,
        100 * result.trainable_parameters / result.total_parameters,
    )
    summary: dict[str, Any] = {
        "train_rows": result.train_rows,
        "trainable_parameters": result.trainable_parameters,
        "total_parameters": result.total_parameters,
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
    }
    version_fields = {
        "kind": ModelKind.CAPTIONER,
        "profile": parent.profile,
        "base_model_id": parent.base_model_id,
        "adapter_path": str(adapter_dir),
    }
    try:
        if config.eval_limit:
            options = EvaluationConfig(limit=config.eval_limit, seed=config.seed)
            probe = ModelVersion(**version_fields)
            summary["evaluation"] = _evaluation_table(probe, options)
            if "evaluation" not in parent.metrics:
                services.model_version_metrics_update(
                    version=parent, metrics={"evaluation": _evaluation_table(parent, options)}
                )
        services.training_run_succeed(
            run=run, summary=summary, version={**version_fields, "metrics": {"sft": summary, **_evaluation(summary)}}
        )
    except BaseException:
        shutil.rmtree(adapter_dir, ignore_errors=True)
        raise


def _evaluation(summary: dict[str, Any]) -> dict[str, Any]:
    return {"evaluation": summary["evaluation"]} if "evaluation" in summary else {}


def _sft_export_register(run: TrainingRun, rows: list[dict[str, Any]], base_model_id: str) -> Any:
    from rlhf.snapshot import write_jsonl_snapshot

    relative = Path("exports") / f"sft-run-{run.pk}"
    directory = settings.ALBUMGEN_ARTIFACTS_DIR / relative
    snapshot = write_jsonl_snapshot(rows, directory / "sft.jsonl")
    export = services.dataset_export_register(
        kind="sft",
        name=f"SFT set of run {run.pk}",
        options={"context": run.config.get("context"), "split": "train"},
        counts={"rows": snapshot.rows, "covers": len({row["album_id"] for row in rows})},
        directory=str(relative),
        files={"jsonl": "sft.jsonl"},
        checksum=snapshot.sha256,
        captioner_base_model_id=base_model_id,
        created_by=run.created_by,
    )
    services.training_run_attach_export(run=run, export=export)
    return export


def run_reward(run: TrainingRun) -> None:
    """Cover-aware reward model on a preference export (TRL RewardTrainer); held-out pair accuracy by cover."""
    from labelstudio_site.training.exports import export_file
    from rlhf.config import RewardTrainingConfig
    from rlhf.reward import read_cover_embeddings, train_reward_model

    export = run.dataset_export
    assert export is not None
    config = RewardTrainingConfig(**run.config)
    covers = read_cover_embeddings(export_file(export, "covers")).for_encoder(config.cover_encoder)
    output = model_dir(run)
    result = train_reward_model(config, export_file(export, "jsonl"), covers, output, callbacks=[RunProgress(run.pk)])
    after, before = result.evaluation_after, result.evaluation_before
    summary = {
        "eval_accuracy_before": before.overall.accuracy if before else None,
        "eval_accuracy_after": after.overall.accuracy if after else None,
        "train_pairs": result.train_pairs,
        "eval_pairs": result.eval_pairs,
        "train_covers": result.train_covers,
        "eval_covers": result.eval_covers,
        "trainable_parameters": result.trainable_parameters,
        "first_loss": result.loss_history[0] if result.loss_history else None,
        "last_loss": result.loss_history[-1] if result.loss_history else None,
        "reward_evaluation": {
            "before": before.to_dict() if before else None,
            "after": after.to_dict() if after else None,
        },
    }
    if after:
        logger.info(
            "held-out pair accuracy %.3f -> %.3f [95%% CI %.3f-%.3f]; per cover group (k=%s): %s",
            before.overall.accuracy if before else float("nan"),
            after.overall.accuracy,
            after.overall.low,
            after.overall.high,
            after.group_k,
            ", ".join(f"{name} {figure.accuracy:.3f} of {figure.pairs}" for name, figure in after.groups.items()),
        )
        if after.warning:
            logger.warning("%s", after.warning)
    rounds = export.options.get("round_ids") or []
    profile = _export_profile(rounds)
    version_fields = {
        "kind": ModelKind.REWARD,
        "profile": profile,
        "base_model_id": covers.embedder_id,
        "adapter_path": str(output),
        # The captioner whose outputs it learned to judge: an RL run checks it tunes a captioner of the same base.
        "metrics": {**summary, "captioner_base_model_id": export.captioner_base_model_id, "export_id": export.pk},
    }
    try:
        services.training_run_succeed(run=run, summary=summary, version=version_fields)
    except BaseException:
        shutil.rmtree(output, ignore_errors=True)
        raise


def _export_profile(round_ids: list[int]) -> str:
    from labelstudio_site.studio.models import GenerationRound

    first = GenerationRound.objects.filter(pk__in=round_ids).select_related("captioner_version").order_by("pk").first()
    return first.captioner_version.profile if first else settings.ALBUMGEN_PROFILE


def run_rl(run: TrainingRun) -> None:
    """GRPO of the captioner's LoRA against a reward model, on the covers the reward model's labelers judged."""
    from generation.images import load_cover_image
    from generation.retrieve import rag_instruction
    from labelstudio_site.studio.models import Cover
    from labelstudio_site.studio.selectors import cover_embeddings_get
    from rlhf.captioner_rl import CaptionerRLConfig, RLCover, tune_captioner
    from rlhf.reward import RewardScorer

    parent, reward = run.parent_version, run.reward_version
    assert parent is not None and reward is not None
    config = CaptionerRLConfig(**run.config)
    rounds = _export_rounds(reward)
    covers = list(Cover.objects.filter(label_tasks__round_id__in=rounds).distinct().order_by("pk"))
    if not covers:
        raise ValueError("the reward model's export names no round with covers to tune on")
    pipeline = _captioner_pipeline(parent)
    genres = pipeline.genres()
    scorer = RewardScorer.load(reward.adapter_path)
    pipeline.cover_embedder(scorer.embedder_id)  # refuses a reward model of an embedder the pipeline lacks
    retrieval_id = pipeline.embedder.model_id
    cover_ids = [cover.pk for cover in covers]
    stored = {
        embedder_id: cover_embeddings_get(cover_ids=cover_ids, embedder_id=embedder_id)
        for embedder_id in {retrieval_id, scorer.embedder_id}
    }
    rl_covers = []
    for cover in covers:
        image = load_cover_image(cover.image.path)
        vectors = {}
        for embedder_id, by_cover in stored.items():
            # Stored at generation time; a cover rendered before embeddings were stored is embedded again here.
            vectors[embedder_id] = (
                by_cover[cover.pk] if cover.pk in by_cover else pipeline.cover_embedder(embedder_id).embed([image])[0]
            )
        neighbours = pipeline.index.search(vectors[retrieval_id], k=pipeline.config.top_k)
        instruction = rag_instruction(genres, neighbours)
        rl_covers.append(RLCover(str(cover.pk), image, instruction, vectors[scorer.embedder_id]))
    logger.info("GRPO on %d covers against reward model %s", len(rl_covers), reward)
    output = model_dir(run)
    result = tune_captioner(
        config,
        captioner=pipeline.captioner,
        covers=rl_covers,
        genres=genres,
        reward_fn=lambda embeddings, completions: scorer.score(embeddings, completions, invalid="none"),
        output_dir=output,
        callbacks=[RunProgress(run.pk)],
    )
    summary = {
        "covers": len(rl_covers),
        "first_reward": result.reward_history[0] if result.reward_history else None,
        "last_reward": result.reward_history[-1] if result.reward_history else None,
        "last_kl": result.kl_history[-1] if result.kl_history else None,
        "trainable_parameters": result.trainable_parameters,
        "reward_version_id": reward.pk,
    }
    version_fields = {
        "kind": ModelKind.CAPTIONER,
        "profile": parent.profile,
        "base_model_id": parent.base_model_id,
        "adapter_path": str(output),
        "metrics": {"rl": summary},
    }
    try:
        services.training_run_succeed(run=run, summary=summary, version=version_fields)
    except BaseException:
        shutil.rmtree(output, ignore_errors=True)
        raise


def _export_rounds(reward: ModelVersion) -> list[int]:
    from labelstudio_site.training.models import DatasetExport

    export = DatasetExport.objects.filter(pk=reward.metrics.get("export_id")).first()
    return list(export.options.get("round_ids", [])) if export else []
