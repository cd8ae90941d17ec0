"""Bad configuration stops every entry point with one sentence (exit status 2), never a traceback."""

import secrets

import pytest

from tests.conftest import clean_env

PRODUCTION = "labelstudio_site.settings.production"
GOOD_KEY = secrets.token_urlsafe(50)


def assert_one_sentence(result, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("AlbumGen Studio cannot start:")
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    "entry_point",
    [
        ["manage.py", "check"],
        ["-m", "celery", "-A", "labelstudio_site", "worker", "-Q", "default"],
        ["-c", "import labelstudio_site.wsgi"],
    ],
    ids=["manage", "celery-worker", "wsgi"],
)
def test_missing_secret_key_in_production_stops_every_entry_point(run_entry_point, entry_point):
    result = run_entry_point(*entry_point, env=clean_env(DJANGO_SETTINGS_MODULE=PRODUCTION, ALLOWED_HOSTS="x.org"))
    assert_one_sentence(result, "SECRET_KEY")


def test_short_secret_key_in_production_is_refused(run_entry_point):
    env = clean_env(DJANGO_SETTINGS_MODULE=PRODUCTION, SECRET_KEY="short", ALLOWED_HOSTS="x.org")
    assert_one_sentence(run_entry_point("manage.py", "check", env=env), "SECRET_KEY", "50 characters")


def test_missing_allowed_hosts_in_production_is_refused(run_entry_point):
    env = clean_env(DJANGO_SETTINGS_MODULE=PRODUCTION, SECRET_KEY=GOOD_KEY)
    assert_one_sentence(run_entry_point("manage.py", "check", env=env), "ALLOWED_HOSTS")


@pytest.mark.parametrize("url", ["redis//localhost:6379/0", "nosuchbroker://host/", "localhost:6379"])
def test_malformed_broker_url_is_refused(run_entry_point, url):
    result = run_entry_point("manage.py", "check", env=clean_env(CELERY_BROKER_URL=url))
    assert_one_sentence(result, "CELERY_BROKER_URL", url)


def test_malformed_database_url_is_refused(run_entry_point):
    result = run_entry_point("manage.py", "check", env=clean_env(DATABASE_URL="nosuchdb://user@host/name"))
    assert_one_sentence(result, "DATABASE_URL")


def test_unreachable_database_fails_preflight(run_entry_point):
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    env = clean_env(DATABASE_URL="postgres://albumgen:s3cret@127.0.0.1:1/albumgen")
    result = run_entry_point("manage.py", "preflight", env=env)
    assert_one_sentence(result, "DATABASE_URL", "unreachable")
    assert "s3cret" not in result.stderr


def test_unreachable_broker_fails_preflight(run_entry_point):
    env = clean_env(CELERY_BROKER_URL="redis://:s3cret@127.0.0.1:1/0")
    result = run_entry_point("manage.py", "preflight", env=env)
    assert_one_sentence(result, "CELERY_BROKER_URL", "unreachable")
    assert "s3cret" not in result.stderr


def test_production_settings_pass_the_deploy_check(run_entry_point):
    env = clean_env(DJANGO_SETTINGS_MODULE=PRODUCTION, SECRET_KEY=GOOD_KEY, ALLOWED_HOSTS="studio.example.org")
    result = run_entry_point("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_turning_off_the_ssl_redirect_is_reported_by_the_deploy_check(run_entry_point):
    env = clean_env(
        DJANGO_SETTINGS_MODULE=PRODUCTION,
        SECRET_KEY=GOOD_KEY,
        ALLOWED_HOSTS="studio.example.org",
        SECURE_SSL_REDIRECT="false",
    )
    result = run_entry_point("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "security.W008" in result.stderr + result.stdout
