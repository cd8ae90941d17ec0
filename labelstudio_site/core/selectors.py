"""Reads about the running platform: is the database reachable, the broker, at least one worker; which version."""

from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from kombu.exceptions import OperationalError as BrokerError

from labelstudio_site.celery import app as celery_app
from labelstudio_site.settings.base import redact_url


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


def platform_version() -> str:
    try:
        return version("albumgen-studio")
    except PackageNotFoundError:
        return "unknown (package not installed)"


def database_check() -> CheckResult:
    """Open the default connection and run one query."""
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return CheckResult(ok=False, detail=_first_line(exc))
    return CheckResult(ok=True, detail=connection.vendor)


def broker_check() -> CheckResult:
    """Connect to the Celery broker once, without the retries a worker would make."""
    url = celery_app.conf.broker_url
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)
            transport = conn.transport_cls
    except (BrokerError, OSError) as exc:
        return CheckResult(ok=False, detail=f"{redact_url(url)}: {_first_line(exc)}")
    return CheckResult(ok=True, detail=f"{transport}")


def workers_check(*, timeout: float) -> CheckResult:
    """Broadcast a ping and wait ``timeout`` seconds for the workers' replies."""
    # The file-system transport only returns early when told how many replies to wait for: without ``limit`` a ping
    # waits its whole timeout (measured).
    limit = 1 if settings.CELERY_BROKER_IS_FILESYSTEM else None
    try:
        replies = celery_app.control.ping(timeout=timeout, limit=limit)
    except (BrokerError, OSError) as exc:
        return CheckResult(ok=False, detail=_first_line(exc))
    names = sorted(name for reply in replies for name in reply)
    if not names:
        return CheckResult(ok=False, detail=f"no worker answered a ping within {timeout:g} s")
    return CheckResult(ok=True, detail=", ".join(names))


def health_report() -> dict[str, Any]:
    """Database, broker and workers, each ``{"ok", "detail"}``, plus the overall ``status`` and the version."""
    database = database_check()
    broker = broker_check()
    workers = (
        workers_check(timeout=settings.HEALTHZ_PING_TIMEOUT)
        if broker.ok
        else CheckResult(ok=False, detail="not checked: the broker is unreachable")
    )
    checks = {"database": database, "broker": broker, "workers": workers}
    return {
        "status": "ok" if all(check.ok for check in checks.values()) else "fail",
        "version": platform_version(),
        **{name: asdict(check) for name, check in checks.items()},
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
