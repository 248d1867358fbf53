"""Benchmark: the annotation API (SPEC section 12, issue 5).

On one real hub per backend (SQLite, then PostgreSQL when it is reachable at
ANNOTATIONS_TEST_POSTGRES; each behind the real proxy), wrk with 2 threads and 16
connections. Targets run in groups; a group is measured in 3 interleaved rounds of 5 s
runs (each after a 1 s warm-up), so that a target and the bare handler it is compared
with see the same load on a shared machine:
  bare      a bare handler mounted in the hub (the ceiling, measured in the same hub)
  put       PUT .../items/{item}/annotations/admin with a PAT, unconditional; every
            request in flight writes its own annotation (a wrk thread cycles through
            64 items of its own)
  get       GET of one annotation, PAT
  item-1k   GET .../items/{item}/annotations (the item's 10 annotations) with 1,000
            annotations in the project
then grows the project to 1,000,000 annotations (bulk INSERT ... SELECT straight into
the store through its engine, not through HTTP) and measures a second group:
  bare-1M     the bare handler again
  item-small  the item read in a second project that keeps 1,000 annotations
  item-1M     the item read of item-1k, now with 1M annotations in the project
  get-1M, put-1M   get and put again
then streams the whole big project as NDJSON and samples the hub process's resident
memory (/proc/<pid>/status) during the export, against its idle figure: it must stay
bounded; meanwhile wrk loads get-1M and a client times /hub/health, to show what an
export costs other requests. Prints a markdown table with each target's ratio to the
bare handler of its group (by req/s and by the hub's CPU time per request, which other
load on the machine disturbs less), and the verdicts: put >= 0.4x bare, get >= 0.6x
bare, an item read with 1M annotations in the project within 10% of one with 1k.
Run with `make bench` or `python -m bench.annotations`.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

import requests
import sqlalchemy as sa
from jupyterhub_annotations.authenticator.models import Account, Annotation, Project, utcnow
from jupyterhub_annotations.authenticator.store import Store

from bench.common import (
    ADMIN,
    CONNECTIONS,
    THREADS,
    admin_session,
    on_postgres,
    on_sqlite,
    wrk,
)
from tests.hub import Hub

WARMUP = 1  # seconds of wrk before each measured run
SLUG = "demo"  # the demo config's project; the first admin is its admin
API = f"/hub/annotations/api/projects/{SLUG}"
OWNERS = 10  # annotators per item in the seeded project
SMALL, BIG = 1_000, 1_000_000  # annotations in the project
CHUNK_ITEMS = 10_000  # items (x OWNERS rows) per seeding statement
SEED_BUDGET = 120  # seconds: stop seeding at the chunk that crosses it, and say so
ITEM = "bulk-0000050"  # the item read by item-1k and item-1M (OWNERS annotations)
DATA = '{"label":"cat","score":0.87,"box":[12,34,56,78],"note":"seeded by the benchmark"}'
BODY = '{"data": {"label": "dog", "score": 0.91, "box": [10, 20, 30, 40]}}'
PUT_SLOTS = 64  # items each wrk thread cycles through: never two requests on one row

# One wrk thread's requests: PUTs over its own items, so the requests in flight at any
# moment each write a different annotation (wrk gives no connection id to Lua).
PUT_SCRIPT = """
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
local n = 0
wrk.method = "PUT"
wrk.body = %(body)r
wrk.headers["Content-Type"] = "application/json"
function request()
  n = n + 1
  local path = "%(api)s/items/put-" .. tid .. "-" .. (n %% %(slots)d) .. "/annotations/%(owner)s"
  return wrk.format(nil, path)
