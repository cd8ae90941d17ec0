import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Variables that select the configuration; cleared so a subprocess sees only what a test gives it.
CONFIG_VARIABLES = (
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DEBUG",
)


def clean_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in CONFIG_VARIABLES}
    env.update(overrides)
    return env


@pytest.fixture
def run_entry_point() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a project entry point (``manage.py ...``, ``-m celery ...``) in a fresh interpreter with given variables."""

    def run(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )

    return run


def load_fixture_script(relative: str) -> ModuleType:
    """A script under fixtures/ (not a package module, e.g. ``make_catalog.py``), loaded from its path."""
    path = ROOT / "fixtures" / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
