"""The MusicGen renderer on its tiny random-initialised twin: one batched call, seeded, exact length, loading."""

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from generation.loading import ModelLoadError
from generation.musicgen import MusicGenRenderer
from generation.render import RenderRequest
from tests.conftest import ROOT
from tests.generation.conftest import ROCK

TINY_DIR = ROOT / "fixtures" / "tiny" / "musicgen"
DURATION_S = 1.0
FEATURES = ROCK
PROMPTS = (
    "rock, upbeat 128 BPM, in A minor, intense, distorted electric guitars",
    "slow sad piano ballad in a minor with soft strings",
    "calm ambient soundscape with pads and no vocals",
)
REQUESTS = [RenderRequest(prompt=prompt, features=FEATURES) for prompt in PROMPTS]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny matrices gain nothing from threads; on the shared 2-core box with other jobs running, 2 OpenMP threads
    took this module from 0.75 s to 46 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def renderer(one_torch_thread: None) -> MusicGenRenderer:
    return MusicGenRenderer.from_config(TINY_DIR)


@pytest.fixture(scope="module")
def clips(renderer: MusicGenRenderer) -> list[np.ndarray]:
    return renderer.render(REQUESTS, seed=7, duration_s=DURATION_S)


def test_a_batch_renders_one_exact_length_mono_float32_clip_per_request(renderer, clips) -> None:
    assert renderer.sample_rate == 32_000
    assert len(clips) == len(REQUESTS)
    for clip in clips:
        assert clip.dtype == np.float32
        assert clip.shape == (round(DURATION_S * renderer.sample_rate),)
        assert np.isfinite(clip).all()
        assert np.abs(clip).max() <= 1.0
        assert clip.std() > 0


def test_all_prompts_go_into_one_generate_call(renderer, monkeypatch) -> None:
    calls = []
    generate = renderer.model.generate

    def counting_generate(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return generate(*args, **kwargs)

    monkeypatch.setattr(renderer.model, "generate", counting_generate)
    renderer.render(REQUESTS, seed=7, duration_s=0.2)
    assert calls == [len(REQUESTS)]


def test_a_length_that_is_not_a_whole_frame_is_padded_exactly(renderer) -> None:
    (clip,) = renderer.render(REQUESTS[:1], seed=7, duration_s=0.123)
    assert clip.shape == (round(0.123 * renderer.sample_rate),)


def test_the_same_batch_and_seed_reproduce_identical_samples(renderer, clips) -> None:
    again = renderer.render(REQUESTS, seed=7, duration_s=DURATION_S)
    for first, second in zip(clips, again, strict=True):
        np.testing.assert_array_equal(first, second)


def test_another_seed_gives_other_samples(renderer, clips) -> None:
    other = renderer.render(REQUESTS, seed=8, duration_s=DURATION_S)
    for first, second in zip(clips, other, strict=True):
        assert not np.array_equal(first, second)


def test_different_prompts_in_a_batch_give_different_audio(clips) -> None:
    assert not np.array_equal(clips[0], clips[1])
    assert not np.array_equal(clips[1], clips[2])


def test_rendering_leaves_the_global_torch_rng_alone(renderer) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    renderer.render(REQUESTS[:1], seed=7, duration_s=0.2)
    assert torch.equal(torch.rand(3), expected)


def test_a_saved_twin_loads_with_from_pretrained_and_renders_identically(renderer, clips, tmp_path) -> None:
    renderer.model.save_pretrained(tmp_path)
    renderer.processor.save_pretrained(tmp_path)
    loaded = MusicGenRenderer.from_pretrained(tmp_path, device="cpu")
    assert loaded.model_id == str(tmp_path)
    assert loaded.sample_rate == renderer.sample_rate
    for first, second in zip(clips, loaded.render(REQUESTS, seed=7, duration_s=DURATION_S), strict=True):
        np.testing.assert_array_equal(first, second)


def test_a_missing_path_is_a_clear_error(tmp_path) -> None:
    missing = tmp_path / "no-such-checkpoint"
    with pytest.raises(ModelLoadError, match="no-such-checkpoint"):
        MusicGenRenderer.from_pretrained(missing)


def test_a_directory_without_a_checkpoint_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        MusicGenRenderer.from_pretrained(tmp_path)


def test_no_requests_render_nothing_and_a_bad_duration_is_refused(renderer) -> None:
    assert renderer.render([], seed=0, duration_s=1.0) == []
    with pytest.raises(ValueError, match="duration_s"):
        renderer.render(REQUESTS, seed=0, duration_s=0)
