"""What the benchmarks share: one real hub with a bare handler, wrk, an admin session.

The hub runs behind the real configurable-http-proxy (`tests.hub.Hub`), with
`bench.bare.BareHandler` mounted at /hub/bench/bare as the ceiling for any handler in
the hub, and an admin account with a known password.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from tests.hub import REPO, Browser, Hub

PG_URL = os.environ.get(
    "ANNOTATIONS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ADMIN = "admin"
ADMIN_PASSWORD = "benchmark admin pw 1"
DURATION = 10  # seconds of each measured wrk run
THREADS, CONNECTIONS = 2, 16


def _run_wrk(url: str, headers: dict[str, str], seconds: int, script: str | None) -> str:
    cmd = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        if script is not None:
            lua.write(script)
            lua.flush()
            cmd += ["-s", lua.name]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{url} answered errors under load:\n{out}")
    return out


def postgres_admin() -> sa.Engine | None:
    """An AUTOCOMMIT engine on the benchmark's PostgreSQL server, or None if unreachable."""
    engine = sa.create_engine(
        PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with engine.connect():
            return engine
    except sa.exc.OperationalError as e:
        print(f"\nPostgreSQL is not reachable at {PG_URL}; skipping it: {e.orig}")
        engine.dispose()
        return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of process ``pid`` so far (Linux; None elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str,
    headers: dict[str, str],
    duration: int = DURATION,
    warmup: int = 0,
    cpu_pid: int | None = None,
    script: str | None = None,
) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms) of ``url`` under wrk; a ``warmup`` run first if asked.

    With ``cpu_pid``, also ``cpu_us``: that process's CPU time per request (µs) during
    the measured run, which other load on the machine disturbs far less than req/s.
    ``script``: a wrk Lua script (method, body, paths).
    """
    if warmup:
        _run_wrk(url, headers, warmup, script)
    cpu_before = cpu_seconds(cpu_pid) if cpu_pid else None
    out = _run_wrk(url, headers, duration, script)
    cpu_after = cpu_seconds(cpu_pid) if cpu_pid else None

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    result = {"rps": rps, "p50": ms("50%"), "p99": ms("99%")}
    if cpu_before is not None and cpu_after is not None:
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        result["cpu_us"] = (cpu_after - cpu_before) / max(requests, 1) * 1e6
    return result


def start_hub(db_url: str | None = None, folder: Path | None = None, extra_config: str = "") -> Hub:
    """A started hub with the bare handler; its annotation store at ``db_url``
    (default: SQLite in its folder); ``extra_config``: more lines of its config."""
    folder = folder or Path(tempfile.mkdtemp(prefix="annotations-bench-"))
    hub = Hub(
        folder,
        db_url or f"sqlite:///{folder / 'annotations.sqlite'}",
        extra_config=(
            "import sys\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "from bench.bare import BareHandler\n"
            "c.JupyterHub.extra_handlers = [(r'/bench/bare', BareHandler)]\n"
            f"c.AnnotationAuthenticator.first_admin_password = {ADMIN_PASSWORD!r}\n" + extra_config
        ),
    )
    return hub.start()


def admin_session(hub: Hub) -> Browser:
    """A browser logged in as the first admin."""
    admin = Browser(hub)
    response = admin.login(ADMIN, ADMIN_PASSWORD)
    if response.status_code != 200:
        raise RuntimeError(f"admin login failed with {response.status_code}:\n{hub.log()}")
    return admin


def cookie_header(browser: Browser) -> str:
    """The browser's cookies as one ``Cookie`` header value, for wrk."""
    return "; ".join(f"{c.name}={c.value}" for c in browser.http.cookies)


def hub_token(browser: Browser, expires_in: int = 3600) -> str:
    """A JupyterHub API token of the logged-in user (JupyterHub's own, not ours)."""
    xsrf = re.search(r'xsrf_token: "([^"]+)"', browser.get("/hub/home").text).group(1)
    response = browser.http.post(
        f"{browser.hub.url}/hub/api/users/{ADMIN}/tokens",
        json={"note": "bench", "expires_in": expires_in},
        headers={"X-XSRFToken": xsrf},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["token"]


def print_results(results: dict[str, dict[str, float]], width: int = 10) -> None:
    print(f"\n{'target':<{width}} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, r in results.items():
        print(f"{name:<{width}} {r['rps']:>8.0f} {r['p50']:>8.2f} {r['p99']:>8.2f}")


def on_sqlite(measure: Callable[[Hub], None]) -> None:
    """``measure`` a hub on a SQLite file of its own; its folder goes only after a good
    run (a failed one keeps its hub log)."""
    hub = start_hub()
    try:
        measure(hub)
    finally:
        hub.stop()
    shutil.rmtree(hub.folder)


def on_postgres(measure: Callable[[Hub, sa.Engine, str], None]) -> None:
    """``measure`` a hub on a PostgreSQL database of its own (with the server's admin
    engine and the database's name), dropped afterwards; nothing when the server is not
    reachable."""
    admin = postgres_admin()
    if admin is None:
        return
    name = f"annotations_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.engine.make_url(PG_URL).set(database=name).render_as_string(False)
        hub = start_hub(url)
        try:
            measure(hub, admin, name)
        finally:
            hub.stop()
        shutil.rmtree(hub.folder)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
