import json

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from PIL import Image

from generation.caption import AdapterMismatchError, Captioner, image_tokens
from generation.features import FEATURE_NAMES, parse_features
from generation.instruction import build_instruction
from generation.loading import ModelLoadError
from tests.generation.conftest import GENRES, TINY


def generate(captioner, cover, *, seed, constrained=True, variants=3):
    instruction = build_instruction(genres=GENRES)
    return captioner.generate(
        cover, instruction=instruction, genres=GENRES, num_variants=variants, seed=seed, constrained=constrained
    )


def test_constrained_decoding_makes_random_weights_write_valid_feature_json(tiny_captioner, red_cover):
    results = generate(tiny_captioner, red_cover, seed=3, variants=4)
    assert len(results) == 4
    for result in results:
        assert result.error is None, result.raw_text
        data = json.loads(result.raw_text)
        assert list(data) == list(FEATURE_NAMES)
        assert data["genre"] in GENRES
        assert parse_features(result.raw_text, GENRES) == result.features


def test_unconstrained_random_weights_write_no_valid_json(tiny_captioner, red_cover):
    # The comparison the paper makes: without the schema a model has to learn the format (here it cannot).
    results = generate(tiny_captioner, red_cover, seed=3, constrained=False)
    assert all(result.features is None and result.error for result in results)


def test_same_seed_same_texts_other_seed_other_texts(tiny_captioner, red_cover):
    first = [r.raw_text for r in generate(tiny_captioner, red_cover, seed=11)]
    again = [r.raw_text for r in generate(tiny_captioner, red_cover, seed=11)]
    other = [r.raw_text for r in generate(tiny_captioner, red_cover, seed=12)]
    assert first == again
    assert first != other
    assert len(set(first)) > 1, "variants of one batch should differ"


def test_the_twin_is_the_same_in_every_build():
    a, b = Captioner.from_config(TINY / "captioner"), Captioner.from_config(TINY / "captioner")
    for (name, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters(), strict=True):
        assert torch.equal(p, q), name


def lora_adapter(captioner, path, target=r".*language_model.*\.(q_proj|v_proj)"):
    # Language model only by default: the paper froze the vision backbone and the projector.
    config = LoraConfig(r=4, lora_alpha=8, target_modules=target)
    model = get_peft_model(captioner.model, config)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    model.save_pretrained(path)
    model.unload()


def test_a_lora_adapter_loads_and_changes_the_output(tmp_path, red_cover):
    lora_adapter(Captioner.from_config(TINY / "captioner"), tmp_path / "adapter")
    base = Captioner.from_config(TINY / "captioner")
    tuned = Captioner.from_config(TINY / "captioner", adapter_path=str(tmp_path / "adapter"))
    assert tuned.model_id == base.model_id
    base_texts = [r.raw_text for r in generate(base, red_cover, seed=5)]
    tuned_results = generate(tuned, red_cover, seed=5)
    assert all(r.features is not None for r in tuned_results)
    assert [r.raw_text for r in tuned_results] != base_texts


def test_an_adapter_of_another_base_is_refused(tmp_path):
    lora_adapter(Captioner.from_config(TINY / "captioner", seed=1), tmp_path / "other")
    with pytest.raises(AdapterMismatchError, match="trained on 'tiny-internvl:captioner:seed1'"):
        Captioner.from_config(TINY / "captioner", adapter_path=str(tmp_path / "other"))


def test_a_missing_adapter_or_model_path_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="no LoRA adapter"):
        Captioner.from_config(TINY / "captioner", adapter_path=str(tmp_path / "nothing"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        Captioner.from_pretrained(str(tmp_path / "no-model"))


def test_from_pretrained_loads_a_saved_checkpoint_like_the_twin(tmp_path, tiny_captioner, red_cover):
    tiny_captioner.model.save_pretrained(tmp_path / "ckpt")
    tiny_captioner.processor.tokenizer.save_pretrained(tmp_path / "ckpt")
    tiny_captioner.processor.image_processor.save_pretrained(tmp_path / "ckpt")
    for name in ("processor_config.json",):
        (tmp_path / "ckpt" / name).write_text((TINY / "captioner" / name).read_text())
    loaded = Captioner.from_pretrained(str(tmp_path / "ckpt"), device="cpu")
    assert [r.raw_text for r in generate(loaded, red_cover, seed=9)] == [
        r.raw_text for r in generate(tiny_captioner, red_cover, seed=9)
    ]


def test_the_image_embedding_is_the_base_models_mean_image_token_whatever_adapter_is_active(tmp_path, red_cover):
    base = Captioner.from_config(TINY / "captioner")
    # An adapter of the projector changes the image tokens; the embedding still reads the base weights.
    lora_adapter(
        Captioner.from_config(TINY / "captioner"), tmp_path / "projector", r".*multi_modal_projector\.linear_1"
    )
    tuned = Captioner.from_config(TINY / "captioner", adapter_path=str(tmp_path / "projector"))
    blue = Image.new("RGB", (128, 128), (20, 40, 200))
    embedder = base.image_embedder
    vectors = embedder.embed([red_cover, blue])
    assert vectors.dtype == np.float32 and vectors.shape == (2, embedder.dimension)
    assert not np.allclose(vectors[0], vectors[1], atol=1e-4)
    pixels = base.processor.image_processor(images=[red_cover], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        assert not torch.allclose(image_tokens(tuned.model, pixels), image_tokens(base.model, pixels), atol=1e-4)
        assert np.allclose(image_tokens(base.model, pixels)[0].mean(dim=0).numpy(), vectors[0], atol=1e-5)
    assert tuned.image_embedder.model_id == embedder.model_id == f"{base.model_id}#image-tokens"
    assert np.allclose(tuned.image_embedder.embed([red_cover, blue]), vectors, atol=1e-6)
    assert embedder.embed([]).shape == (0, embedder.dimension)
