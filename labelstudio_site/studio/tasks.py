"""Celery tasks of the studio: thin (ids in, one service or pipeline call, results stored)."""

import logging
import socket
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING

from celery import shared_task
from django.conf import settings

from generation.config import PipelineConfig
from generation.images import CoverImageError, load_cover_image
from labelstudio_site.studio import services

if TYPE_CHECKING:  # the pipeline module imports every model stage; pipeline_for imports it on a worker's first batch
    from generation.pipeline import CoverResult

logger = logging.getLogger(__name__)

# Loaded pipelines per worker process, by config less the LoRA adapter: captioner versions of one base model share a
# pipeline and switch adapters on it (Captioner.use_adapter), so a new version loads without a restart and a
# comparison round holds one base. At most two stay resident (a GPU holds a 1B captioner and MusicGen-small in
# ~6 GiB; two sets fit a 24 GB card).
_PIPELINES: "OrderedDict[PipelineConfig, object]" = OrderedDict()
PIPELINE_CACHE_SIZE = 2
# Errors that may pass on their own (GPU out of memory next to another job, a network file system timing out):
# retried with backoff. Anything else (a missing index or checkpoint, a broken cover) is a property of the input
# or the configuration and fails the batch at once with its reason.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (MemoryError, ConnectionError, TimeoutError)
try:
    import torch

    TRANSIENT_ERRORS += (torch.cuda.OutOfMemoryError,)
except ImportError:  # pragma: no cover - torch is a dependency
    pass


def pipeline_for(config: PipelineConfig):  # noqa: ANN201 - generation.pipeline.Pipeline, imported lazily
    """The worker's pipeline for ``config``'s base captioner (``run_adapters`` picks the adapter per batch)."""
    from generation.pipeline import Pipeline

    config = replace(config, adapter=None)
    if config in _PIPELINES:
        _PIPELINES.move_to_end(config)
        return _PIPELINES[config]
    index_dir = settings.ALBUMGEN_INDEX_DIR / config.profile
    pipeline = Pipeline.load(config, index_dir=index_dir)
    _PIPELINES[config] = pipeline
    while len(_PIPELINES) > PIPELINE_CACHE_SIZE:
        _PIPELINES.popitem(last=False)
    return pipeline


@shared_task(bind=True, name="studio.cover_generate_task", max_retries=3)
def cover_generate_task(self, round_id: int, cover_id: int, _queued_version_id: int | None = None) -> int:  # noqa: ANN001
    """Render the unfinished variants of one cover of a round, a batch per captioner version (two in a comparison
    round) from one retrieval; returns how many were stored.

    ``_queued_version_id``: messages queued before comparison rounds name the round's version; the claim covers every
    version of the cover now, so such a message left in the queue over an upgrade still renders its cover.
    """
    claims = services.cover_batches_claim(round_id=round_id, cover_id=cover_id, worker=socket.gethostname())
    if not claims:
        return 0  # a redelivery or duplicate: the batches are finished or another attempt holds them
    # The claims differ only in their captioner version; round_create checked that the versions share a base model.
    first = claims[0]
    try:
        mismatch = services.round_config_mismatch(round_id=round_id)
        if mismatch is not None:
            _fail(claims, reason=mismatch)
            return 0
        pipeline = pipeline_for(first.config)
        image = load_cover_image(first.cover_image_path)
        results = pipeline.run_adapters(
            image,
            adapters=[claim.config.adapter for claim in claims],
            variants=first.variants_per_cover,
            seed=first.seed,
        )
        # One embedding per cover and embedder, shared by every adapter's result; a redelivery keeps the first.
        for embedder_id, vector in results[0].embeddings.items():
            services.cover_embedding_store(cover_id=cover_id, embedder_id=embedder_id, vector=vector)
    except CoverImageError as exc:
        _fail(claims, reason=f"cover image: {exc}")
        return 0
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            _fail(claims, reason=f"gave up after {self.max_retries} retries: {exc}")
            return 0
        for claim in claims:
            services.batch_release(claim=claim)
        # 10 s, 40 s, 160 s: long enough for a neighbouring job to free the GPU.
        raise self.retry(exc=exc, countdown=10 * 4**self.request.retries) from exc
    except Exception as exc:
        logger.exception("batches of cover %s in round %s failed", cover_id, round_id)
        _fail(claims, reason=f"{type(exc).__name__}: {exc}")
        return 0
    return sum(
        services.batch_store(claim=claim, outputs=_variant_outputs(result))
        for claim, result in zip(claims, results, strict=True)
    )


def _fail(claims: list[services.Claim], *, reason: str) -> None:
    for claim in claims:
        services.batch_fail(claim=claim, reason=reason)


def _variant_outputs(result: "CoverResult") -> list[services.VariantOutput]:
    report = result.report()
    return [
        services.VariantOutput(
            index=variant.index,
            neighbours=report["neighbours"],
            raw_text=variant.raw_text,
            features=variant.features.to_dict() if variant.features else None,
            error=variant.error,
            prompt=variant.prompt or "",
            audio=variant.audio.data if variant.audio else None,
            audio_extension=variant.audio.extension if variant.audio else "",
            audio_mime=variant.audio.mime_type if variant.audio else "",
            peaks=variant.peaks,
            duration_s=variant.audio.duration_s if variant.audio else None,
            timings=report["timings_s"],
        )
        for variant in result.variants
    ]


@shared_task(name="studio.variants_reap_task")
def variants_reap_task() -> int:
    """Requeue batches whose worker died mid-task (run periodically by beat and when a worker starts)."""
    batches = services.variants_reap_stale(stale_after_s=settings.ALBUMGEN_STALE_AFTER_S)
    if batches:
        logger.warning("requeued %d stale batches: %s", len(batches), sorted(batches))
    return len(batches)
