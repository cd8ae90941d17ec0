"""Stage 3, caption: a vision-language model (optionally with a LoRA adapter) writes the features as JSON.

Decoding is constrained by xgrammar to the feature JSON schema (genre from the catalog's vocabulary, key, mode,
ranges), so every output parses; the unconstrained mode stays for comparison (the paper's 21/107 and 75/107).
"""

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
import xgrammar
import xgrammar.contrib.hf
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer, InternVLConfig
from transformers.utils import cached_file

from generation.config import DEFAULT_CAPTIONER, tiny_captioner_id
from generation.embed import default_device
from generation.features import AcousticFeatures, FeatureError, feature_json_schema, parse_features
from generation.loading import ModelLoadError, pretrained_or_explain

# The feature object is ~200 characters; 384 tokens leave room for long numbers in a small vocabulary and still
# stop a runaway unconstrained generation.
DEFAULT_MAX_NEW_TOKENS = 384
# Appended to the captioner's model id to name its image-token embedding (``CaptionerImageEmbedder``) among a cover's
# stored embeddings, beside the CLIP embedder's.
IMAGE_TOKENS_SUFFIX = "#image-tokens"


class AdapterMismatchError(ValueError):
    """A LoRA adapter trained on another base model than the captioner it is applied to."""


@dataclass(frozen=True)
class CaptionResult:
    """One variant's captioner output: the raw text always; features when it parsed and validated."""

    raw_text: str
    features: AcousticFeatures | None
    error: str | None

    @property
    def valid(self) -> bool:
        return self.features is not None


def images_only_processor(processor_class: Any) -> type:
    """A subclass of a VLM processor class without its video processor.

    The video processors need torchvision, and PyPI's torchvision does not import beside the torch 2.13 CPU build
    (its ``torchvision::nms`` operator is missing); covers are images, so the processor is assembled from its
    tokenizer and PIL image processor instead.
    """

    def __init__(self: Any, image_processor: Any = None, tokenizer: Any = None, **kwargs: Any) -> None:
        processor_class.__init__(self, image_processor, tokenizer, None, **kwargs)

    return type(f"{processor_class.__name__}ImagesOnly", (processor_class,), {"__init__": __init__})


def load_processor(model_id_or_path: str) -> Any:
    """Assemble a VLM's processor from its tokenizer, image processor and ``processor_config.json``."""
    tokenizer = pretrained_or_explain(AutoTokenizer.from_pretrained, model_id_or_path, "captioner tokenizer")
    image_processor = pretrained_or_explain(AutoImageProcessor.from_pretrained, model_id_or_path, "captioner")
    config_file = cached_file(model_id_or_path, "processor_config.json", _raise_exceptions_for_missing_entries=False)
    options = json.loads(Path(config_file).read_text()) if config_file else {}
    class_name = options.pop("processor_class", None)
    if class_name is None or not hasattr(transformers, class_name):
        raise ModelLoadError(f"the captioner {model_id_or_path!r} names no processor class transformers knows")
    processor_class = images_only_processor(getattr(transformers, class_name))
    return processor_class(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template, **options
    )