end
"""

ROUNDS = 3  # each group of targets is measured this many times, interleaved
ROUND_SECONDS = 5  # seconds of each measured wrk run within a round
SMALL_SLUG = "small"  # a second project that keeps 1k annotations beside the big one

LABELS = {
    "bare": "bare Tornado handler in the hub",
    "put": "`PUT` one annotation (own), PAT",
    "get": "`GET` one annotation, PAT",
    "item-1k": "`GET` an item's annotations, 1k in the project",
    "bare-1M": "bare handler again, after the growth to 1M",
    "item-small": "`GET` an item's annotations in a 1k project, beside the 1M one",
    "item-1M": "`GET` an item's annotations, 1M in the project",
    "get-1M": "`GET` one annotation, 1M in the project",
    "put-1M": "`PUT` one annotation, 1M in the project",
}
GROUPS = [
    ["bare", "put", "get", "item-1k"],
    ["bare-1M", "item-small", "item-1M", "get-1M", "put-1M"],
]
TARGETS = [
    # (label, numerator, denominator, at least); pairs in one group are compared round
    # by round (the median of the per-round ratios), across groups by their means.
    ("put / bare", "put", "bare", 0.4),
    ("get / bare", "get", "bare", 0.6),
    ("put-1M / bare-1M", "put-1M", "bare-1M", 0.4),
    ("get-1M / bare-1M", "get-1M", "bare-1M", 0.6),
    ("item-1M / item-small (same run, interleaved)", "item-1M", "item-small", 0.9),
    ("item-1M / item-1k (before and after the growth)", "item-1M", "item-1k", 0.9),
]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- seeding ------------------------------------------------------------------------------


def seed_owners(store: Store) -> None:
    """OWNERS accounts that the seeded annotations belong to."""
    now = utcnow()
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(Account.__table__),
            [
                {"name": f"bench-annotator-{i}", "kind": "user", "created_at": now}
                for i in range(OWNERS)
            ],
        )


def _seed_statement(dialect: str) -> str:
    """One INSERT ... SELECT of items ``lo`` to ``hi`` (inclusive) x every bench owner,
    generated in the database (no rows cross the wire)."""
    if dialect == "postgresql":
        return (
            "INSERT INTO annotations "
            "(project_id, item, owner, owner_id, data, version, created_at, updated_at) "
            "SELECT :project, 'bulk-' || lpad(seq.n::text, 7, '0'), a.name, a.id, :data, 1, "
            ":now, :now FROM generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) AS seq(n) "
            "CROSS JOIN (SELECT id, name FROM accounts WHERE name LIKE 'bench-annotator-%' "
            "ORDER BY name) AS a ORDER BY seq.n, a.name"
        )
    return (
        "INSERT INTO annotations "
        "(project_id, item, owner, owner_id, data, version, created_at, updated_at) "
        "WITH RECURSIVE seq(n) AS (SELECT :lo UNION ALL SELECT n + 1 FROM seq WHERE n < :hi) "
        "SELECT :project, printf('bulk-%07d', seq.n), a.name, a.id, :data, 1, :now, :now "
        "FROM seq CROSS JOIN (SELECT id, name FROM accounts "
        "WHERE name LIKE 'bench-annotator-%' ORDER BY name) AS a ORDER BY seq.n, a.name"
    )


def seed(
    store: Store, total: int, slug: str = SLUG, budget: float = SEED_BUDGET
) -> tuple[int, float]:
    """Grow project ``slug``'s bulk annotations to ``total`` rows (or as many as ``budget``
    seconds allow). Returns the number of bulk rows and the seconds it took."""
    dialect = store.engine.dialect.name
    started = time.monotonic()
    now = utcnow().replace(tzinfo=None)
    # SQLite keeps datetimes as text in SQLAlchemy's format; PostgreSQL as timestamps.
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else now
    statement = sa.text(_seed_statement(dialect))
    with store.engine.begin() as conn:
        project = conn.scalar(sa.select(Project.id).where(Project.slug == slug))
        have = conn.scalar(
            sa.select(sa.func.count())
            .select_from(Annotation)
            .where(Annotation.project_id == project, Annotation.item.like("bulk-%"))
        )
    lo = have // OWNERS
    while lo * OWNERS < total:
        if time.monotonic() - started > budget:
            progress(f"  seeding budget of {budget}s spent at {lo * OWNERS:,} rows")
            break
        hi = min(lo + CHUNK_ITEMS, total // OWNERS) - 1
        with store.engine.begin() as conn:
            conn.execute(
                statement, {"project": project, "data": DATA, "now": stamp, "lo": lo, "hi": hi}
            )
        lo = hi + 1
        if lo % (10 * CHUNK_ITEMS) == 0:
            progress(f"  {lo * OWNERS:,} rows after {time.monotonic() - started:.0f}s")
    with store.engine.begin() as conn:
        if dialect == "postgresql":
            # What autovacuum does on its own within a minute of a bulk load; done here
            # so the measurement does not depend on when it runs.
            conn.execute(sa.text("ANALYZE annotations"))
        rows = conn.scalar(
            sa.select(sa.func.count())
            .select_from(Annotation)
            .where(Annotation.project_id == project)
        )
    if dialect == "sqlite":
        # Outside a transaction (the store's "begin" hook skips BEGIN for bare reads).
        with store.engine.connect().execution_options(bare_read=True) as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return rows, time.monotonic() - started


# -- memory during the export ----------------------------------------------------------


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid``, in KiB (Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def reset_peak(pid: int) -> bool:
    """Start VmHWM over at the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# How long other requests are measured while the export runs (it takes about 13 s).
