"""The whole pipeline for one cover: embed -> retrieve -> caption (JSON) -> prompt -> render -> encode.

Profiles: ``full`` loads the pretrained checkpoints (GPU workers); ``trained`` the models trained in-house and shipped
in ``fixtures/small`` (the offline demo); ``small`` only their CLIP embedder; ``tiny`` builds random-initialised twins
of the same architectures from ``fixtures/tiny`` (unit tests).
"""

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from generation.caption import Captioner, CaptionerImageEmbedder
from generation.config import (
    MAX_VARIANTS,
    OFFLINE_PROFILES,
    SMALL_CAPTIONER_DIR,
    SMALL_DIR,
    TINY_DIR,
    TRAINED_EMBEDDER_PROFILES,
    PipelineConfig,
    small_captioner_id,
)
from generation.embed import Embedder
from generation.encode import EncodedAudio, encode_audio, waveform_peaks
from generation.features import AcousticFeatures
from generation.images import load_cover_image
from generation.instruction import build_instruction
from generation.musicoset import Album
from generation.prompt import features_to_prompt
from generation.render import Renderer, RenderRequest
from generation.retrieve import CatalogEntry, Neighbour, RetrievalIndex, mean_features


def index_albums(albums: Sequence[Album], embedder: Embedder) -> RetrievalIndex:
    """The retrieval index over the covers of those catalog albums that have one (``python -m generation
    build-index``'s).

    Raises:
        CoverImageError: a cover file that does not open as an image.
        ValueError: no album has a cover.
    """
    covered = [album for album in albums if album.cover_path is not None]
    embeddings = embedder.embed([load_cover_image(album.cover_path) for album in covered if album.cover_path])
    entries = [CatalogEntry(a.album_id, a.name, a.genre, a.features) for a in covered]
    return RetrievalIndex.build(embeddings, entries, embedder_id=embedder.model_id)


def load_embedder(config: PipelineConfig) -> Embedder:
    if config.profile == "tiny" and config.embedder is None:
        return Embedder.from_config(TINY_DIR / "clip")
    if config.profile in TRAINED_EMBEDDER_PROFILES and config.embedder is None:
        return Embedder.from_pretrained(str(SMALL_DIR / "clip"))
    return Embedder.from_pretrained(config.checkpoint("embedder"))


def load_captioner(config: PipelineConfig) -> Captioner:
    if config.profile == "trained" and config.captioner is None:
        return Captioner.from_pretrained(
            str(SMALL_CAPTIONER_DIR), adapter_path=config.adapter, model_id=small_captioner_id(), expect="internvl"
        )
    if config.profile in OFFLINE_PROFILES and config.captioner is None:
        return Captioner.from_config(TINY_DIR / "captioner", adapter_path=config.adapter)
    return Captioner.from_pretrained(config.checkpoint("captioner"), adapter_path=config.adapter)


def load_renderer(config: PipelineConfig) -> Renderer:
    if config.renderer == "synth":
        from generation.synth import SynthRenderer

        return SynthRenderer()
    from generation.musicgen import MusicGenRenderer

    if config.profile in OFFLINE_PROFILES and config.musicgen is None:
        return MusicGenRenderer.from_config(TINY_DIR / "musicgen")
    return MusicGenRenderer.from_pretrained(config.checkpoint("musicgen"))


@dataclass
class VariantResult:
    """One variant and every intermediate that explains it."""

    index: int
    raw_text: str
    features: AcousticFeatures | None
    error: str | None
    prompt: str | None = None
    audio: EncodedAudio | None = None
    peaks: list[float] = field(default_factory=list)


