"""Shared fixtures of the learning tests that drive the whole studio: catalog, index, media and tasks in-process."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from labelstudio_site.catalog.services import catalog_import, catalog_index_build
from labelstudio_site.studio import services as studio_services
from labelstudio_site.studio import tasks as studio_tasks
from labelstudio_site.studio.models import Cover, GenerationRound, RoundStatus, VariantStatus
from labelstudio_site.studio.roles import LABELERS_GROUP
from labelstudio_site.training import services as training_services
from labelstudio_site.training import tasks as training_tasks
from labelstudio_site.training.models import ModelVersion, RunStatus, TrainingRun
from rlhf.__main__ import main as rlhf_cli
from tests.conftest import ROOT

# 1 s clips from the tiny MusicGen: 0.14 s per batch of 8 (the synth renderer takes 0.5 s at any length).
RENDER = {"renderer": "musicgen", "duration_s": 1.0}


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    # Tiny models on a shared 2-core machine: intra-op threads only contend with the live server and whatever else
    # runs (a reward run of 3,400 pairs took 193 s with two threads next to another job, 25 s alone on one).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def studio(request: pytest.FixtureRequest, settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Private media, index and artifact folders; the fixture catalog imported and indexed as ``bin/demo`` does.

    Tasks run in this process, called by the test, instead of going to a broker.
    """
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ALBUMGEN_INDEX_DIR = tmp_path / "index"
    settings.ALBUMGEN_ARTIFACTS_DIR = tmp_path / "artifacts"
    monkeypatch.setattr(studio_tasks.cover_generate_task, "delay", lambda *args: None)
    monkeypatch.setattr(training_tasks.training_run_task, "delay", lambda *args: None)
    # The worker's pipeline cache would keep this test's captioners (and their index) for the rest of the session.
    monkeypatch.setattr(studio_tasks, "_PIPELINES", type(studio_tasks._PIPELINES)())
    # get_or_create: a transactional test earlier in the run flushes the group its data migration made.
    Group.objects.get_or_create(name=LABELERS_GROUP)
    catalog_import(directory=ROOT / "fixtures" / "musicoset")
    # The profile a test module names (PROFILE), tiny by default.
    profile = getattr(request.module, "PROFILE", "tiny")
    catalog_index_build(profile=profile, embedder=None, out_dir=settings.ALBUMGEN_INDEX_DIR / profile)
    return tmp_path


@pytest.fixture
def render_round() -> Callable[..., GenerationRound]:
    """A round rendered by the GPU task's body, cover by cover, as a worker would; a comparison round of two versions
    with ``compare_with``."""

    def render(
        covers: list[Cover],
        version: ModelVersion,
        *,
        variants: int,
        seed: int,
        overlap_k: int = 1,
        compare_with: ModelVersion | None = None,
    ) -> GenerationRound:
        generation_round = studio_services.round_create(
            name=f"{version.name} seed {seed}",
            covers=covers,
            captioner_version=version,
            comparison_version=compare_with,
            variants_per_cover=variants,
            seed=seed,
            render_settings=RENDER,
            overlap_k=overlap_k,
        )
        for cover in covers:
            studio_tasks.cover_generate_task.apply(args=(generation_round.pk, cover.pk, version.pk)).get()
        generation_round.refresh_from_db()
        failed = list(generation_round.variants.exclude(status=VariantStatus.DONE).values_list("error", flat=True))
        assert generation_round.status == RoundStatus.DONE and not failed, failed
        return generation_round

    return render


@pytest.fixture
def run_to_end() -> Callable[..., TrainingRun]:
    """Launch a training run and execute it with the train queue's task."""

    def run(**launch: Any) -> TrainingRun:
        training_run = training_services.training_run_create(**launch)
        training_tasks.training_run_task(training_run.pk)
        training_run.refresh_from_db()
        assert training_run.status == RunStatus.SUCCEEDED, training_run.failure_reason
        return training_run

    return run


@pytest.fixture
def simulate_labelers(live_server: Any) -> Callable[..., None]:
    """``python -m rlhf simulate`` against the live server: labelers of a taste label until nothing is left."""

    def simulate(preference: str, *, labelers: int = 2, noise: float = 0.1, oracle_out: Path | None = None) -> None:
        staff, _ = get_user_model().objects.get_or_create(username="simulation-admin", defaults={"is_staff": True})
        token, _ = Token.objects.get_or_create(user=staff)
        command = ["simulate", "--server", live_server.url, "--admin-token", token.key, "--preference", preference]
        command += ["--labelers", str(labelers), "--noise", str(noise), "--seed", "1", "--concurrency", "2"]
        if oracle_out is not None:
            command += ["--oracle-out", str(oracle_out)]
        assert rlhf_cli(command) == 0

    return simulate


@pytest.fixture
def report(
    record_property: Callable[[str, Any], None], capsys: pytest.CaptureFixture[str]
) -> Callable[[str, Any], None]:
    """Print a figure as it comes, also under CI's captured output, and keep it in the junit report."""
    import time

    started = time.perf_counter()

    def say(name: str, value: Any) -> None:
        record_property(name, value)
        with capsys.disabled():
            print(f"\n[{time.perf_counter() - started:5.0f} s] {name}: {value}", end="")  # noqa: T201

    return say
