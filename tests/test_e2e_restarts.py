"""What API clients get while the hub restarts (docs/restarts.md).

End to end, an operator's restart: SIGTERM, then the same config and databases started
again. A stream of token-authenticated requests on an existing annotation runs through
it, and so does the shipped example client; every answer is recorded with its time.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import requests
from jupyterhub_annotations.authenticator import redact
from jupyterhub_annotations.handlers.base import (
    STOPPING,
    AnnotationHandler,
    APIHandler,
    StoppingFilter,
)

from tests.hub import REPO
from tests.test_e2e_accounts import logged_in_admin

API = "/hub/annotations/api/"
EXAMPLE = REPO / "share" / "examples" / "annotations_api.py"
SCOPES = ["annotations:read", "annotations:write"]


@dataclass
class Answer:
    at: float  # seconds since the stream started
    method: str
    status: int | None  # None: no HTTP answer (refused, reset)
    content_type: str = ""
    retry_after: str | None = None
    body: str = ""

    def __str__(self) -> str:
        head = f"{self.at:6.2f}s {self.method} {self.status or 'no answer'}"
        return f"{head} [{self.content_type}] Retry-After={self.retry_after} {self.body[:80]!r}"


def token_of(hub) -> str:
    made = logged_in_admin(hub).api("POST", "tokens", {"name": "restart", "scopes": SCOPES})
    assert made.status_code == 201, made.text
    return made.json()["token"]


def restart(hub) -> tuple[float, float]:
    """SIGTERM and start again, as an operator would; when the old hub had exited and
    when the new one answered its health check (time.monotonic)."""
    hub.stop()
    stopped = time.monotonic()
    hub.start()
    return stopped, time.monotonic()


def within_contract(answer: Answer) -> bool:
    """The API's word (2xx JSON), a JSON 503 with Retry-After, or no answer at all."""
    if answer.status is None:
        return True
    is_json = answer.content_type.startswith("application/json") and answer.body.startswith("{")
    if answer.status in (200, 201):
        return is_json
    unavailable = answer.status == 503 and answer.retry_after is not None
    return unavailable and is_json and '"message"' in answer.body