DURING_EXPORT_SECONDS = 8


def export(hub: Hub, headers: dict[str, str], other: str) -> dict[str, float]:
    """Stream the whole project as NDJSON, sampling the hub's RSS every 10 ms; while it
    runs, wrk loads ``other`` (a GET with the same token) and a client times
    ``/hub/health`` every 20 ms: what one export costs everybody else."""
    pid = hub.proc.pid
    time.sleep(1)
    idle = memory_kib(pid)["VmRSS"]
    peak_reset = reset_peak(pid)
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(memory_kib(pid)["VmRSS"])
            time.sleep(0.01)

    health: list[float] = []
    during: dict[str, float] = {}

    def others() -> None:
        during.update(wrk(f"{hub.url}{other}", headers, DURING_EXPORT_SECONDS))

    def probe_health() -> None:
        session = requests.Session()
        while not stop.is_set():
            began = time.perf_counter()
            session.get(f"{hub.url}/hub/health", timeout=60)
            health.append((time.perf_counter() - began) * 1000)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    loader = threading.Thread(target=others, daemon=True)
    prober = threading.Thread(target=probe_health, daemon=True)
    sampler.start()
    started = time.monotonic()
    loader.start()
    prober.start()
    lines = size = 0
    try:
        with requests.get(
            f"{hub.url}{API}/annotations",
            params={"format": "ndjson"},
            headers=headers,
            stream=True,
            timeout=600,
        ) as response:
            response.raise_for_status()
            tail = b""
            for chunk in response.iter_content(1 << 16):
                size += len(chunk)
                lines += chunk.count(b"\n")
                tail = (tail + chunk)[-2:]
            if tail[-1:] != b"\n":
                raise RuntimeError("the export did not end with a whole line")
    finally:
        seconds = time.monotonic() - started
        stop.set()
        sampler.join()
        prober.join()
        loader.join()
    peak = max([*samples, memory_kib(pid)["VmHWM"] if peak_reset else 0])
    return {
        "rows": lines,
        "mib": size / (1 << 20),
        "seconds": seconds,
        "idle_mib": idle / 1024,
        "peak_mib": peak / 1024,
        "samples": len(samples),
        "others_rps": during.get("rps", 0.0),
        "others_p99": during.get("p99", 0.0),
        "health_p50": statistics.median(health) if health else 0.0,
        "health_max": max(health, default=0.0),
    }


# -- the runs -------------------------------------------------------------------------------


