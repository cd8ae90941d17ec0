"""Rounds through real ``celery worker`` processes on the configured broker and database (Redis and PostgreSQL in
CI): a round completes; a worker killed with SIGKILL mid-task leaves nothing lost or duplicated."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from labelstudio_site.studio import services
from labelstudio_site.studio.models import GenerationRound, RoundStatus, VariantStatus
from labelstudio_site.training.services import model_version_base_ensure
from tests.conftest import ROOT
from tests.studio.test_rounds import COVERS, audio_files, studio_settings, tiny_index_root  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)
logger = logging.getLogger(__name__)


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Workers:
    def __init__(self, settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []

    def start(self, name: str, *extra: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "labelstudio_site.settings.test",
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(self.settings.MEDIA_ROOT),
            "ALBUMGEN_INDEX_DIR": str(self.settings.ALBUMGEN_INDEX_DIR),
            # Fast failure handling for the test: a batch running 6 s without finishing counts as lost.
            "ALBUMGEN_STALE_AFTER_S": "6",
            "ALBUMGEN_REAP_INTERVAL_S": "2",
            "CELERY_VISIBILITY_TIMEOUT": "8",
        }
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "labelstudio_site",
                "worker",
                "-Q",
                "gpu,default",
                "-P",
                "solo",
                "-n",
                f"{name}@%h",
                "--loglevel",
                "INFO",
                *extra,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def workers(studio_settings, tmp_path):  # noqa: F811
    pool = Workers(studio_settings, tmp_path)
    yield pool
    pool.stop()


def start_round(covers: int, variants: int) -> GenerationRound:
    cover_rows = [services.cover_create(data=p.read_bytes(), name=p.name)[0] for p in COVERS[:covers]]
    return services.round_create(
        name="workers",
        covers=cover_rows,
        captioner_version=model_version_base_ensure(profile="tiny"),
        variants_per_cover=variants,
        seed=3,
        render_settings={"duration_s": 3.0},
    )


def wait_for(condition, *, timeout: float, what: str) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if condition():
            return time.monotonic() - began
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def round_status(generation_round) -> str:
    generation_round.refresh_from_db()
    return generation_round.status


def test_a_round_completes_through_a_real_worker(workers, studio_settings):  # noqa: F811
    generation_round = start_round(covers=3, variants=2)
    workers.start("solo")
    seconds = wait_for(lambda: round_status(generation_round) == RoundStatus.DONE, timeout=180, what="the round")
    variants = list(generation_round.variants.all())
    assert len(variants) == 6 and {v.status for v in variants} == {VariantStatus.DONE}
    assert len({v.audio.name for v in variants}) == 6
    logger.warning("3 covers x 2 variants done in %.1f s through a real worker", seconds)


def test_a_worker_killed_mid_task_loses_and_duplicates_nothing(workers, studio_settings):  # noqa: F811
    generation_round = start_round(covers=3, variants=4)
    doomed = workers.start("doomed")
    began = time.monotonic()
    wait_for(
        lambda: generation_round.variants.filter(status=VariantStatus.RUNNING).exists(),
        timeout=120,
        what="a batch to start",
    )
    running = list(generation_round.variants.filter(status=VariantStatus.RUNNING).values_list("cover_id", flat=True))
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=10)
    killed_at = time.monotonic() - began
    done_before = generation_round.variants.filter(status=VariantStatus.DONE).count()

    workers.start("rescuer", "--beat", "--schedule", str(studio_settings.MEDIA_ROOT) + "-beat")
    wait_for(lambda: round_status(generation_round) == RoundStatus.DONE, timeout=180, what="the round to complete")
    finished_at = time.monotonic() - began

    variants = list(generation_round.variants.all())
    assert len(variants) == 12
    assert {v.status for v in variants} == {VariantStatus.DONE}
    assert len({v.audio.name for v in variants}) == 12
    assert all(Path(v.audio.path).exists() for v in variants)
    # The batch the dead worker held ran again under a new attempt; nothing ran a third time.
    attempts = {v.cover_id: v.attempts for v in variants}
    assert attempts[running[0]] == 2
    assert max(attempts.values()) <= 2
    logger.warning(
        "killed the worker %.1f s in, mid-batch of cover %s (%d variants done); a second worker completed the round "
        "%.1f s in: 12 variants, each once; attempts %s",
        killed_at,
        running[0],
        done_before,
        finished_at,
        attempts,
    )
