"""docker-compose.yml cannot run here (no Docker engine), so check what it points at: every command and health check
names a real entry point of the project, and every variable it reads is documented in the README."""

import importlib
import re
import shlex

import pytest
import yaml
from celery.app.utils import find_app
from django.core.management import get_commands
from django.urls import resolve

from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = {name: service for name, service in SERVICES.items() if "build" in service}


def as_argv(command) -> list[str]:
    if isinstance(command, str):
        return shlex.split(command)
    if command[0] == "CMD-SHELL":
        return shlex.split(command[1])
    return command[1:] if command[0] == "CMD" else list(command)


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def assert_real_entry_point(argv: list[str]) -> None:
    program = argv[0]
    if program == "gunicorn":
        module_name, attribute = argv[1].split(":")
        assert callable(getattr(importlib.import_module(module_name), attribute))
    elif program == "celery":
        app = find_app(option(argv, "-A"))
        assert app.main == "labelstudio_site"
        if argv[argv.index("-A") + 2] == "worker":
            known = {queue.name for queue in app.conf.task_queues}
            assert set(option(argv, "-Q").split(",")) <= known
    elif program == "python" and argv[1] == "manage.py":
        assert argv[2] in get_commands()
    elif program == "python" and argv[1] == "-c":
        for url in re.findall(r"http://localhost:8000(/[^'\"]*)", argv[2]):
            resolve(url)
    else:
        pytest.fail(f"unknown entry point {argv}")


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_command_and_health_check_point_at_real_entry_points(name):
    service = APP_SERVICES[name]
    assert_real_entry_point(as_argv(service["command"]))
    if name != "migrate":
        assert_real_entry_point(as_argv(service["healthcheck"]["test"]))


def test_every_long_running_service_has_a_health_check():
    for name, service in SERVICES.items():
        if name != "migrate":
            assert "healthcheck" in service, name


def test_gpu_worker_takes_the_gpu_queue_one_task_at_a_time_on_a_reserved_nvidia_device():
    argv = as_argv(SERVICES["worker-gpu"]["command"])
    assert option(argv, "-Q") == "gpu"
    assert option(argv, "--concurrency") == "1"
    (device,) = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_train_worker_takes_the_train_queue():
    assert option(as_argv(SERVICES["worker-train"]["command"]), "-Q") == "train"


def test_every_queue_has_a_consumer():
    from labelstudio_site.celery import app

    consumed = set()
    for service in APP_SERVICES.values():
        argv = as_argv(service["command"])
        if "worker" in argv:
            consumed |= set(option(argv, "-Q").split(","))
    assert consumed == {queue.name for queue in app.conf.task_queues}


def test_postgres_keeps_its_data_in_a_volume_and_media_is_shared():
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in SERVICES["postgres"]["volumes"])
    for name in ("web", "worker-gpu", "worker-train"):
        assert "media:/data/media" in APP_SERVICES[name]["volumes"]
        assert APP_SERVICES[name]["environment"]["MEDIA_ROOT"] == "/data/media"


def test_the_image_entry_point_runs_the_preflight_check():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["albumgen-entrypoint"]' in dockerfile
    assert "COPY docker/entrypoint.sh /usr/local/bin/albumgen-entrypoint" in dockerfile
    assert "python manage.py preflight" in (ROOT / "docker" / "entrypoint.sh").read_text()


def documented_variables() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)`", readme, flags=re.MULTILINE))


def test_every_variable_the_stack_reads_is_documented_in_the_readme():
    referenced = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))
    for service in APP_SERVICES.values():
        referenced |= set(service["environment"])
    missing = referenced - documented_variables()
    assert not missing, f"not in the README's configuration table: {sorted(missing)}"


def test_every_variable_the_settings_read_is_documented_in_the_readme():
    source = "\n".join(path.read_text() for path in (ROOT / "labelstudio_site" / "settings").glob("*.py"))
    read = set(re.findall(r"env\.\w+\(\"([A-Z][A-Z0-9_]*)\"", source))
    assert read, "the settings read no variables through env: the pattern above is out of date"
    missing = read - documented_variables()
    assert not missing, f"not in the README's configuration table: {sorted(missing)}"
