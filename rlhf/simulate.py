"""Simulated labelers: accounts with a known hidden preference that label through the studio's real HTTP API.

Flow: an admin token creates N labeler accounts (``POST /api/labelers/``); each simulated labeler then loops:
``POST /api/label/next/`` -> the hidden truth of the assignment's blind keys with the admin token
(``GET /api/label/assignments/<id>/reveal/``) -> the cover image from ``cover_url`` -> a noisy score per variant ->
ratings and ranking -> ``POST /api/label/assignments/<id>/submit/``, until the next task is 204 (nothing left for
this labeler) or ``max_tasks`` submissions are reached in all.

Scores and answers: ``score = preference(cover, features) + N(0, noise^2)``, one draw per variant of an assignment.
The ranking is by noisy score, best first. Both ratings (musicality and compatibility) are the noisy score's fifth of
the 0-1 scale: ``rating = 1 + min(4, floor(5 * clip(score, 0, 1)))`` (below 0.2 -> 1, ..., 0.8 and above -> 5), a
monotone mapping, so a higher score never gets a lower rating. ``listened_s`` is the variant's duration (the API
checks that each variant was heard); the simulator does not wait that long in real time.

The oracle file (``--oracle-out PATH``, optional): after each submitted assignment the simulator appends one JSON
line per variant the labeler rated, with the noise-free score the answers were drawn around::

    {"assignment_id": 12, "labeler": "sim-3", "cover_id": 4, "variant_id": 57, "key": "b", "score": 0.8125}

``variant_id`` and ``cover_id`` are the studio's ids from the reveal, the same ids a preference export's pair rows
carry (``cover_id``, ``chosen_variant_id``, ``rejected_variant_id``); ``labeler`` is the account's username.
Lines are appended (a rerun adds to the file) and only the simulator writes them, never the studio; one assignment's
lines are written together, and every labeler's go through the one event loop, so they never interleave.
``rlhf.oracle`` reads the file back and computes the ceiling pair accuracy of the labels.

Framework-free: HTTP only (httpx), never Django.
"""

import asyncio
import importlib
import inspect
import io
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import urljoin, urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from rlhf.preferences import Preference, SimCover

logger = logging.getLogger(__name__)

DEFAULT_PREFERENCE = "rlhf.preferences:brightness_energy"
# Accounts per POST /api/labelers/: each hashes a password (~0.3 s with Django's default hasher), so 10 keep one
# request to a few seconds, far under gunicorn's 30 s timeout.
CREATE_CHUNK = 10
# A labeler that fails this many assignments in a row stops (a broken server or preference, not bad luck).
MAX_CONSECUTIVE_ERRORS = 3


@dataclass
class SimulateConfig:
    """Options of ``python -m rlhf simulate`` (each field is a ``--flag``)."""

    server: str = field(metadata={"help": "base URL of the studio, e.g. http://127.0.0.1:8000"})
    admin_token: str = field(
        default="",
        metadata={
            "help": "API token of a staff user (python manage.py drf_create_token USER); "
            "default: the ALBUMGEN_ADMIN_TOKEN variable"
        },
    )
    labelers: int = field(default=3, metadata={"help": "simulated labeler accounts to create (default 3)"})
    prefix: str = field(default="sim", metadata={"help": "username prefix of the new accounts (default sim)"})
    preference: str = field(
        default=DEFAULT_PREFERENCE,
        metadata={
            "help": f"hidden preference as module:function (cover, features) -> score (default {DEFAULT_PREFERENCE})"
        },
    )
    noise: float = field(default=0.1, metadata={"help": "std of the Gaussian noise added to each score (default 0.1)"})
    seed: int = field(default=0, metadata={"help": "seed of the labelers' noise (default 0)"})
    max_tasks: int | None = field(
        default=None,
        metadata={"help": "stop after this many submitted assignments in all (default: until none is left)"},
    )
    concurrency: int = field(default=8, metadata={"help": "assignments worked on at once, at most (default 8)"})
    timeout_s: float = field(default=30.0, metadata={"help": "seconds before an HTTP request fails (default 30)"})
    oracle_out: str | None = field(
        default=None,
        metadata={
            "help": "append one JSON line per rated variant with its noise-free score to this file "
            "(see rlhf/simulate.py; default: no file)"
        },
    )

    def __post_init__(self) -> None:
        if self.labelers < 1:
            raise ValueError("--labelers must be at least 1")
        if self.noise < 0:
            raise ValueError("--noise must be 0 or more")
        if self.max_tasks is not None and self.max_tasks < 0:
            raise ValueError("--max-tasks must be 0 or more")
        if self.concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        if urlsplit(self.server).scheme not in ("http", "https") or not urlsplit(self.server).netloc:
            raise ValueError(f"--server must be an http(s) URL such as http://127.0.0.1:8000, not {self.server!r}")


