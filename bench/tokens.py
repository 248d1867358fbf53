"""Benchmark: the personal-access-token fast path (SPEC section 12, tokens issue).

Starts two real hubs (behind the real proxy, SQLite), the second with 100,000 more
tokens (of a few hundred accounts) in its table, and measures with wrk, 2 threads and
16 connections, 10 s after a 2 s warm-up, in the same run:
  (a) bare     a bare handler mounted in the first hub (the ceiling)
  (b) hub-api  JupyterHub's own GET /hub/api/user with a hub token
  (c) me       our GET /hub/annotations/api/me with a personal access token
  (d) me-100k  the same on the second hub, with 100,000 more tokens in the table
and, on two more hubs with `access_cache_seconds = 0`, (c) and (d) without the access
cache: what the cache is worth, and the indexed token lookup itself at 100,000 tokens.
Then, when PostgreSQL is reachable at ANNOTATIONS_TEST_POSTGRES, (c) and (d) again with
the annotation stores in fresh PostgreSQL databases (dropped afterwards).
Prints the table (with the hub process's CPU time per request, which other load on the
machine disturbs far less than req/s) and the ratios against the targets:
(c) >= 2x (b), (c) >= 0.6x (a), (d) >= 0.9x (c). Run with `make bench`.

``--rounds N`` (default 1) measures every target N times, interleaved (a, b, c, d, a,
b, c, d, ...), and reports the median run of each (by req/s) with the range: steadier
on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import secrets
import shutil
import sys
import uuid
from datetime import timedelta

import sqlalchemy as sa
from jupyterhub_annotations.authenticator.models import Account, Token, utcnow
from jupyterhub_annotations.authenticator.store import make_engine

from bench.common import (
    CONNECTIONS,
    DURATION,
    PG_URL,
    THREADS,
    admin_session,
    hub_token,
    postgres_admin,
    start_hub,
    wrk,
)
from tests.hub import Hub

WARMUP = 2  # seconds of wrk before each measured run
TOKENS = 100_000
ACCOUNTS = 400  # 250 tokens each, most of them expired or revoked
BATCH = 10_000
ME = "/hub/annotations/api/me"

# What people ask for, roughly how often.
SCOPE_SETS = [
    ("annotations:read", 40),
    ("annotations:read annotations:write", 35),
    ("annotations:read annotations:write tokens:manage", 10),
    ("annotations:read projects:manage", 10),
    ("annotations:read annotations:write projects:manage tokens:manage", 5),
]
LIFETIMES_DAYS = [(7, 20), (30, 40), (90, 40)]

TARGETS = [
    # (label, numerator, denominator, at least)
    ("(c)/(b) me with a PAT vs the hub's own token API", "c", "b", 2.0),
    ("(c)/(a) me with a PAT vs a bare handler", "c", "a", 0.6),
    ("(d)/(c) me with 100,000 tokens in the table vs few", "d", "c", 0.9),
]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(hub: Hub, key: str, path: str, headers: dict[str, str]) -> dict[str, float]:
    progress(f"measuring {LABELS[key]} ...")
    return wrk(f"{hub.url}{path}", headers, DURATION, warmup=WARMUP, cpu_pid=hub.proc.pid)


def create_pat(hub: Hub) -> str:
    """A personal access token of the admin, through our API as a user would make it."""
    response = admin_session(hub).api(
        "POST", "tokens", {"name": "bench", "scopes": ["annotations:read"]}
    )
    if response.status_code != 201:
        raise RuntimeError(f"creating a token failed: {response.status_code} {response.text}")
    return response.json()["token"]


def fill_tokens(db_url: str, count: int = TOKENS, accounts: int = ACCOUNTS) -> None:
    """``count`` tokens for ``accounts`` new accounts, straight into the store (Core
    executemany): distinct random digests, a mix of scopes, lifetimes, revocations."""
    progress(f"inserting {count:,} tokens for {accounts} accounts ...")
    rng = random.Random(12)  # noqa: S311 - test data, not secrets
    now = utcnow()
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(Account.__table__),
                [
                    {"name": f"bench-user-{i:04d}", "kind": "user", "created_at": now}
                    for i in range(accounts)
                ],
            )
            ids = list(conn.scalars(sa.select(Account.id).where(Account.name.like("bench-user-%"))))
        scopes, scope_weights = zip(*SCOPE_SETS, strict=True)
        lifetimes, lifetime_weights = zip(*LIFETIMES_DAYS, strict=True)
        for start in range(0, count, BATCH):
            rows = []
            for i in range(start, min(start + BATCH, count)):
                created = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
                expires = created + timedelta(days=rng.choices(lifetimes, lifetime_weights)[0])
                used = rng.random() < 0.7
                revoked = rng.random() < 0.15
                rows.append(
                    {
                        "account_id": ids[i % len(ids)],
                        "name": f"token {i}",
                        "digest": hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
                        "scopes": rng.choices(scopes, scope_weights)[0],
                        "projects": "demo" if rng.random() < 0.2 else None,
                        "created_at": created,
                        "expires_at": expires,
                        "last_used_at": min(expires, now) if used else None,
                        "revoked_at": created + (expires - created) / 2 if revoked else None,
                    }
                )
            with engine.begin() as conn:
                conn.execute(sa.insert(Token.__table__), rows)
        with engine.begin() as conn:
            total = conn.scalar(sa.select(sa.func.count()).select_from(Token))
            if engine.dialect.name == "postgresql":
                # What autovacuum does on its own within a minute of a bulk load; done
                # here so the measurement does not depend on when it runs.
                conn.execute(sa.text("ANALYZE tokens"))
                conn.execute(sa.text("ANALYZE accounts"))
        if total < count:
            raise RuntimeError(f"only {total} tokens in the table after the fill")
    finally:
        engine.dispose()


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median run by req/s (with the others' range, when there are several)."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    result = dict(ordered[(len(ordered) - 1) // 2])
    if len(runs) > 1:
        result["rps_min"], result["rps_max"] = ordered[0]["rps"], ordered[-1]["rps"]
        result["runs"] = len(runs)
    return result


def run_backend(results: dict, rounds: int, urls=(None, None), suffix: str = "") -> None:
    """(c) and (d) on two hubs started side by side, one of them with 100,000 more
    tokens; on SQLite (the default ``urls``) also (a) and (b), on the first hub. Every
    target is measured ``rounds`` times, interleaved, so a change in the machine's other
    load falls on all of them alike."""
    hubs: list[Hub] = []
    try:
        few = start_hub(urls[0])
        hubs.append(few)
        many = start_hub(urls[1])
        hubs.append(many)
        fill_tokens(many.db_url)
        targets: list[tuple[str, Hub, str, dict]] = []
        if not suffix:
            token = hub_token(admin_session(few))
            targets += [
                ("a", few, "/hub/bench/bare", {}),
                ("b", few, "/hub/api/user", {"Authorization": f"token {token}"}),
            ]
        targets += [
            ("c" + suffix, few, ME, {"Authorization": f"Bearer {create_pat(few)}"}),
            ("d" + suffix, many, ME, {"Authorization": f"Bearer {create_pat(many)}"}),
        ]
        runs: dict[str, list] = {key: [] for key, *_ in targets}
        for _ in range(rounds):
            for key, hub, path, headers in targets:
                runs[key].append(measure(hub, key, path, headers))
    finally:
        for hub in hubs:
            hub.stop()
    for key, measured in runs.items():
        results[key] = median_run(measured)
    for hub in hubs:
        shutil.rmtree(hub.folder)  # only after a good run: a failed one keeps its hub log


def run_uncached(results: dict) -> None:
    """(c) and (d) on two hubs whose access cache is off: what the cache is worth, and
    the indexed token lookup itself with 100,000 more tokens in the table."""
    uncached = "c.AnnotationAuthenticator.access_cache_seconds = 0\n"
    hubs: list[Hub] = []
    try:
        for key in ("c-nocache", "d-nocache"):
            hub = start_hub(extra_config=uncached)
            hubs.append(hub)
            if key == "d-nocache":
                fill_tokens(hub.db_url)
            pat = create_pat(hub)
            results[key] = measure(hub, key, ME, {"Authorization": f"Bearer {pat}"})
    finally:
        for hub in hubs:
            hub.stop()
    for hub in hubs:
        shutil.rmtree(hub.folder)


def run_postgres(results: dict, rounds: int) -> None:
    admin = postgres_admin()
    if admin is None:
        return
    names = [f"annotations_bench_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        urls = [
            sa.engine.make_url(PG_URL).set(database=name).render_as_string(False) for name in names
        ]
        run_backend(results, rounds, urls, suffix="-pg")
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


LABELS = {
    "a": "(a) bare Tornado handler in the hub",
    "b": "(b) JupyterHub `GET /hub/api/user`, hub token",
    "c": "(c) our `GET /hub/annotations/api/me`, PAT",
    "d": f"(d) the same, {TOKENS:,} more tokens in the table (a second hub)",
    "c-nocache": "(c) with `access_cache_seconds = 0` (another hub)",
    "d-nocache": f"(d) with `access_cache_seconds = 0`: every request looks up one of {TOKENS:,}",
    "c-pg": "(c) on PostgreSQL",
    "d-pg": f"(d) on PostgreSQL, {TOKENS:,} more tokens",
}


def report(results: dict) -> None:
    print(f"\nwrk -t{THREADS} -c{CONNECTIONS} -d{DURATION}s after a {WARMUP}s warm-up\n")
    print("| target | req/s | p50 ms | p99 ms | hub CPU µs/req |\n|---|---|---|---|---|")
    order = ["a", "b", "c", "d", "c-nocache", "d-nocache", "c-pg", "d-pg"]
    for key in sorted(results, key=order.index):
        r = results[key]
        cpu = f"{r['cpu_us']:.0f}" if "cpu_us" in r else "-"
        rps = f"{r['rps']:.0f}"
        if "runs" in r:
            rps += f" ({r['rps_min']:.0f}-{r['rps_max']:.0f}, {r['runs']} runs)"
        print(f"| {LABELS[key]} | {rps} | {r['p50']:.1f} | {r['p99']:.1f} | {cpu} |")
    print()
    suffixes = [""] + (["-pg"] if "c-pg" in results else [])
    for label, num, den, least in TARGETS:
        for suffix in suffixes:
            n, m = num + suffix, den + suffix
            if n not in results or m not in results:
                continue
            ratio = results[n]["rps"] / results[m]["rps"]
            verdict = "met" if ratio >= least else "MISSED"
            where = " [PostgreSQL]" if suffix else ""
            line = f"{label}{where}: {ratio:.2f}x req/s (target >= {least}x: {verdict})"
            if "cpu_us" in results[n] and "cpu_us" in results[m]:
                # The same ratio were the hub alone the bottleneck: steadier on a busy box.
                by_cpu = results[m]["cpu_us"] / results[n]["cpu_us"]
                line += f"; by hub CPU per request {by_cpu:.2f}x"
            print(line)
    if "c" in results and "c-nocache" in results:
        ratio = results["c"]["rps"] / results["c-nocache"]["rps"]
        print(f"(c) with the access cache vs without: {ratio:.2f}x req/s")
    if "c-nocache" in results and "d-nocache" in results:
        ratio = results["d-nocache"]["rps"] / results["c-nocache"]["rps"]
        print(f"(d)/(c) with the cache off (the index lookup itself): {ratio:.2f}x req/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tokens", description=__doc__)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each target (median)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    run_backend(results, args.rounds)
    run_uncached(results)
    if not args.no_postgres:
        run_postgres(results, args.rounds)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