def create_pat(hub: Hub) -> str:
    response = admin_session(hub).api(
        "POST",
        "tokens",
        {"name": "bench-annotations", "scopes": ["annotations:read", "annotations:write"]},
    )
    if response.status_code != 201:
        raise RuntimeError(f"creating a token failed: {response.status_code} {response.text}")
    return response.json()["token"]


def run_backend(hub: Hub, backend: str, results: dict, notes: dict) -> None:
    pid = hub.proc.pid
    pat = create_pat(hub)
    auth = {"Authorization": f"Bearer {pat}"}
    store = Store(hub.db_url)
    try:
        with store.transaction() as s:  # hub admins are admins of every project
            s.add(Project(slug=SMALL_SLUG))
        seed_owners(store)
        seed(store, SMALL, SMALL_SLUG)
        rows, _ = seed(store, SMALL)
        progress(f"[{backend}] {rows:,} annotations in the project")
        one = f"{API}/items/one/annotations/{ADMIN}"
        response = requests.put(f"{hub.url}{one}", data=BODY, headers=auth, timeout=30)
        if response.status_code != 201:
            raise RuntimeError(f"PUT {one}: {response.status_code} {response.text}")
        item = f"{API}/items/{ITEM}/annotations"
        small = f"/hub/annotations/api/projects/{SMALL_SLUG}/items/{ITEM}/annotations"
        for path in (item, small):
            listed = requests.get(f"{hub.url}{path}", headers=auth, timeout=30).json()["items"]
            if len(listed) != OWNERS:
                raise RuntimeError(f"{path} listed {len(listed)} annotations, not {OWNERS}")
        put = PUT_SCRIPT % {"body": BODY, "api": API, "slots": PUT_SLOTS, "owner": ADMIN}
        targets = {
            "bare": ("/hub/bench/bare", None),
            "put": ("/", put),
            "get": (one, None),
            "item-1k": (item, None),
            "bare-1M": ("/hub/bench/bare", None),
            "item-small": (small, None),
            "item-1M": (item, None),
            "get-1M": (one, None),
            "put-1M": ("/", put),
        }

        def measure_group(keys: list[str]) -> None:
            for n in range(ROUNDS):
                for key in keys:
                    progress(f"[{backend}] round {n + 1}/{ROUNDS}: {key} ...")
                    path, script = targets[key]
                    url = f"{hub.url}{path}"
                    if script is None:
                        headers = {} if key.startswith("bare") else auth
                        result = wrk(url, headers, ROUND_SECONDS, WARMUP, cpu_pid=pid)
                    else:
                        result = wrk(url, auth, ROUND_SECONDS, WARMUP, pid, script)
                    results.setdefault((backend, key), []).append(result)

        measure_group(GROUPS[0])
        rows, seconds = seed(store, BIG)
        notes[backend] = {"rows": rows, "seed_seconds": seconds}
        progress(f"[{backend}] {rows:,} annotations in the project (seeded in {seconds:.0f}s)")
        measure_group(GROUPS[1])
        progress(f"[{backend}] exporting the project as NDJSON ...")
        notes[backend]["export"] = export(hub, auth, one)
    finally:
        store.dispose()


def run_sqlite(results: dict, notes: dict) -> None:
    on_sqlite(lambda hub: run_backend(hub, "SQLite", results, notes))


def run_postgres(results: dict, notes: dict) -> None:
    on_postgres(lambda hub, admin, name: run_backend(hub, "PostgreSQL", results, notes))


def bare_of(key: str) -> str:
    """The bare-handler runs a target is compared with: those of its own group."""
    return "bare" if key in GROUPS[0] else "bare-1M"


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    """Mean req/s; median p50, p99 and CPU per request over the rounds."""
    out = {
        "rps": statistics.fmean(r["rps"] for r in runs),
        "p50": statistics.median(r["p50"] for r in runs),
        "p99": statistics.median(r["p99"] for r in runs),
    }
    if all("cpu_us" in r for r in runs):
        out["cpu_us"] = statistics.median(r["cpu_us"] for r in runs)
    return out


