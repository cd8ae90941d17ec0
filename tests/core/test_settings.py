"""Settings come from the environment, with embedded defaults when nothing is set."""

import json
import os

from tests.conftest import clean_env

PRINT_CONFIG = (
    "import json, django; from django.conf import settings; django.setup(); "
    "from labelstudio_site.celery import app; "
    "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], "
    "'name': str(settings.DATABASES['default']['NAME']), 'broker': app.conf.broker_url, "
    "'transport_options': app.conf.broker_transport_options}))"
)


def read_config(run_entry_point, **env: str) -> dict:
    result = run_entry_point(
        "-c", PRINT_CONFIG, env=clean_env(DJANGO_SETTINGS_MODULE="labelstudio_site.settings.base", **env)
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_nothing_set_means_sqlite_and_the_filesystem_broker(run_entry_point, tmp_path):
    config = read_config(run_entry_point, ALBUMGEN_VAR_DIR=str(tmp_path))
    assert config["engine"] == "django.db.backends.sqlite3"
    assert config["name"] == str(tmp_path / "db.sqlite3")
    assert config["broker"].startswith("filesystem://")
    # Absolute folders under the var dir, whatever directory a process starts in.
    assert config["transport_options"]["data_folder_in"] == str(tmp_path / "broker" / "queue")
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_database_and_broker_urls_select_postgresql_and_redis(run_entry_point):
    config = read_config(
        run_entry_point,
        DATABASE_URL="postgres://u:p@db.internal:5433/albumgen",
        CELERY_BROKER_URL="redis://cache.internal:6379/2",
        CELERY_VISIBILITY_TIMEOUT="900",
    )
    assert config["engine"] == "django.db.backends.postgresql"
    assert config["name"] == "albumgen"
    assert config["broker"] == "redis://cache.internal:6379/2"
    assert config["transport_options"]["visibility_timeout"] == 900


def test_celery_is_set_up_for_long_gpu_tasks():
    from labelstudio_site.celery import app

    assert {queue.name for queue in app.conf.task_queues} == {"gpu", "train", "default"}
    assert app.conf.task_default_queue == "default"
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_the_suite_runs_on_the_database_the_environment_names():
    from django.db import connection

    url = os.environ.get("DATABASE_URL", "sqlite://")
    assert connection.vendor == ("postgresql" if url.startswith(("postgres", "postgresql")) else "sqlite")