@dataclass
class CoverResult:
    """One cover's variants from one captioner.

    ``embeddings`` holds the cover's vectors (float32) by embedder id, stored with the cover so that reward training
    and scoring never recompute them: the unit CLIP vector of the retrieval embedder ``embedder_id`` and the mean image
    token of the captioner (``CaptionerImageEmbedder``)."""

    config: PipelineConfig
    seed: int
    neighbours: list[Neighbour]
    context: AcousticFeatures | None
    instruction: str
    variants: list[VariantResult]
    timings: dict[str, float]
    embeddings: dict[str, np.ndarray]
    embedder_id: str

    @property
    def embedding(self) -> np.ndarray:
        """The retrieval embedder's (CLIP) vector."""
        return self.embeddings[self.embedder_id]

    def report(self, audio_paths: Sequence[str | None] | None = None) -> dict[str, Any]:
        """A JSON-ready account of the run; ``audio_paths[i]`` is where variant i's audio was written."""
        return {
            "config": asdict(self.config),
            "config_fingerprint": self.config.fingerprint(),
            "seed": self.seed,
            "embedder_id": self.embedder_id,
            "embedding_dimensions": {embedder: int(vector.shape[0]) for embedder, vector in self.embeddings.items()},
            "neighbours": [n.to_dict() for n in self.neighbours],
            "context": self.context.to_dict() if self.context else None,
            "instruction": self.instruction,
            "timings_s": {stage: round(seconds, 4) for stage, seconds in self.timings.items()},
            "variants": [
                {
                    "index": v.index,
                    "seed": self.seed,
                    "raw_text": v.raw_text,
                    "features": v.features.to_dict() if v.features else None,
                    "error": v.error,
                    "prompt": v.prompt,
                    "audio_path": audio_paths[v.index] if audio_paths else None,
                    "duration_s": v.audio.duration_s if v.audio else None,
                    "peaks": v.peaks,
                }
                for v in self.variants
            ],
        }


