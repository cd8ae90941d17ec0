"""MusicGen renderer: music prompts -> audio with transformers' ``MusicgenForConditionalGeneration``.

``MusicGenRenderer.from_pretrained`` loads a real checkpoint (facebook/musicgen-small by default);
``MusicGenRenderer.from_config`` builds the tiny random-initialised twin from ``fixtures/tiny/musicgen/`` (same
architecture, tiny dimensions) so tests run the real code on CPU.
"""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
from transformers import (
    EncodecConfig,
    GenerationConfig,
    MusicgenConfig,
    MusicgenForConditionalGeneration,
    MusicgenProcessor,
)
from transformers.models.encodec.modeling_encodec import EncodecEuclideanCodebook

from generation.loading import pretrained_or_explain
from generation.render import RenderRequest

DEFAULT_MODEL = "facebook/musicgen-small"
# MusicGen's classifier-free guidance coefficient (audiocraft's cfg_coef and the checkpoint's generation_config).
DEFAULT_GUIDANCE_SCALE = 3.0
# audiocraft samples from the top 250 codes; transformers' own default (50) is not MusicGen's.
DEFAULT_TOP_K = 250


def random_musicgen(
    config: MusicgenConfig, generation_config: GenerationConfig, *, seed: int = 0
) -> MusicgenForConditionalGeneration:
    """Build a MusicGen model with random weights drawn from ``seed`` (tiny twins, real-size timing without download).

    EnCodec initialises its codebooks to zeros, which would decode every code to the same audio, so each quantizer's
    codebook is redrawn from a normal distribution.

    Args:
        config: the full MusicGen config (text encoder, audio encoder, decoder).
        generation_config: the generation defaults a checkpoint would ship (decoder start and pad token).
        seed: seed for the weights; the global RNG state is left as it was. Defaults to 0.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MusicgenForConditionalGeneration(config)
        with torch.no_grad():
            for module in model.audio_encoder.modules():
                if isinstance(module, EncodecEuclideanCodebook):
                    module.embed.normal_()
    model.generation_config = generation_config
    return model.eval()


class MusicGenRenderer:
    """Renders a batch of prompts with MusicGen in one ``generate`` call (sampling with classifier-free guidance).

    One batch beats single calls: the tiny twin rendered 4 variants x 2 s in 0.12 s batched against 0.36 s one by one
    (2-core CPU); ``benchmarks/musicgen_real_size.py`` measures the real size.

    Args:
        model: a MusicGen model, already on its device and in eval mode.
        processor: the matching processor (its T5 tokenizer encodes the prompts).
        model_id: names the checkpoint in what the renderer produces (hub id, path or tiny-twin name).
        guidance_scale: classifier-free guidance coefficient; 1.0 turns guidance off. Defaults to 3.0.
        top_k: sample among the k most likely codes at each step. Defaults to 250.
    """

    def __init__(
        self,
        model: MusicgenForConditionalGeneration,
        processor: MusicgenProcessor,
        *,
        model_id: str,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        top_k: int = DEFAULT_TOP_K,
    ) -> None:
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.guidance_scale = guidance_scale
        self.top_k = top_k
        self._audio_config = cast(EncodecConfig, model.config.audio_encoder)
        self.sample_rate: int = self._audio_config.sampling_rate

    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str | Path = DEFAULT_MODEL,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    ) -> "MusicGenRenderer":
        """Load a checkpoint: a local directory or a hub id (read from the local cache when ``HF_HUB_OFFLINE=1``).

        Args:
            model_id_or_path: a directory written by ``save_pretrained`` or a hub id. Defaults to
                ``"facebook/musicgen-small"``.
            device: where to run; None picks CUDA when available, else CPU. Defaults to None.
            dtype: weight dtype; None keeps float32, the checkpoint's dtype. Defaults to None.
            guidance_scale: classifier-free guidance coefficient. Defaults to 3.0.

        Raises:
            ModelLoadError: (a ValueError) naming the path when it does not exist or holds no loadable checkpoint.
        """
        source = str(model_id_or_path)
        model = pretrained_or_explain(
            MusicgenForConditionalGeneration.from_pretrained,
            source,
            "renderer",
            dtype=dtype or torch.float32,
            device_map=str(_pick_device(device)),
        )
        # MusicgenProcessor, not AutoProcessor: on a folder without processor files AutoProcessor raises a ValueError
        # about "processing classes" instead of the OSError that names the missing file.
        processor = pretrained_or_explain(MusicgenProcessor.from_pretrained, source, "renderer")
        return cls(model.eval(), processor, model_id=source, guidance_scale=guidance_scale)

    @classmethod
    def from_config(
        cls, config_dir: str | Path, *, seed: int = 0, guidance_scale: float = DEFAULT_GUIDANCE_SCALE
    ) -> "MusicGenRenderer":
        """Build a random-initialised twin on CPU from a config directory (``fixtures/tiny/musicgen/``).

        Args:
            config_dir: holds ``config.json``, ``generation_config.json`` and the processor files.
            seed: seed for the random weights. Defaults to 0.
            guidance_scale: classifier-free guidance coefficient. Defaults to 3.0.
        """
        config = MusicgenConfig.from_pretrained(config_dir)
        model = random_musicgen(config, GenerationConfig.from_pretrained(config_dir), seed=seed)
        processor = MusicgenProcessor.from_pretrained(config_dir)
        model_id = f"tiny-musicgen:{Path(config_dir).name}:seed{seed}"
        return cls(model, processor, model_id=model_id, guidance_scale=guidance_scale)

    def render(self, requests: Sequence[RenderRequest], *, seed: int, duration_s: float) -> list[np.ndarray]:
        """Render all requests' prompts in one batched, seeded ``generate`` call.

        With sampling, a clip depends on the whole batch: the same prompts in the same order with the same seed give
        the same samples, but a prompt rendered alone differs from the same prompt inside a batch.

        Args:
            requests: the variants of one cover; only their ``prompt`` is read.
            seed: seeds the sampling; the global RNG state is restored afterwards.
            duration_s: length of each clip in seconds (MusicGen was trained on 30 s clips).

        Returns:
            One mono float32 array in [-1, 1] per request, exactly ``round(duration_s * sample_rate)`` samples long.
            Channels are averaged (only mono checkpoints were tried).
        """
        if duration_s <= 0:
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        if not requests:
            return []
        num_samples = round(duration_s * self.sample_rate)
        frames = math.ceil(duration_s * self._audio_config.frame_rate)
        # The delay pattern offsets codebook k by k steps, so the last codebook needs (num_codebooks - 1) extra steps.
        max_new_tokens = frames + self.model.decoder.num_codebooks - 1
        inputs = self.processor(text=[request.prompt for request in requests], padding=True, return_tensors="pt")
        device = self.model.device
        cuda_devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_devices), torch.inference_mode():
            torch.manual_seed(seed)
            audio = self.model.generate(
                **inputs.to(device),
                do_sample=True,
                guidance_scale=self.guidance_scale,
                top_k=self.top_k,
                max_new_tokens=max_new_tokens,
            )
        # (batch, channels, samples) -> mono float32, clipped: decoded EnCodec audio can overshoot [-1, 1] slightly.
        clips = audio.float().mean(dim=1).clamp(-1.0, 1.0).cpu().numpy()
        return [_fit_length(clip, num_samples) for clip in clips]


def _pick_device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _fit_length(clip: np.ndarray, num_samples: int) -> np.ndarray:
    clip = clip[:num_samples]
    if clip.shape[0] < num_samples:
        clip = np.pad(clip, (0, num_samples - clip.shape[0]))
    return np.ascontiguousarray(clip, dtype=np.float32)
