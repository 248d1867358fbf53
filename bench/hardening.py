"""Benchmark: what the review's attacks cost the hub (SPEC section 13).

Starts one real hub (behind the real proxy, SQLite) and measures, in the same run:

  bodies   the latency of other requests (``GET /hub/health`` and ``GET me`` with a
           token, probed every 20 ms) while a client sends a 64 MiB import (refused
           from its Content-Length), an anonymous 100 MiB body, and an accepted import
           of 10,000 records (parsed off the event loop); the target is a worst
           latency within 0.5 s;
  oracle   the time of a login for an existing account and for an unknown name,
           before and after both are locked out: the ratio should stay near 1.

Run with `make bench` (or `python -m bench.hardening`).
"""

from __future__ import annotations

import json
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import requests

from bench.common import ADMIN, admin_session, start_hub
from tests.hub import Browser, Hub, form_fields

MIB = 1 << 20
PROBE_EVERY = 0.02
WRONG = "not the password 000"
ORACLE_ROUNDS = 30


class Probe:
    """Requests ``urls`` one after the other every PROBE_EVERY seconds, keeping each
    one's latency, until stopped."""

    def __init__(self, hub: Hub, urls: list[tuple[str, dict]]) -> None:
        self.hub, self.urls = hub, urls
        self.latencies: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            for url, headers in self.urls:
                started = time.perf_counter()
                try:
                    ok = session.get(url, headers=headers, timeout=30).status_code == 200
                except requests.RequestException:
                    ok = False
                self.latencies.append(time.perf_counter() - started)
                self.errors += not ok
            time.sleep(PROBE_EVERY)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def import_body(size: int) -> Iterator[bytes]:
    """A valid import body of exactly ``size`` bytes, in 1 MiB chunks: what a careless
    client sends, and what the hub would have to parse if it read it."""
    head, tail = b'{"annotations": [', b'{"item": "last", "data": 0}]}'
    record = b'{"item": "img-00001", "data": {"label": "cat", "box": [1, 2, 3, 4]}}, '
    middle = size - len(head) - len(tail)
    chunk = record * (MIB // len(record))
    yield head
    while middle > 0:
        part = chunk if middle >= len(chunk) else b" " * middle  # spaces: valid JSON
        yield part
        middle -= len(part)
    yield tail


def send_whole_body(hub: Hub, path: str, headers: dict, size: int) -> tuple[int, float]:
    """POST a valid ``size``-byte import body, all of it, as a careless client would;
    returns the status (0 if the hub closed the connection first) and the seconds."""
    url = urlsplit(hub.url)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    started = time.perf_counter()
    status = 0
    with socket.create_connection((url.hostname, url.port), timeout=60) as s:
        request = f"POST {path} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {size}\r\n\r\n"
        s.sendall(request.encode())
        try:
            for part in import_body(size):
                s.sendall(part)
        except OSError:
            pass  # refused and closed early, as it should
        try:
            answer = s.recv(65536)
            status = int(answer.split()[1]) if answer else 0
        except (OSError, IndexError, ValueError):
            pass
    return status, time.perf_counter() - started


def summary(probe: Probe) -> str:
    if not probe.latencies:
        return "no probes"
    worst = max(probe.latencies) * 1000
    median = statistics.median(probe.latencies) * 1000
    return (
        f"{len(probe.latencies)} probes, median {median:.1f} ms, worst {worst:.1f} ms, "
        f"{probe.errors} errors (target: worst <= 500 ms)"
    )


def bodies(hub: Hub, admin: Browser) -> None:
    token = admin.api("POST", "tokens", {"name": "bench", "scopes": ["annotations:write"]})
    token = token.json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    probes = [(f"{hub.url}/hub/health", {}), (f"{hub.url}/hub/annotations/api/me", auth)]
    importing = "/hub/annotations/api/projects/demo/annotations/import"
    cases = [
        ("64 MiB import (refused)", importing, {**auth, "Content-Type": "application/json"}, 64),
        ("100 MiB anonymous body", importing, {"Content-Type": "application/json"}, 100),
    ]
    print("\nOther requests' latency while a big body arrives:")
    for label, path, headers, mib in cases:
        with Probe(hub, probes) as probe:
            time.sleep(0.5)
            status, seconds = send_whole_body(hub, path, headers, mib * MIB)
            time.sleep(0.5)
        print(f"  {label}: answered {status} in {seconds:.2f} s; {summary(probe)}")
    records = [
        {"item": f"img-{i:05d}", "data": {"label": "cat", "box": [i, i, 10, 10]}}
        for i in range(10_000)
    ]
    body = json.dumps({"annotations": records})
    with Probe(hub, probes) as probe:
        time.sleep(0.5)
        started = time.perf_counter()
        answer = requests.post(
            f"{hub.url}{importing}",
            data=body,
            headers={**auth, "Content-Type": "application/json"},
            timeout=120,
        )
        seconds = time.perf_counter() - started
        time.sleep(0.5)
    size = len(body) / MIB
    print(
        f"  accepted import of {len(records)} records ({size:.1f} MiB): answered "
        f"{answer.status_code} in {seconds:.2f} s; {summary(probe)}"
    )


def login_seconds(hub: Hub, name: str, password: str) -> tuple[int, float]:
    browser = Browser(hub)
    fields = form_fields(browser.get("/hub/login").text)
    started = time.perf_counter()
    answer = browser.http.post(
        f"{hub.url}/hub/login",
        data={**fields, "username": name, "password": password},
        timeout=60,
    )
    return answer.status_code, time.perf_counter() - started


def oracle(hub: Hub) -> None:
    print(
        "\nLogin time, existing account / unknown name (median of "
        f"{ORACLE_ROUNDS} interleaved attempts each):"
    )
    for phase in ("before lockout", "after lockout"):
        if phase == "after lockout":
            for name in (ADMIN, "nobody-at-all"):
                while login_seconds(hub, name, WRONG)[0] != 429:
                    pass
        times: dict[str, list[float]] = {ADMIN: [], "nobody-at-all": []}
        statuses: dict[str, set[int]] = {ADMIN: set(), "nobody-at-all": set()}
        for _ in range(ORACLE_ROUNDS if phase == "after lockout" else 4):
            for name in times:
                status, seconds = login_seconds(hub, name, WRONG)
                times[name].append(seconds)
                statuses[name].add(status)
        known, unknown = (statistics.median(times[n]) * 1000 for n in times)
        print(
            f"  {phase}: existing {known:.1f} ms {sorted(statuses[ADMIN])}, unknown "
            f"{unknown:.1f} ms {sorted(statuses['nobody-at-all'])}, "
            f"ratio {known / unknown:.2f}x (target about 1x)"
        )


def main() -> int:
    # The oracle needs more failures than the default limit before the hub locks:
    # four before the lockout, then enough to lock, per name.
    hub = start_hub(extra_config="c.AnnotationAuthenticator.lockout_max_failures = 5\n")
    try:
        admin = admin_session(hub)
        bodies(hub, admin)
        oracle(hub)
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