class PreferenceError(ValueError):
    """A ``--preference`` that names no usable function; the message says why in one sentence."""


class SimulationError(RuntimeError):
    """The simulation cannot start: the server is unreachable or refuses the admin token; one sentence."""


class _StepError(Exception):
    """One assignment could not be answered (counted, the labeler goes on)."""


def load_preference(spec: str) -> Preference:
    """Import ``module:function`` (``function`` may be a dotted attribute path) and check it takes two arguments.

    Raises:
        PreferenceError: no colon, a module that cannot be imported, a missing attribute, or not a callable of
            (cover, features).
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise PreferenceError(f"--preference must be module:function, e.g. {DEFAULT_PREFERENCE}; got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's module, reported in one sentence
        raise PreferenceError(f"cannot import the preference module {module_name!r} ({exc})") from exc
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise PreferenceError(f"the module {module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise PreferenceError(f"{spec} is a {type(target).__name__}, not a function of (cover, features)")
    try:
        inspect.signature(target).bind(None, None)
    except TypeError as exc:
        raise PreferenceError(f"{spec} must take two arguments, (cover, features): {exc}") from exc
    except ValueError:  # builtins without a signature: let the first call tell
        pass
    return cast(Preference, target)


def rating_from_score(score: float) -> int:
    """1-5 by fifths of the 0-1 scale: below 0.2 -> 1, ..., 0.8 and above -> 5 (scores outside 0-1 are clipped)."""
    if math.isnan(score):
        return 1
    return 1 + min(4, int(math.floor(5 * min(max(score, 0.0), 1.0))))


def answers_for(
    *,
    assignment: dict[str, Any],
    reveal: dict[str, Any],
    cover: SimCover,
    preference: Preference,
    noise: float,
    rng: random.Random,
) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
    """The submit body of an assignment, the noisy score per blind key and the noise-free one.

    Args:
        assignment: the labeler's view (``POST /api/label/next/``): keys, durations, ``min_listen_s``.
        reveal: the admin's view (``GET .../reveal/``): features per key.
        cover: the cover as the labeler sees it.
        preference: the hidden preference.
        noise: std of the Gaussian noise per variant.
        rng: the labeler's random stream.

    Returns:
        The body of ``POST .../submit/``, the noisy score per key (what the answers follow) and the preference's own
        score per key.

    Raises:
        _StepError: the reveal does not match the assignment, a variant has no features, or the preference fails.
    """
    features = {variant["key"]: variant["features"] for variant in reveal["variants"]}
    keys = [variant["key"] for variant in assignment["variants"]]
    if sorted(features) != sorted(keys):
        raise _StepError(f"the reveal lists keys {sorted(features)}, the assignment {sorted(keys)}")
    scores: dict[str, float] = {}
    clean: dict[str, float] = {}
    for key in keys:
        if not isinstance(features[key], dict):
            raise _StepError(f"variant {key} of assignment {assignment['assignment_id']} has no features")
        try:
            clean[key] = float(preference(cover, features[key]))
        except Exception as exc:  # noqa: BLE001 - a plugged-in function may raise anything; reported per assignment
            raise _StepError(f"the preference failed on variant {key}: {type(exc).__name__}: {exc}") from exc
        scores[key] = clean[key] + (rng.gauss(0.0, noise) if noise > 0 else 0.0)
    ranking = sorted(keys, key=lambda key: scores[key], reverse=True)
    ratings = {}
    for variant in assignment["variants"]:
        rating = rating_from_score(scores[variant["key"]])
        # Heard to its end; a variant without a known duration is heard for as long as the API asks.
        listened = variant["duration_s"] if variant.get("duration_s") is not None else assignment["min_listen_s"]
        ratings[variant["key"]] = {"musicality": rating, "compatibility": rating, "listened_s": float(listened)}
    return {"ratings": ratings, "ranking": ranking}, scores, clean


def oracle_lines(*, reveal: dict[str, Any], labeler: str, clean: dict[str, float]) -> str:
    """The oracle file's lines for one submitted assignment: one JSON object per rated variant, in key order.

    Args:
        reveal: the admin's view of the assignment (ids behind the blind keys).
        labeler: the labeler's username.
        clean: the noise-free score per blind key (``answers_for``'s third value).
    """
    lines = []
    for variant in reveal["variants"]:
        line: dict[str, Any] = {"assignment_id": reveal["assignment_id"], "labeler": labeler}
        if reveal.get("cover_id") is not None:
            line["cover_id"] = reveal["cover_id"]
        line.update(variant_id=variant["variant_id"], key=variant["key"], score=clean[variant["key"]])
        lines.append(json.dumps(line) + "\n")
    return "".join(lines)


@dataclass
class LabelerStats:
    username: str
    submitted: int = 0
    errors: int = 0
    messages: list[str] = field(default_factory=list)


@dataclass
class SimulationResult:
    labelers: list[LabelerStats]
    elapsed_s: float

    @property
    def submitted(self) -> int:
        return sum(labeler.submitted for labeler in self.labelers)

    @property
    def errors(self) -> int:
        return sum(labeler.errors for labeler in self.labelers)

    @property
    def messages(self) -> list[str]:
        return [f"{labeler.username}: {message}" for labeler in self.labelers for message in labeler.messages]


def _detail(response: httpx.Response) -> str:
    """The API's one-line reason, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:200]


class _Budget:
    """Submissions left in all (None: no limit); a labeler reserves one before asking for a task."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    def reserve(self) -> bool:
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def release(self) -> None:
        if self.left is not None:
            self.left += 1


class _Labeler:
    def __init__(
        self,
        *,
        server: str,
        credentials: dict[str, str],
        admin: httpx.AsyncClient,
        config: SimulateConfig,
        preference: Preference,
        rng: random.Random,
        oracle: IO[str] | None,
    ) -> None:
        self.server = server
        self.username = credentials["username"]
        self.password = credentials.get("password", "")
        self.token_headers = {"Authorization": f"Token {credentials['token']}"}
        self.admin = admin
        self.config = config
        self.preference = preference
        self.rng = rng
        self.oracle = oracle
        self.stats = LabelerStats(username=self.username)
        self.signed_in = False
        # Its own client: the session cookie (when it signs in for media) belongs to this labeler alone.
        self.client = httpx.AsyncClient(base_url=server, timeout=config.timeout_s)

    async def run(self, *, budget: _Budget, slots: asyncio.Semaphore) -> LabelerStats:
        consecutive = 0
        try:
            while consecutive < MAX_CONSECUTIVE_ERRORS:
                if not budget.reserve():
                    break
                async with slots:
                    try:
                        done = await self._one_task()
                    except (_StepError, httpx.HTTPError) as exc:
                        budget.release()
                        consecutive += 1
                        self.stats.errors += 1
                        self.stats.messages.append(str(exc) or type(exc).__name__)
                        logger.info("%s: %s", self.username, exc)
                        continue
                if not done:
                    budget.release()
                    break
                consecutive = 0
        finally:
            await self.client.aclose()
        return self.stats

    async def _one_task(self) -> bool:
        """Answer the next task; False when there is none for this labeler."""
        response = await self.client.post("/api/label/next/", headers=self.token_headers)
        if response.status_code == 204:
            return False
        if response.status_code != 200:
            raise _StepError(f"next task: HTTP {response.status_code}: {_detail(response)}")
        assignment = response.json()
        try:
            reveal = await self.admin.get(f"/api/label/assignments/{assignment['assignment_id']}/reveal/")
            if reveal.status_code != 200:
                raise _StepError(f"reveal of assignment {assignment['assignment_id']}: HTTP {reveal.status_code}")
            cover = await self._cover(assignment)
            truth = reveal.json()
            body, _, clean = await asyncio.to_thread(
                answers_for,
                assignment=assignment,
                reveal=truth,
                cover=cover,
                preference=self.preference,
                noise=self.config.noise,
                rng=self.rng,
            )
            submitted = await self.client.post(
                f"/api/label/assignments/{assignment['assignment_id']}/submit/", json=body, headers=self.token_headers
            )
            if submitted.status_code != 200:
                raise _StepError(
                    f"submit of assignment {assignment['assignment_id']}: HTTP {submitted.status_code}: "
                    f"{_detail(submitted)}"
                )
        except (_StepError, httpx.HTTPError) as exc:
            await self._skip(assignment["assignment_id"], str(exc))
            raise
        if self.oracle is not None:
            # On the event loop, with no await between write and flush: no other labeler's lines can come between.
            self.oracle.write(oracle_lines(reveal=truth, labeler=self.username, clean=clean))
            self.oracle.flush()
        self.stats.submitted += 1
        return True

    async def _skip(self, assignment_id: int, why: str) -> None:
        """Give the task back so that another labeler can take the slot (best effort)."""
        try:
            await self.client.post(
                f"/api/label/assignments/{assignment_id}/skip/",
                json={"reason": f"simulated labeler could not answer: {why}"[:300]},
                headers=self.token_headers,
            )
        except httpx.HTTPError:
            pass

    async def _cover(self, assignment: dict[str, Any]) -> SimCover:
        url = urljoin(self.server + "/", assignment["cover_url"])
        same_origin = urlsplit(url)[:2] == urlsplit(self.server)[:2]
        # The token never leaves the studio's origin (covers may live on S3-compatible storage).
        headers = self.token_headers if same_origin else {}
        response = await self.client.get(url, headers=headers)
        if same_origin and not self.signed_in and _wants_sign_in(response):
            # The media view is a plain Django view: it knows sessions, not API tokens. Sign in like a person.
            await self._sign_in(response.headers.get("location") or "/accounts/login/")
            response = await self.client.get(url, headers=headers)
        if response.status_code != 200:
            raise _StepError(f"cover {assignment['cover_url']}: HTTP {response.status_code}")
        try:
            image = Image.open(io.BytesIO(response.content)).convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise _StepError(f"cover {assignment['cover_url']} is not an image Pillow can read ({exc})") from exc
        return SimCover(image=image, cover_url=url, assignment_id=assignment["assignment_id"])

    async def _sign_in(self, login_url: str) -> None:
        if not self.password:
            raise _StepError("the cover needs a signed-in session and this labeler has no password")
        page = await self.client.get(login_url)
        csrf = self.client.cookies.get("csrftoken")
        if page.status_code != 200 or not csrf:
            raise _StepError(f"sign-in page {login_url}: HTTP {page.status_code}")
        response = await self.client.post(
            login_url,
            data={"username": self.username, "password": self.password, "csrfmiddlewaretoken": csrf},
            # Django checks the Referer of HTTPS form posts against the host.
            headers={"Referer": str(page.url)},
        )
        if response.status_code != 302:
            raise _StepError(f"sign-in of {self.username} failed: HTTP {response.status_code}")
        self.signed_in = True


def _wants_sign_in(response: httpx.Response) -> bool:
    if response.status_code in (401, 403):
        return True
    return response.is_redirect and "login" in response.headers.get("location", "")


async def _create_labelers(admin: httpx.AsyncClient, *, count: int, prefix: str) -> list[dict[str, str]]:
    created: list[dict[str, str]] = []
    while len(created) < count:
        chunk = min(CREATE_CHUNK, count - len(created))
        response = await admin.post("/api/labelers/", json={"count": chunk, "prefix": prefix})
        if response.status_code == 401:
            raise SimulationError(f"the server at {admin.base_url} refused the admin token ({_detail(response)})")
        if response.status_code == 403:
            raise SimulationError("the admin token belongs to a user who is not staff; use a staff user's token")
        if response.status_code == 404:
            raise SimulationError(f"{admin.base_url} has no /api/labelers/ endpoint; is it an AlbumGen Studio server?")
        if response.status_code != 201:
            raise SimulationError(f"creating labelers failed: HTTP {response.status_code}: {_detail(response)}")
        created.extend(response.json()["labelers"])
    return created


async def simulate_async(config: SimulateConfig, preference: Preference) -> SimulationResult:
    """Create the labelers and run them until no task is left or ``max_tasks`` are submitted.

    Raises:
        SimulationError: the server cannot be reached, or refuses the admin token, or the oracle file cannot be
            opened.
    """
    server = config.server.rstrip("/")
    began = time.perf_counter()
    oracle = _open_oracle(config.oracle_out)
    try:
        labelers = await _run_labelers(config, preference, server=server, oracle=oracle)
    finally:
        if oracle is not None:
            oracle.close()
    return SimulationResult(labelers=labelers, elapsed_s=time.perf_counter() - began)


def _open_oracle(path: str | None) -> IO[str] | None:
    if path is None:
        return None
    try:
        return Path(path).open("a", encoding="utf-8")
    except OSError as exc:
        raise SimulationError(f"cannot open the oracle file {path} for appending ({exc.strerror or exc})") from exc


async def _run_labelers(
    config: SimulateConfig, preference: Preference, *, server: str, oracle: IO[str] | None
) -> list[LabelerStats]:
    async with httpx.AsyncClient(
        base_url=server, headers={"Authorization": f"Token {config.admin_token}"}, timeout=config.timeout_s
    ) as admin:
        try:
            accounts = await _create_labelers(admin, count=config.labelers, prefix=config.prefix)
        except httpx.TransportError as exc:
            raise SimulationError(f"cannot reach the server at {server} ({type(exc).__name__}: {exc})") from exc
        logger.info("created %d labelers: %s", len(accounts), ", ".join(a["username"] for a in accounts))
        budget, slots = _Budget(config.max_tasks), asyncio.Semaphore(config.concurrency)
        labelers = [
            _Labeler(
                server=server,
                credentials=account,
                admin=admin,
                config=config,
                preference=preference,
                # One stream per labeler, from the run seed and its place: reruns draw the same noise sequence.
                rng=random.Random(f"{config.seed}:{index}"),
                oracle=oracle,
            )
            for index, account in enumerate(accounts)
        ]
        stats = await asyncio.gather(*(labeler.run(budget=budget, slots=slots) for labeler in labelers))
    return list(stats)


def simulate(config: SimulateConfig) -> SimulationResult:
    """Run simulated labelers against a studio server (see the module docstring for the flow and the answers).

    Args:
        config: server, admin token, labelers (default 3), preference (default
            ``rlhf.preferences:brightness_energy``), noise (default 0.1), seed (default 0), max_tasks (default no
            limit), concurrency (default 8), timeout_s (default 30), oracle_out (default None: no oracle file).

    Raises:
        PreferenceError: ``config.preference`` names no usable function.
        SimulationError: the server cannot be reached, or refuses the admin token, or the oracle file cannot be
            opened.
    """
    preference = load_preference(config.preference)
    if not config.admin_token:
        raise SimulationError("an admin token is needed: pass --admin-token or set ALBUMGEN_ADMIN_TOKEN")
    return asyncio.run(simulate_async(config, preference))