class Pipeline:
    def __init__(
        self,
        *,
        config: PipelineConfig,
        embedder: Embedder,
        index: RetrievalIndex | None,
        captioner: Captioner,
        renderer: Renderer,
    ) -> None:
        if config.rag and index is None:
            raise ValueError("retrieval (RAG) needs an index; pass one or set rag=False for zero-shot")
        self.config = config
        self.embedder = embedder
        self.index = index
        self.captioner = captioner
        self.renderer = renderer

    @classmethod
    def load(cls, config: PipelineConfig, *, index_dir: str | Path | None) -> "Pipeline":
        """Load every stage of ``config`` once; reuse the pipeline for many covers.

        Args:
            config: profile, checkpoints and decoding settings.
            index_dir: the saved retrieval index; required when ``config.rag`` (it must come from the same embedder).
        """
        embedder = load_embedder(config)
        index = RetrievalIndex.load(index_dir, embedder_id=embedder.model_id) if index_dir is not None else None
        return cls(
            config=config,
            embedder=embedder,
            index=index,
            captioner=load_captioner(config),
            renderer=load_renderer(config),
        )

    @property
    def cover_embedders(self) -> list[Embedder | CaptionerImageEmbedder]:
        """The embedders whose vectors of a cover are stored with it: the retrieval CLIP and the captioner."""
        return [self.embedder, self.captioner.image_embedder]

    def cover_embedder(self, embedder_id: str) -> Embedder | CaptionerImageEmbedder:
        """The cover embedder of that id (the one a reward model reads covers with).

        Raises:
            ValueError: neither of ``cover_embedders`` has that id.
        """
        embedders = {embedder.model_id: embedder for embedder in self.cover_embedders}
        if embedder_id not in embedders:
            raise ValueError(
                f"the reward model reads covers embedded by {embedder_id}, but the captioner's pipeline embeds "
                f"with {' and '.join(embedders)}"
            )
        return embedders[embedder_id]

    def genres(self) -> list[str]:
        if self.index is None:
            raise ValueError("zero-shot runs still need the genre vocabulary: load an index")
        return self.index.genres

    def run(self, image: Image.Image, *, variants: int, seed: int, exclude: Sequence[str] = ()) -> CoverResult:
        """All variants of one cover: one batched captioner call and one batched render call.

        Args:
            image: the cover, RGB (``generation.images.load_cover_image``).
            variants: number of variants, 1 to ``MAX_VARIANTS`` (16).
            seed: the round seed; the same cover, seed and config reproduce the same JSON and audio.
            exclude: catalog album ids to leave out of the neighbours (a catalog cover during evaluation).
        """
        (result,) = self.run_adapters(
            image, adapters=[self.config.adapter], variants=variants, seed=seed, exclude=exclude
        )
        return result

    def run_adapters(
        self,
        image: Image.Image,
        *,
        adapters: Sequence[str | None],
        variants: int,
        seed: int,
        exclude: Sequence[str] = (),
    ) -> list[CoverResult]:
        """The variants of one cover from each of several LoRA adapters of the captioner (versions of one base).

        The cover is embedded and its neighbours retrieved once, for all adapters; then each adapter gets the
        captioner call and the render call that ``run`` makes, so its variants are those of ``run`` with
        ``config.adapter`` set to it.

        Args:
            adapters: adapter paths, ``None`` for the base captioner without one; one result each, in this order.
            variants: variants per adapter, 1 to ``MAX_VARIANTS`` (16).
            seed: the round seed, the same for every adapter.
            exclude: as for ``run``.
        """
        if not 1 <= variants <= MAX_VARIANTS:
            raise ValueError(f"variants must be between 1 and {MAX_VARIANTS}")
        shared: dict[str, float] = {}
        with _timed(shared, "embed"):
            embeddings = {embedder.model_id: embedder.embed([image])[0] for embedder in self.cover_embedders}
        embedding = embeddings[self.embedder.model_id]
        neighbours: list[Neighbour] = []
        context = None
        if self.config.rag:
            assert self.index is not None
            with _timed(shared, "retrieve"):
                neighbours = self.index.search(embedding, k=self.config.top_k, exclude=exclude)
                context = mean_features(neighbours)
        genres = self.genres()
        instruction = build_instruction(genres=genres, context=context, neighbour_genres=[n.genre for n in neighbours])
        sampling_seed = cover_seed(seed, image)
        results = []
        for adapter in adapters:
            self.captioner.use_adapter(adapter)
            timings = dict(shared)
            variant_results = self._caption_and_render(
                image, instruction=instruction, genres=genres, variants=variants, seed=sampling_seed, timings=timings
            )
            config = replace(self.config, adapter=adapter)
            results.append(
                CoverResult(
                    config=config,
                    seed=seed,
                    neighbours=neighbours,
                    context=context,
                    instruction=instruction,
                    variants=variant_results,
                    timings=timings,
                    embeddings=embeddings,
                    embedder_id=self.embedder.model_id,
                )
            )
        return results

    def _caption_and_render(
        self,
        image: Image.Image,
        *,
        instruction: str,
        genres: list[str],
        variants: int,
        seed: int,
        timings: dict[str, float],
    ) -> list[VariantResult]:
        with _timed(timings, "caption"):
            captions = self.captioner.generate(
                image,
                instruction=instruction,
                genres=genres,
                num_variants=variants,
                seed=seed,
                constrained=self.config.constrained,
                temperature=self.config.temperature,
            )
        results = [VariantResult(i, c.raw_text, c.features, c.error) for i, c in enumerate(captions)]
        renderable = [r for r in results if r.features is not None]
        with _timed(timings, "prompt"):
            for result in renderable:
                assert result.features is not None
                result.prompt = features_to_prompt(result.features)
        if renderable:
            with _timed(timings, "render"):
                requests = [RenderRequest(prompt=r.prompt or "", features=r.features) for r in renderable if r.features]
                audio = self.renderer.render(requests, seed=seed, duration_s=self.config.duration_s)
            with _timed(timings, "encode"):
                for result, samples in zip(renderable, audio, strict=True):
                    result.audio = encode_audio(samples, self.renderer.sample_rate)
                    result.peaks = waveform_peaks(samples)
        return results


def cover_seed(seed: int, image: Image.Image) -> int:
    """The sampling seed of one cover in a round: the round seed mixed with the cover's pixels.

    With the round seed alone, variant i of every cover would draw the same random numbers, so two covers the captioner
    reads alike got byte-identical variants at the same index. Mixed, each cover draws its own; the same cover and
    round seed still give the same variants, and the adapters of a comparison round share them (a paired comparison).
    """
    digest = hashlib.sha256(seed.to_bytes(8, "little", signed=True) + image.convert("RGB").tobytes()).digest()
    return int.from_bytes(digest[:4], "little")


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - start


def save_cover_result(result: CoverResult, out_dir: str | Path) -> dict[str, Any]:
    """Write each variant's audio and ``report.json`` into ``out_dir``; return the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[str | None] = []
    for variant in result.variants:
        if variant.audio is None:
            paths.append(None)
            continue
        path = out / f"variant-{variant.index:02d}.{variant.audio.extension}"
        path.write_bytes(variant.audio.data)
        paths.append(str(path))
    report = result.report(paths)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