def ratios(num: list[dict], den: list[dict], paired: bool) -> tuple[float, float | None]:
    """num/den by req/s and by hub CPU per request: the median of the round-by-round
    ratios when the two ran interleaved (``paired``), else the ratio of the summaries."""
    has_cpu = all("cpu_us" in r for r in num + den)
    if paired:
        by_rps = statistics.median(n["rps"] / d["rps"] for n, d in zip(num, den, strict=True))
        by_cpu = (
            statistics.median(d["cpu_us"] / n["cpu_us"] for n, d in zip(num, den, strict=True))
            if has_cpu
            else None
        )
        return by_rps, by_cpu
    n, d = summary(num), summary(den)
    return n["rps"] / d["rps"], (d["cpu_us"] / n["cpu_us"] if has_cpu else None)


def same_group(a: str, b: str) -> bool:
    return any(a in group and b in group for group in GROUPS)


def report(results: dict, notes: dict) -> None:
    print(
        f"\nwrk -t{THREADS} -c{CONNECTIONS}, {ROUNDS} interleaved rounds of "
        f"-d{ROUND_SECONDS}s runs (each after a {WARMUP}s warm-up)\n"
    )
    print(
        "| backend | target | req/s | p50 ms | p99 ms | hub CPU µs/req | vs bare: req/s "
        "| vs bare: CPU |\n|---|---|---|---|---|---|---|---|"
    )
    for (backend, key), runs in results.items():
        r = summary(runs)
        by_rps, by_cpu = ratios(runs, results[(backend, bare_of(key))], paired=True)
        cpu = f"{r['cpu_us']:.0f}" if "cpu_us" in r else "-"
        label = LABELS[key]
        if key.endswith("1M") and notes.get(backend, {}).get("rows", BIG) < BIG:
            label = label.replace("1M", f"{notes[backend]['rows']:,}")
        cpu_ratio = "-" if by_cpu is None else f"{by_cpu:.2f}x"
        print(
            f"| {backend} | {label} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | "
            f"{cpu} | {by_rps:.2f}x | {cpu_ratio} |"
        )
    print()
    for backend in dict.fromkeys(b for b, _ in results):
        for label, num, den, least in TARGETS:
            n, m = results.get((backend, num)), results.get((backend, den))
            if n is None or m is None:
                continue
            by_rps, by_cpu = ratios(n, m, paired=same_group(num, den))
            verdict = "met" if by_rps >= least else "MISSED"
            line = f"[{backend}] {label}: {by_rps:.2f}x req/s (target >= {least}x: {verdict})"
            if by_cpu is not None:
                line += f"; by hub CPU per request {by_cpu:.2f}x"
            print(line)
    print()
    for backend, note in notes.items():
        e = note.get("export")
        print(f"[{backend}] seeded to {note['rows']:,} annotations in {note['seed_seconds']:.0f}s")
        if e:
            print(
                f"[{backend}] NDJSON export: {e['rows']:,} lines, {e['mib']:.0f} MiB in "
                f"{e['seconds']:.1f}s ({e['rows'] / e['seconds']:,.0f} rows/s); hub RSS idle "
                f"{e['idle_mib']:.0f} MiB, peak during the export {e['peak_mib']:.0f} MiB "
                f"(+{e['peak_mib'] - e['idle_mib']:.0f} MiB, {e['samples']} samples)"
            )
            alone = summary(results[(backend, "get-1M")])
            print(
                f"[{backend}] during the export: GET one annotation {e['others_rps']:.0f} "
                f"req/s ({e['others_rps'] / alone['rps']:.2f}x of get-1M without it), p99 "
                f"{e['others_p99']:.1f} ms (without: {alone['p99']:.1f}); /hub/health p50 "
                f"{e['health_p50']:.1f} ms, worst {e['health_max']:.0f} ms"
            )


def main() -> int:
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    notes: dict[str, dict] = {}
    run_sqlite(results, notes)
    run_postgres(results, notes)
    report(results, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
