"""/healthz reports database, broker and workers; a real ``celery worker`` process turns the worker check green."""

import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture
def short_ping(settings):
    settings.HEALTHZ_PING_TIMEOUT = 0.3


def test_healthz_without_a_worker_is_503_and_names_the_missing_worker(client, short_ping):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is True
    assert body["workers"] == {"ok": False, "detail": "no worker answered a ping within 0.3 s"}
    assert body["version"] == "0.1.0"


@pytest.fixture
def worker_process():
    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "labelstudio_site.settings.test"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "labelstudio_site",
            "worker",
            "-Q",
            "gpu,train,default",
            "--concurrency",
            "1",
            "-n",
            name,
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield name.split("@")[0]
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def test_healthz_is_ok_once_a_real_worker_answers(client, worker_process, settings):
    settings.HEALTHZ_PING_TIMEOUT = 1.0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        response = client.get("/healthz")
        if response.status_code == 200:
            break
        time.sleep(1)
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert worker_process in body["workers"]["detail"]


def test_livez_does_not_depend_on_workers(client):
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_healthz_only_answers_get(client):
    assert client.post("/healthz").status_code == 405
