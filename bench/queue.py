"""Benchmark: the work queue (SPEC 17), claims per second at 16 concurrent annotators.

On one real hub per backend (SQLite, then PostgreSQL when it is reachable at
ANNOTATIONS_TEST_POSTGRES, in a fresh database dropped afterwards; each behind the real
proxy), 16 annotator accounts with a personal access token each (accounts inserted
straight into the store, tokens issued by the store's own `Tokens.create`), and
projects with ``overlap`` 16, so that every annotator may take every item and the queue
never runs dry. 16 Python threads, one per annotator, each with a `requests.Session`
of its own, run for a fixed time:
  bare       GET of the bare handler mounted in the hub (the ceiling, same clients)
  queue-5k   the annotator's loop: POST queue/next, then PUT their annotation of the
             item it returned (which completes the claim), in a project of 5,000 items
  queue-500  the same loop in a project of 500 items: how a claim scales with the
             project's items
Each measured run gets a fresh project (its items just registered, no claims yet), so
the rounds start from the same state. The three targets run in 3 interleaved rounds of
5 s (each after a 1 s warm-up on the same project), so that they see the same load on
a shared machine. Reported: completed claim+write cycles per second (claims/s), next
calls and requests per second, latencies, and the CPU time per request of the hub
process and, on a local PostgreSQL, of the server processes serving the hub's database
(where the queue's queries run); ratios to the bare handler as in `bench.annotations`
(the median of the round-by-round ratios). Last, the bare handler once under wrk (2
threads, 16 connections): the ceiling of the Python client itself.
Run with `make bench` or `python -m bench.queue`.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
import sqlalchemy as sa
from jupyterhub_annotations.authenticator.models import Account, utcnow
from jupyterhub_annotations.authenticator.permissions import Principal
from jupyterhub_annotations.authenticator.store import Store
from jupyterhub_annotations.authenticator.tokens import Tokens

from bench.annotations import progress, ratios, summary
from bench.common import (
    CONNECTIONS,
    PG_URL,
    THREADS,
    admin_session,
    cpu_seconds,
    on_postgres,
    on_sqlite,
    wrk,
)
from tests.hub import Browser, Hub

ANNOTATORS = [f"bench-annotator-{n:02}" for n in range(16)]
SCOPES = ["annotations:read", "annotations:write"]
ROUNDS = 3  # the targets are measured this many times, interleaved
ROUND_SECONDS = 5  # seconds of each measured run
WARMUP = 1  # seconds of the same load before each measured run
API = "/hub/annotations/api"
BARE = "/hub/bench/bare"
BODY = {"data": {"label": "cat", "score": 0.87, "box": [12, 34, 56, 78]}}
SIZES = {"queue-5k": 5_000, "queue-500": 500}  # items in the project of each target
KEYS = ["bare", *SIZES]
LABELS = {
    "bare": "bare Tornado handler in the hub (16 threads, `GET`)",
    "queue-5k": "`POST queue/next` + `PUT` annotation, 5,000 items",
    "queue-500": "`POST queue/next` + `PUT` annotation, 500 items",
}


def check(response: requests.Response, status: int, what: str) -> requests.Response:
    if response.status_code != status:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:500]}")
    return response


# -- set-up -----------------------------------------------------------------------------


def make_annotators(db_url: str) -> dict[str, str]:
    """The annotator accounts, straight into the store, and a PAT of each issued by the
    store's token code (what `POST tokens` runs): name -> plaintext token."""
    store = Store(db_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(
                sa.insert(Account.__table__),
                [{"name": name, "kind": "user", "created_at": utcnow()} for name in ANNOTATORS],
            )
        tokens = Tokens(store)
        return {
            name: tokens.create(Principal(name=name, admin=False), "bench-queue", SCOPES)[0]
            for name in ANNOTATORS
        }
    finally:
        store.dispose()


def make_project(admin: Browser, slug: str, items: int) -> str:
    """A project with every annotator as a member, ``overlap`` 16 and ``items`` items."""
    check(admin.api("POST", "projects", {"slug": slug, "overlap": len(ANNOTATORS)}), 201, slug)
    for name in ANNOTATORS:
        member = admin.api("PUT", f"projects/{slug}/members/{name}", {"role": "annotator"})
        check(member, 201, f"{slug}: adding {name}")
    records = [
        {"item": f"img-{n:05}", "data": {"url": f"https://example.org/img/{n}.png"}}
        for n in range(items)
    ]
    check(admin.api("POST", f"projects/{slug}/items", {"items": records}), 201, f"{slug} items")
    return slug


# -- the load ---------------------------------------------------------------------------


@dataclass
class Client:
    name: str
    http: requests.Session


@dataclass
class Tally:
    """One client thread's requests: latencies (s) by kind, completed cycles."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    cycles: int = 0

    def timed(self, kind: str, began: float) -> None:
        self.latencies.setdefault(kind, []).append(time.perf_counter() - began)


Step = Callable[[Client, Tally], None]


def bare_step(hub: Hub) -> Step:
    url = f"{hub.url}{BARE}"

    def step(client: Client, tally: Tally) -> None:
        began = time.perf_counter()
        response = client.http.get(url, timeout=60)
        tally.timed("bare", began)
        check(response, 200, "bare handler")
        tally.cycles += 1

    return step


def queue_step(hub: Hub, slug: str) -> Step:
    """Claim the next item, then write the annotation that completes the claim."""
    base = f"{hub.url}{API}/projects/{slug}"

    def step(client: Client, tally: Tally) -> None:
        began = time.perf_counter()
        claim = client.http.post(f"{base}/queue/next", timeout=60)
        tally.timed("next", began)
        if claim.status_code == 204:
            raise RuntimeError(f"the queue of {slug} ran dry for {client.name}: more items")
        item = check(claim, 200, f"{client.name}: next in {slug}").json()["item"]
        began = time.perf_counter()
        put = client.http.put(
            f"{base}/items/{item}/annotations/{client.name}", json=BODY, timeout=60
        )
        tally.timed("put", began)
        check(put, 201, f"{client.name}: PUT {item} in {slug}")
        tally.cycles += 1

    return step


def percentile(values: list[float], q: int) -> float:
    """The ``q``-th percentile of ``values`` (seconds) in ms."""
    if len(values) < 2:
        return values[0] * 1000 if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def drive(
    hub: Hub,
    clients: list[Client],
    step: Step,
    seconds: float,
    db_cpu: Callable[[], dict[int, float]] | None = None,
) -> dict[str, float]:
    """Every client runs ``step`` over and over in a thread of its own for ``seconds``.

    Returns requests/s and cycles/s (each over the time until the last thread's last
    request ended), latencies (ms), and the CPU time per request of the hub process
    (``cpu_us``) and of the database server's processes (``db_cpu_us``: ``db_cpu``
    gives their CPU seconds so far by pid).
    """
    tallies = [Tally() for _ in clients]
    errors: list[BaseException] = []
    stop = threading.Event()
    ready = threading.Barrier(len(clients) + 1)

    def run(client: Client, tally: Tally) -> None:
        ready.wait()
        try:
            while not stop.is_set():
                step(client, tally)
        except Exception as e:  # reported by the main thread, which raises
            errors.append(e)
            stop.set()

    threads = [
        threading.Thread(target=run, args=pair, daemon=True)
        for pair in zip(clients, tallies, strict=True)
    ]
    for thread in threads:
        thread.start()
    ready.wait()
    pid = hub.proc.pid
    cpu_before, db_before = cpu_seconds(pid), db_cpu() if db_cpu else None
    started = time.perf_counter()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu_after, db_after = cpu_seconds(pid), db_cpu() if db_cpu else None
    if errors:
        raise RuntimeError(f"{len(errors)} clients failed; the first: {errors[0]}")
    by_kind: dict[str, list[float]] = {}
    for tally in tallies:
        for kind, values in tally.latencies.items():
            by_kind.setdefault(kind, []).extend(values)
    every = [value for values in by_kind.values() for value in values]
    requests_made = len(every)
    result = {
        "rps": requests_made / elapsed,
        "cycles_s": sum(t.cycles for t in tallies) / elapsed,
        "next_s": len(by_kind.get("next", [])) / elapsed,
        "p50": percentile(every, 50),
        "p99": percentile(every, 99),
        **{f"{kind}_p50": percentile(values, 50) for kind, values in by_kind.items()},
    }
    if cpu_before is not None and cpu_after is not None:
        result["cpu_us"] = (cpu_after - cpu_before) / max(requests_made, 1) * 1e6
    if db_before is not None and db_after is not None:
        spent = sum(cpu - db_before.get(p, 0.0) for p, cpu in db_after.items())
        result["db_cpu_us"] = spent / max(requests_made, 1) * 1e6
    return result


def postgres_cpu(admin: sa.Engine, database: str) -> Callable[[], dict[int, float]] | None:
    """CPU seconds so far of each server process connected to ``database`` (by pid), or
    None where the server is not on this machine (its pids would be someone else's)."""
    if sa.engine.make_url(PG_URL).host not in (None, "", "127.0.0.1", "localhost", "::1"):
        return None

    def snapshot() -> dict[int, float]:
        with admin.connect() as conn:
            pids = conn.scalars(
                sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
                {"name": database},
            ).all()
        found = {}
        for pid in pids:
            try:
                if b"postgres" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
            except OSError:
                continue
            cpu = cpu_seconds(pid)
            if cpu is not None:
                found[pid] = cpu
        return found

    return snapshot


# -- the runs -----------------------------------------------------------------------------


def run_backend(
    hub: Hub,
    backend: str,
    results: dict,
    notes: dict,
    db_cpu: Callable[[], dict[int, float]] | None = None,
) -> None:
    progress(f"[{backend}] {len(ANNOTATORS)} annotators and their tokens ...")
    tokens = make_annotators(hub.db_url)
    clients = []
    for name, token in tokens.items():
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        clients.append(Client(name, http))
    admin = admin_session(hub)
    progress(f"[{backend}] {ROUNDS * len(SIZES)} projects (one per measured run) ...")
    slugs = {
        (key, n): make_project(admin, f"bench-{key}-{n}", items)
        for n in range(ROUNDS)
        for key, items in SIZES.items()
    }
    for n in range(ROUNDS):
        for key in KEYS:
            progress(f"[{backend}] round {n + 1}/{ROUNDS}: {key} ...")
            step = bare_step(hub) if key == "bare" else queue_step(hub, slugs[(key, n)])
            drive(hub, clients, step, WARMUP)
            result = drive(hub, clients, step, ROUND_SECONDS, db_cpu)
            results.setdefault((backend, key), []).append(result)
    progress(f"[{backend}] the bare handler under wrk ...")
    notes[backend] = {
        "wrk_bare": wrk(f"{hub.url}{BARE}", {}, ROUND_SECONDS, WARMUP, cpu_pid=hub.proc.pid)
    }
    for client in clients:
        client.http.close()


def run_sqlite(results: dict, notes: dict) -> None:
    on_sqlite(lambda hub: run_backend(hub, "SQLite", results, notes))


def run_postgres(results: dict, notes: dict) -> None:
    on_postgres(
        lambda hub, admin, name: run_backend(
            hub, "PostgreSQL", results, notes, postgres_cpu(admin, name)
        )
    )


# -- the report -----------------------------------------------------------------------------


def total_cpu(run: dict[str, float]) -> float:
    """Hub plus database server CPU per request (on SQLite the database is the hub)."""
    return run["cpu_us"] + run.get("db_cpu_us", 0.0)


def paired(num: list[dict], den: list[dict], of: Callable[[dict], float]) -> float:
    """The median of the round-by-round ratios of ``of`` (num/den)."""
    return statistics.median(of(n) / of(d) for n, d in zip(num, den, strict=True))


def report(results: dict, notes: dict) -> None:
    print(
        f"\n{len(ANNOTATORS)} client threads (requests.Session each), {ROUNDS} interleaved "
        f"rounds of {ROUND_SECONDS}s runs (each after a {WARMUP}s warm-up)\n"
    )
    print(
        "| backend | target | claims/s | req/s | p50 ms | p99 ms | next / PUT p50 ms "
        "| hub CPU µs/req | DB server CPU µs/req | vs bare: req/s | vs bare: hub CPU "
        "| vs bare: hub+DB CPU |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    for (backend, key), runs in results.items():
        r = summary(runs)
        bare = results[(backend, "bare")]
        by_rps, by_cpu = ratios(runs, bare, paired=True)
        has_db = all("db_cpu_us" in run for run in runs + bare)
        by_total = paired(bare, runs, total_cpu)
        queue = key != "bare"
        claims = f"{statistics.fmean(run['cycles_s'] for run in runs):.0f}" if queue else "-"
        split = (
            f"{statistics.median(run['next_p50'] for run in runs):.1f} / "
            f"{statistics.median(run['put_p50'] for run in runs):.1f}"
            if queue
            else "-"
        )
        db = f"{statistics.median(run['db_cpu_us'] for run in runs):.0f}" if has_db else "-"
        print(
            f"| {backend} | {LABELS[key]} | {claims} | {r['rps']:.0f} | {r['p50']:.1f} | "
            f"{r['p99']:.1f} | {split} | {r.get('cpu_us', 0):.0f} | {db} | {by_rps:.2f}x | "
            f"{by_cpu or 0:.2f}x | {by_total:.2f}x |"
        )
    print()
    for backend in dict.fromkeys(b for b, _ in results):
        big, small = results[(backend, "queue-5k")], results[(backend, "queue-500")]
        scale = paired(small, big, lambda run: run["cycles_s"])
        per_round = ", ".join(f"{run['cycles_s']:.0f}" for run in big)
        print(
            f"[{backend}] claims/s with 500 items vs 5,000: {scale:.2f}x "
            f"(5,000 items, per round: {per_round})"
        )
        for key in SIZES:
            runs = results[(backend, key)]
            per_cycle = statistics.median(
                total_cpu(run) * run["rps"] / run["cycles_s"] for run in runs
            )
            print(
                f"[{backend}] {key}: {statistics.fmean(r['next_s'] for r in runs):.0f} next "
                f"calls/s; hub+DB CPU per claim+write cycle {per_cycle / 1000:.1f} ms"
            )
        w = notes[backend]["wrk_bare"]
        print(
            f"[{backend}] bare handler under wrk -t{THREADS} -c{CONNECTIONS} (the ceiling "
            f"without the Python client): {w['rps']:.0f} req/s, p50 {w['p50']:.1f} ms, hub "
            f"CPU {w.get('cpu_us', 0):.0f} µs/req"
        )


def main() -> int:
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    notes: dict[str, dict] = {}
    started = time.monotonic()
    run_sqlite(results, notes)
    run_postgres(results, notes)
    report(results, notes)
    print(f"\n(the whole run took {time.monotonic() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