def image_tokens(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """(images, image tokens, text width): what a transformers VLM's language model receives for each image."""
    tokens = model.get_image_features(pixel_values=pixel_values)
    if not isinstance(tokens, torch.Tensor):  # transformers 5 returns an output object
        tokens = tokens.pooler_output
    return tokens.reshape(pixel_values.shape[0], -1, tokens.shape[-1])


def is_captioner_image_embedder(embedder_id: str) -> bool:
    """Whether a stored embedding's ``embedder_id`` names a captioner's image tokens rather than a CLIP."""
    return embedder_id.endswith(IMAGE_TOKENS_SUFFIX)


class Captioner:
    """Cover + instruction -> acoustic features as JSON, several sampled variants per call."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        model_id: str,
        adapter_path: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    ) -> None:
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.adapter_path = adapter_path
        self.max_new_tokens = max_new_tokens
        # Adapters loaded side by side on the one base model, by path -> PEFT adapter name.
        self._adapter_names: dict[str, str] = {}
        if adapter_path is not None:
            self.model = apply_adapter(model, adapter_path, base_model_id=model_id)
            self._adapter_names[adapter_path] = "default"
        self.model.eval()

    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str = DEFAULT_CAPTIONER,
        *,
        adapter_path: str | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        model_id: str | None = None,
        expect: str | None = None,
    ) -> "Captioner":
        """Load a transformers vision-language model by hub id or local path, with an optional LoRA adapter.

        Args:
            model_id_or_path: default ``OpenGVLab/InternVL3-1B-hf``; any ``AutoModelForImageTextToText`` model.
            adapter_path: a PEFT LoRA adapter trained on this base model; default none.
            device: default CUDA when available, else CPU.
            dtype: default bfloat16 on CUDA, float32 on CPU.
            model_id: the id the model records (adapters store it as their base); default ``model_id_or_path``.
            expect: the ``model_type`` the checkpoint must have (e.g. ``internvl``); default any.

        Raises:
            ModelLoadError: no checkpoint there, or one of another architecture than ``expect`` or than
                ``AutoModelForImageTextToText`` knows.
        """
        device = device or default_device()
        dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
        config = pretrained_or_explain(AutoConfig.from_pretrained, model_id_or_path, "captioner")
        if expect is not None and config.model_type != expect:
            raise ModelLoadError(
                f"the captioner at {model_id_or_path} is a {config.model_type!r} model, not the {expect!r} model "
                "this profile ships"
            )
        try:
            model: Any = pretrained_or_explain(
                AutoModelForImageTextToText.from_pretrained, model_id_or_path, "captioner", dtype=dtype
            )
        except ValueError as exc:  # transformers' "Unrecognized configuration class ..."
            raise ModelLoadError(
                f"the captioner at {model_id_or_path} is a {config.model_type!r} model, which is not a "
                "vision-language model transformers can load"
            ) from exc
        model_id = model_id or model_id_or_path
        # PEFT records this as the adapter's base model, which is how a mismatched adapter is recognised.
        model.config._name_or_path = model.name_or_path = model_id
        return cls(model.to(device), load_processor(model_id_or_path), model_id=model_id, adapter_path=adapter_path)

    @classmethod
    def from_config(cls, config_dir: str | Path, *, seed: int = 0, adapter_path: str | None = None) -> "Captioner":
        """Build the tiny random-initialised InternVL twin from ``config_dir``.

        Args:
            config_dir: a folder with the InternVL ``config.json``, tokenizer and processor files.
            seed: weight initialisation seed; the same seed gives the same twin in every process.
            adapter_path: an optional LoRA adapter trained on this twin.
        """
        config = InternVLConfig.from_pretrained(config_dir)
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config)
        model_id = tiny_captioner_id(config_dir, seed)
        # PEFT records this as the adapter's base model, which is how a mismatched adapter is recognised.
        model.config._name_or_path = model.name_or_path = model_id
        return cls(model, load_processor(str(config_dir)), model_id=model_id, adapter_path=adapter_path)

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def use_adapter(self, adapter_path: str | None) -> None:
        """Make another LoRA adapter of this base model the active one, or the base model itself (None).

        Each adapter loads once and stays beside the others on the one base model, so captioner versions of one base
        (the two of a comparison round) share its weights: a rank-4 LoRA on InternVL3-1B's attention projections has
        0.5 M parameters, the base 0.9 B.

        Raises:
            ModelLoadError: no adapter at ``adapter_path``.
            AdapterMismatchError: the adapter records another base model (the active adapter stays as it was).
        """
        if adapter_path is not None and adapter_path not in self._adapter_names:
            name = f"adapter{len(self._adapter_names)}"
            self.model = apply_adapter(self.model, adapter_path, base_model_id=self.model_id, adapter_name=name)
            self.model.eval()
            self._adapter_names[adapter_path] = name
        if adapter_path is not None:
            self.model.set_adapter(self._adapter_names[adapter_path])
        self.adapter_path = adapter_path

    def base_weights(self) -> AbstractContextManager[Any]:
        """The base model's weights alone, whichever adapter is active."""
        return self.model.disable_adapter() if self._adapter_names else nullcontext()

    def _active_weights(self) -> AbstractContextManager[Any]:
        """The base model's weights alone while no adapter is active on a model that carries some."""
        return self.base_weights() if self.adapter_path is None else nullcontext()

    @torch.inference_mode()
    def generate(
        self,
        image: Image.Image,
        *,
        instruction: str,
        genres: Sequence[str],
        num_variants: int,
        seed: int,
        constrained: bool = True,
        temperature: float = 1.0,
        greedy: bool = False,
    ) -> list[CaptionResult]:
        """Sample ``num_variants`` feature objects for one cover in one batched ``generate`` call.

        Args:
            image: the cover, RGB.
            instruction: from ``generation.instruction.build_instruction``.
            genres: the allowed genre vocabulary (the schema's enum).
            num_variants: samples to draw; variant i is row i of the batch.
            seed: the same image, instruction, seed and model give the same texts on the same device and dtype.
            constrained: decode under the feature JSON schema (default); False for the paper's free decoding.
            temperature: sampling temperature, default 1.0.
            greedy: the most likely token at every step instead of sampling (the evaluation's point estimate; every
                variant is then the same); default false.
        """
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        device = next(self.model.parameters()).device
        inputs = self.processor(
            images=[image] * num_variants, text=[prompt] * num_variants, return_tensors="pt", padding=True
        ).to(device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        processors = [self.json_logits_processor(tuple(genres))] if constrained else []
        torch.manual_seed(seed)
        with self._active_weights():
            output = self.model.generate(
                **inputs,
                **({"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature, "top_k": 0}),
                max_new_tokens=self.max_new_tokens,
                logits_processor=processors,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        texts = self.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return [self._parse(text.strip(), genres) for text in texts]

    @property
    def image_embedder(self) -> "CaptionerImageEmbedder":
        return CaptionerImageEmbedder(self)

    def json_logits_processor(self, genres: tuple[str, ...]) -> Any:
        """The feature-schema constraint for one ``generate`` call (captioner RL samples under it too)."""
        # xgrammar's processor keeps per-row matcher state, so each generate call needs a new one (xgrammar 0.2.8).
        return xgrammar.contrib.hf.LogitsProcessor(self._compiled_schema(genres))

    @lru_cache(maxsize=8)  # noqa: B019 - one captioner lives as long as its worker; a few vocabularies at most
    def _compiled_schema(self, genres: tuple[str, ...]) -> Any:
        vocab_size = self.model.config.get_text_config().vocab_size
        info = xgrammar.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=vocab_size)
        schema = json.dumps(feature_json_schema(list(genres)))
        return xgrammar.GrammarCompiler(info).compile_json_schema(schema, any_whitespace=False)

    @staticmethod
    def _parse(text: str, genres: Sequence[str]) -> CaptionResult:
        try:
            return CaptionResult(raw_text=text, features=parse_features(text, genres), error=None)
        except FeatureError as exc:
            return CaptionResult(raw_text=text, features=None, error=str(exc))


def apply_adapter(model: Any, adapter_path: str, *, base_model_id: str, adapter_name: str = "default") -> Any:
    """Wrap ``model`` with a saved PEFT LoRA adapter after checking it was trained on the same base.

    Args:
        model: the base model, or a PEFT model of it that carries other adapters already (this one joins them).
        adapter_name: the adapter's name inside the PEFT model; default ``default``.

    Raises:
        ModelLoadError: no adapter at ``adapter_path``.
        AdapterMismatchError: the adapter records another base model.
    """
    from peft import PeftConfig, PeftModel

    if not (Path(adapter_path) / "adapter_config.json").exists():
        raise ModelLoadError(f"no LoRA adapter at {adapter_path} (adapter_config.json is missing)")
    base = PeftConfig.from_pretrained(adapter_path).base_model_name_or_path
    if base != base_model_id:
        raise AdapterMismatchError(
            f"the adapter at {adapter_path} was trained on {base!r}, not on the captioner {base_model_id!r}"
        )
    if isinstance(model, PeftModel):
        model.load_adapter(adapter_path, adapter_name=adapter_name)
        return model
    return PeftModel.from_pretrained(model, adapter_path, adapter_name=adapter_name)


class CaptionerImageEmbedder:
    """A cover as the captioner's language model sees it: the mean of the image tokens its vision tower and projector
    feed the language model, one vector per image (the language model's width).

    The reward model reads covers through it (``rlhf.reward``): the captioner was trained to describe covers, so its
    image tokens carry their colour, light and texture, which a CLIP trained for retrieval may not. It is an
    ``Embedder`` in all that the reward model needs (``model_id``, ``embed``), and a property of the base captioner:
    its adapters tune the language model only (captioner RL refuses others), and it embeds with the base weights in
    any case, so every captioner version of one base gives a cover the same vector.
    """

    def __init__(self, captioner: Captioner) -> None:
        self.captioner = captioner
        self.model_id = captioner.model_id + IMAGE_TOKENS_SUFFIX

    @property
    def dimension(self) -> int:
        return int(self.captioner.model.config.text_config.hidden_size)

    @torch.inference_mode()
    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """float32 array of shape (len(images), text width); one image per forward, as InternVL's processor may split
        an image into a varying number of tiles whose tokens all belong to it."""
        model = self.captioner.model
        device = next(model.parameters()).device
        vectors = []
        with self.captioner.base_weights():
            for image in images:
                pixels = self.captioner.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
                tokens = image_tokens(model, pixels.to(device, model.dtype))
                vectors.append(tokens.reshape(-1, tokens.shape[-1]).float().mean(dim=0).cpu().numpy())
        if not vectors:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack(vectors).astype(np.float32)
