"""Stage 1, embed: CLIP ViT image embeddings of covers (512-d for ViT-B/16), L2-normalised."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

from generation.config import DEFAULT_EMBEDDER
from generation.loading import pretrained_or_explain

# Embedding this many covers per forward pass keeps the tiny twin's and ViT-B/16's activations small on CPU.
EMBED_BATCH = 32


class Embedder:
    """Turns cover images into unit-length vectors; ``model_id`` names it in every index it builds."""

    def __init__(self, model: CLIPVisionModelWithProjection, image_processor, *, model_id: str) -> None:
        self.model = model.eval()
        self.image_processor = image_processor
        self.model_id = model_id

    @property
    def dimension(self) -> int:
        return int(self.model.config.projection_dim)

    @classmethod
    def from_pretrained(cls, model_id_or_path: str = DEFAULT_EMBEDDER, *, device: str | None = None) -> "Embedder":
        """Load a CLIP checkpoint (hub id or local directory; honours ``HF_HUB_OFFLINE``).

        Args:
            model_id_or_path: default ``openai/clip-vit-base-patch16``.
            device: torch device; default CUDA when available, else CPU.
        """
        model: Any = pretrained_or_explain(CLIPVisionModelWithProjection.from_pretrained, model_id_or_path, "embedder")
        processor = pretrained_or_explain(AutoImageProcessor.from_pretrained, model_id_or_path, "embedder")
        return cls(model.to(device or default_device()), processor, model_id=model_id_or_path)

    @classmethod
    def from_config(cls, config_dir: str | Path, *, seed: int = 0) -> "Embedder":
        """Build the tiny random-initialised twin from ``config_dir`` (same architecture, tiny dimensions).

        Args:
            config_dir: a folder with a CLIP ``config.json`` and ``preprocessor_config.json``.
            seed: weight initialisation seed; the same seed gives the same twin in every process.
        """
        config = CLIPVisionConfig.from_pretrained(config_dir)
        torch.manual_seed(seed)
        model = CLIPVisionModelWithProjection(config)
        processor = AutoImageProcessor.from_pretrained(config_dir)
        return cls(model, processor, model_id=f"tiny-clip:{Path(config_dir).name}:seed{seed}")

    @torch.inference_mode()
    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed images in batches.

        Args:
            images: RGB images (see ``generation.images.load_cover_image``).

        Returns:
            float32 array of shape (len(images), dimension), each row of unit L2 norm, so that FAISS's L2 distance
            ranks neighbours as cosine similarity does.
        """
        device = next(self.model.parameters()).device
        chunks = []
        for start in range(0, len(images), EMBED_BATCH):
            pixels = self.image_processor(images=list(images[start : start + EMBED_BATCH]), return_tensors="pt")
            embeds = self.model(pixel_values=pixels["pixel_values"].to(device)).image_embeds
            chunks.append(torch.nn.functional.normalize(embeds.float(), dim=-1).cpu().numpy())
        if not chunks:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
