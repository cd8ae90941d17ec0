"""Celery tasks of the studio: thin (ids in, one service or pipeline call, results stored)."""

import logging
import socket
from collections import OrderedDict

from celery import shared_task
from django.conf import settings

from generation.config import PipelineConfig
from generation.images import CoverImageError, load_cover_image
from labelstudio_site.studio import services

logger = logging.getLogger(__name__)

# Loaded pipelines per worker process, by config: a new captioner version loads without a restart, and at most
# two stay resident (a GPU holds a 1B captioner and MusicGen-small in ~6 GiB; two sets fit a 24 GB card).
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
    from generation.pipeline import Pipeline

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
def cover_generate_task(self, round_id: int, cover_id: int, captioner_version_id: int) -> int:  # noqa: ANN001
    """Render the unfinished variants of one cover of a round, in one batch; returns how many were stored."""
    claim = services.batch_claim(
        round_id=round_id, cover_id=cover_id, version_id=captioner_version_id, worker=socket.gethostname()
    )
    if claim is None:
        return 0  # a redelivery or duplicate: the batch is finished or another attempt holds it
    try:
        pipeline = pipeline_for(claim.config)
        image = load_cover_image(claim.cover_image_path)
        result = pipeline.run(image, variants=claim.variants_per_cover, seed=claim.seed)
    except CoverImageError as exc:
        services.batch_fail(claim=claim, reason=f"cover image: {exc}")
        return 0
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            services.batch_fail(claim=claim, reason=f"gave up after {self.max_retries} retries: {exc}")
            return 0
        services.batch_release(claim=claim)
        # 10 s, 40 s, 160 s: long enough for a neighbouring job to free the GPU.
        raise self.retry(exc=exc, countdown=10 * 4**self.request.retries) from exc
    except Exception as exc:
        logger.exception("batch of cover %s in round %s failed", cover_id, round_id)
        services.batch_fail(claim=claim, reason=f"{type(exc).__name__}: {exc}")
        return 0
    report = result.report()
    outputs = [
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
    return services.batch_store(claim=claim, outputs=outputs)


@shared_task(name="studio.variants_reap_task")
def variants_reap_task() -> int:
    """Requeue batches whose worker died mid-task (run periodically by beat and when a worker starts)."""
    batches = services.variants_reap_stale(stale_after_s=settings.ALBUMGEN_STALE_AFTER_S)
    if batches:
        logger.warning("requeued %d stale batches: %s", len(batches), sorted(batches))
    return len(batches)
