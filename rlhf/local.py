"""Training runs on this machine, from files (the ``python -m rlhf`` commands without ``--server``)."""

from pathlib import Path

from rlhf.sft_config import CaptionerSFTConfig


class LocalRunError(RuntimeError):
    """Bad input for a local run (a catalog, a model, an empty split); the message says which."""


def train_captioner_locally(
    config: CaptionerSFTConfig, *, catalog: str | Path, profile: str, captioner: str | None, out: str | Path
) -> list[str]:
    """SFT on a MusicOSet folder's train split; writes ``out/adapter`` and the set as ``out/sft.jsonl``.

    Returns the lines to print: set size, trainable parameters, first and last loss.
    """
    from generation.caption import AdapterMismatchError
    from generation.config import PipelineConfig
    from generation.images import CoverImageError
    from generation.loading import ModelLoadError
    from generation.musicoset import MusicOSetError, read_musicoset
    from generation.pipeline import index_albums, load_captioner, load_embedder
    from rlhf.sft import CatalogCover, sft_rows, train_captioner_sft
    from rlhf.snapshot import write_jsonl_snapshot

    try:
        albums = [album for album in read_musicoset(catalog).albums if album.cover_path is not None]
        train = [CatalogCover.of(album) for album in albums if album.split == "train"]
        train = train[: config.max_covers or None]
        if not train:
            raise LocalRunError(f"the train split of {catalog} has no album with a cover")
        pipeline_config = PipelineConfig(profile=profile, captioner=captioner)
        embedder = load_embedder(pipeline_config)
        index = index_albums(albums, embedder)
        rows = list(sft_rows(train, embedder=embedder, index=index, context=config.context, top_k=config.top_k))
        snapshot = write_jsonl_snapshot(rows, Path(out) / "sft.jsonl")
        result = train_captioner_sft(
            config, captioner=load_captioner(pipeline_config), rows=rows, output_dir=Path(out) / "adapter"
        )
    except (MusicOSetError, CoverImageError, ModelLoadError, AdapterMismatchError, ValueError) as exc:
        raise LocalRunError(str(exc)) from exc
    share = 100 * result.trainable_parameters / result.total_parameters
    return [
        f"SFT set: {snapshot.rows} rows from {len(train)} covers -> {snapshot.path} (sha256 {snapshot.sha256[:12]})",
        f"trainable parameters: {result.trainable_parameters:,} of {result.total_parameters:,} ({share:.3f}%)",
        f"loss: {result.first_loss:.4f} at step 1 -> {result.last_loss:.4f} at step {result.loss_history[-1][0]}",
        f"adapter: {result.adapter_path}",
    ]
