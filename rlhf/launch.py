"""Launch a training run on a studio's train queue over its HTTP API and follow it to the end.

The ``python -m rlhf`` training commands use this when given ``--server``; without it they train locally on files.
Framework-free: HTTP only (httpx), never Django.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

# The run page polls every 2 s; a terminal needs no more.
POLL_INTERVAL_S = 2.0


class LaunchError(RuntimeError):
    """The studio refused the launch or could not be reached; the message says why."""


@dataclass(frozen=True)
class Studio:
    server: str
    admin_token: str
    timeout_s: float = 30.0

    def client(self) -> httpx.Client:
        if not self.admin_token:
            raise LaunchError("give a staff user's API token (--admin-token or ALBUMGEN_ADMIN_TOKEN)")
        return httpx.Client(
            base_url=self.server, headers={"Authorization": f"Token {self.admin_token}"}, timeout=self.timeout_s
        )


def _json(response: httpx.Response, action: str) -> dict[str, Any]:
    if response.status_code in (401, 403):
        raise LaunchError(f"{action}: the server refused the token (it must belong to a staff user)")
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:200]}
        detail = body.get("detail") if isinstance(body, dict) and "detail" in body else body
        raise LaunchError(f"{action}: {detail}")
    payload: dict[str, Any] = response.json()
    return payload


def run_launch(
    studio: Studio, *, kind: str, name: str, config: dict[str, Any], **related: int | None
) -> dict[str, Any]:
    """Queue a run; ``related`` are ``parent_version_id``, ``reward_version_id``, ``dataset_export_id``.

    Raises:
        LaunchError: the studio refused the launch (the sentence is the studio's) or was unreachable.
    """
    body = {"kind": kind, "name": name, "config": config, **{k: v for k, v in related.items() if v is not None}}
    try:
        with studio.client() as client:
            return _json(client.post("/api/training-runs/", json=body), "launch refused")
    except httpx.HTTPError as exc:
        raise LaunchError(f"could not reach {studio.server}: {exc}") from exc


def run_follow(
    studio: Studio, run_id: int, *, report: Callable[[dict[str, Any]], None], interval_s: float = POLL_INTERVAL_S
) -> dict[str, Any]:
    """Poll a run until it finishes, calling ``report`` with each new state; returns the final state."""
    last_step = -1
    try:
        with studio.client() as client:
            while True:
                state = _json(client.get(f"/api/training-runs/{run_id}/"), f"run {run_id}")
                if state["step"] != last_step or state["finished"]:
                    report(state)
                    last_step = state["step"]
                if state["finished"]:
                    return state
                time.sleep(interval_s)
    except httpx.HTTPError as exc:
        raise LaunchError(f"lost {studio.server}: {exc}") from exc
