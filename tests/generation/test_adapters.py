"""Several LoRA adapters on one loaded captioner (the two versions of a comparison round): switching between them
gives exactly what a captioner loaded with that one adapter gives, and a pipeline shares one retrieval among them."""

from pathlib import Path

import pytest
import torch

from generation.caption import AdapterMismatchError, Captioner
from generation.config import PipelineConfig
from generation.images import load_cover_image
from generation.pipeline import Pipeline
from tests.generation.conftest import TINY
from tests.generation.test_caption import generate, lora_adapter
from tests.generation.test_pipeline import COVER, index_dir  # noqa: F401 - the module-scoped index fixture


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> tuple[str, str]:
    """Two different LoRA adapters of the tiny twin."""
    folder = tmp_path_factory.mktemp("adapters")
    for seed, name in ((1, "one"), (2, "two")):
        captioner = Captioner.from_config(TINY / "captioner")  # seeds torch itself, for the twin's weights
        torch.manual_seed(seed)
        lora_adapter(captioner, folder / name)
    return str(folder / "one"), str(folder / "two")


def texts(captioner, cover) -> list[str]:
    return [result.raw_text for result in generate(captioner, cover, seed=5, variants=2)]


def test_switching_adapters_gives_what_each_adapter_alone_gives(adapters, red_cover):
    one, two = adapters
    alone = {
        None: texts(Captioner.from_config(TINY / "captioner"), red_cover),
        one: texts(Captioner.from_config(TINY / "captioner", adapter_path=one), red_cover),
        two: texts(Captioner.from_config(TINY / "captioner", adapter_path=two), red_cover),
    }
    assert len({tuple(t) for t in alone.values()}) == 3, "the adapters should change the output"
    shared = Captioner.from_config(TINY / "captioner", adapter_path=one)
    for adapter in (two, None, one):
        shared.use_adapter(adapter)
        assert shared.adapter_path == adapter
        assert texts(shared, red_cover) == alone[adapter], adapter


def test_an_adapter_of_another_base_is_refused_and_the_active_one_stays(adapters, red_cover, tmp_path):
    one, _ = adapters
    lora_adapter(Captioner.from_config(TINY / "captioner", seed=1), tmp_path / "other")
    captioner = Captioner.from_config(TINY / "captioner")
    captioner.use_adapter(one)
    before = texts(captioner, red_cover)
    with pytest.raises(AdapterMismatchError, match="trained on"):
        captioner.use_adapter(str(tmp_path / "other"))
    assert captioner.adapter_path == one
    assert texts(captioner, red_cover) == before


def test_run_adapters_shares_the_retrieval_and_equals_run_per_adapter(adapters, index_dir: Path):  # noqa: F811
    one, two = adapters
    image = load_cover_image(COVER)
    config = PipelineConfig(duration_s=2.0)
    results = Pipeline.load(config, index_dir=index_dir).run_adapters(image, adapters=[None, two], variants=2, seed=8)
    assert [result.config.adapter for result in results] == [None, two]
    assert results[0].report()["neighbours"] == results[1].report()["neighbours"]
    assert results[0].instruction == results[1].instruction
    assert [v.raw_text for v in results[0].variants] != [v.raw_text for v in results[1].variants]
    for adapter, result in zip([None, two], results, strict=True):
        alone = Pipeline.load(PipelineConfig(duration_s=2.0, adapter=adapter), index_dir=index_dir).run(
            image, variants=2, seed=8
        )
        assert [v.raw_text for v in result.variants] == [v.raw_text for v in alone.variants]
        assert [v.audio.data for v in result.variants if v.audio] == [v.audio.data for v in alone.variants if v.audio]
        assert result.config.fingerprint() == alone.config.fingerprint()