@pytest.mark.e2e
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_restart_answers_api_clients_with_json_503s_and_refusals_never_a_404(hub):
    token = token_of(hub)
    path = f"{hub.url}{API}projects/demo/items/restart/annotations/admin"
    created = requests.put(
        path, json={"data": 0}, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert created.status_code == 201, created.text
    answers: list[Answer] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def stream(index: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        n = 0
        while not stop.is_set():
            n += 1
            method = "PUT" if (n + index) % 2 else "GET"
            at = time.monotonic() - t0
            try:
                body = {"data": n} if method == "PUT" else None
                got = session.request(method, path, json=body, timeout=30)
            except requests.ConnectionError as e:
                answers.append(Answer(at, method, None, body=type(e).__name__))
                time.sleep(0.01)
                continue
            answers.append(
                Answer(
                    at,
                    method,
                    got.status_code,
                    got.headers.get("Content-Type", ""),
                    got.headers.get("Retry-After"),
                    got.text[:200].replace("\n", " "),
                )
            )

    threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        stopped, back = restart(hub)
        time.sleep(1.5)  # the new hub under the same stream
    finally:
        stop.set()
        for thread in threads:
            thread.join(35)
    answers.sort(key=lambda a: a.at)
    phases = Counter(
        (a.status, a.content_type.split(";")[0], a.retry_after is not None) for a in answers
    )
    print(
        f"\nrestart: down after {stopped - t0:.2f}s, healthy after {back - t0:.2f}s;"
        f" answers {dict(phases)}"
    )
    outside = [str(a) for a in answers if not within_contract(a)]
    assert not outside, f"{len(outside)} answers outside the contract, first: {outside[:10]}"
    assert not [a for a in answers if a.status == 404], "an existing annotation was a 404"
    # The stream met the restart, and the new hub answered it.
    assert any(a.status is None for a in answers), "no request met the restart"
    assert any(a.status == 200 and a.at > back - t0 for a in answers)


@pytest.mark.e2e
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_example_client_run_through_a_restart_completes_every_write(hub):
    token = token_of(hub)
    env = {**os.environ, "ANNOTATIONS_API_URL": f"{hub.url}{API}", "ANNOTATIONS_TOKEN": token}
    runs: list[tuple[float, float, subprocess.CompletedProcess]] = []
    stop = threading.Event()

    def loop() -> None:
        # One writer, one label per run: run n leaves version n with label run-n.
        while not stop.is_set():
            started = time.monotonic()
            run = subprocess.run(
                [sys.executable, str(EXAMPLE), f"run-{len(runs) + 1}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            runs.append((started, time.monotonic(), run))
            if run.returncode:
                return

    writer = threading.Thread(target=loop, daemon=True)
    writer.start()
    try:
        while len(runs) < 2 and writer.is_alive():
            time.sleep(0.05)
        stopped, back = restart(hub)
        # A run started on the new hub has finished: the writer is past the restart.
        while not any(start > back for start, _, _ in runs) and writer.is_alive():
            time.sleep(0.05)
    finally:
        stop.set()
        writer.join(150)
    failed = [run for _, _, run in runs if run.returncode]
    assert not failed, f"a run of the example failed: {failed[0].stdout}{failed[0].stderr}"
    for n, (_, _, run) in enumerate(runs, 1):
        assert f"your annotation of example-item is at version {n}" in run.stdout, run.stdout
    # Some run was under way while no hub answered, and waited for it.
    across = [run for start, end, run in runs if start < back and end > stopped]
    assert across, "no run of the example met the restart"
    assert any("trying again" in run.stderr for run in across), [r.stderr for r in across]
    stored = requests.get(
        f"{hub.url}{API}projects/demo/items/example-item/annotations/admin",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    assert (stored["version"], stored["data"]) == (len(runs), {"label": f"run-{len(runs)}"})


class Answered:
    """What `APIHandler.write_error` writes, recorded (the handler's other parts unused)."""

    _reason = "Internal Server Error"
    request = SimpleNamespace(method="PUT")
    _chunks = None  # the whole body was read
    write_error = AnnotationHandler.write_error
    render_error = APIHandler.render_error

    def __init__(self) -> None:
        self.status, self.headers, self.body = 0, {}, None

    def set_status(self, status: int, reason: str | None = None) -> None:
        self.status = status

    def set_header(self, name: str, value: str) -> None:
        self.headers[name] = value

    def finish(self, body: str) -> None:
        self.body = json.loads(body)


def test_a_request_the_stopping_hub_cancels_is_a_503_to_retry_not_a_500():
    """JupyterHub cancels every task once it has cleaned up after SIGTERM; Tornado then
    answers the cancelled request with ``send_error(500)``, as done here."""
    answered = Answered()

    async def request() -> None:
        try:
            await asyncio.sleep(30)  # a write waiting for the store's thread
        except asyncio.CancelledError:
            answered.set_status(500)
            answered.write_error(500)
            raise

    async def stop_the_hub() -> None:
        task = asyncio.create_task(request())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stop_the_hub())
    assert answered.status == 503 and answered.headers["Retry-After"] == "1"
    assert answered.body == {"error": {"status": 503, "message": STOPPING}}
    # Any other 500 stays one.
    other = Answered()

    async def fail() -> None:
        other.write_error(500)

    asyncio.run(fail())
    assert other.status == 0 and other.body["error"]["status"] == 500


def test_a_connection_cancelled_as_the_hub_stops_is_one_log_line_not_a_traceback():
    """Tornado logs the cancellation of a connection awaiting a request's `prepare` as
    "Uncaught exception" with its traceback (seen in this module's restarts)."""
    logger = logging.getLogger("test.stopping")
    handler = logging.StreamHandler(stream := io.StringIO())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    redact.install(logger, StoppingFilter)
    try:
        for error in (asyncio.CancelledError(), RuntimeError("a real bug")):
            try:
                raise error
            except BaseException:
                logger.error("Uncaught exception", exc_info=True)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert text.startswith("INFO A request was cut short: the hub is stopping\n")
    assert text.count("Traceback") == 1 and "RuntimeError: a real bug" in text
