"""Fixtures: real databases (SQLite files, PostgreSQL) and real hubs.

Outside CI a missing PostgreSQL, proxy or Chromium skips the tests that need it; in CI
(``CI=true``) it fails them, so a green run always means they ran.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from jupyterhub_annotations.authenticator.store import Store

from tests.hub import REPO, Hub

PG_URL = os.environ.get(
    "ANNOTATIONS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PROXY = REPO / "node_modules" / ".bin" / "configurable-http-proxy"


def require(ok: bool, why: str) -> None:
    """Skip when a prerequisite is missing, except in CI where that is a failure."""
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (required in CI)", pytrace=False)
        pytest.skip(why)


PREFIX = "annotations_test_"


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


class PostgresDatabases:
    """Databases of this test process on the test server, dropped when its run ends.

    Each is a copy of one migrated template (a copy takes milliseconds; a migration, or a
    drop under load, far longer). Names carry the process id, so a run drops the
    databases an interrupted run left behind: those of processes that are gone.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.prefix = f"{PREFIX}{os.getpid()}_"
        self.created: list[str] = []
        self.template: str | None = None
        self.dropper = ThreadPoolExecutor(1, thread_name_prefix="dropdb")
        self.dropping: list[Future] = []
        self.drop(self.leftovers())

    def leftovers(self) -> list[str]:
        with self.engine.connect() as conn:
            names = conn.execute(
                sa.text("SELECT datname FROM pg_database WHERE starts_with(datname, :prefix)"),
                {"prefix": PREFIX},
            ).scalars()
            pids = {name: name.removeprefix(PREFIX).partition("_")[0] for name in names}
        return [name for name, pid in pids.items() if not (pid.isdigit() and running(int(pid)))]

    def url(self, name: str) -> str:
        return str(sa.engine.make_url(PG_URL).set(database=name).render_as_string(False))

    def _new(self, template: str = "template0") -> str:
        name = f"{self.prefix}{uuid.uuid4().hex[:12]}"
        # FILE_COPY: a slower create than WAL_LOG, but a drop in half the time, and the
        # drops are what piled up (docs/testing.md).
        sql = f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'
        with self.engine.connect() as conn:
            conn.execute(sa.text(sql))
        self.created.append(name)
        return name

    def create(self) -> str:
        """The URL of a new database with the newest schema and no rows."""
        if self.template is None:
            template = self._new()
            store = Store(self.url(template))
            store.migrate()
            store.dispose()  # a template must have no connections when it is copied
            self.template = template
        return self.url(self._new(self.template))

    def create_empty(self) -> str:
        """The URL of a new database without even the schema."""
        return self.url(self._new())

    def drop(self, names: list[str]) -> None:
        with self.engine.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def drop_soon(self, url: str) -> None:
        """Drop a test's database in the background: each drop waits for a checkpoint
        (tens of milliseconds, seconds under load), which no test needs to wait for."""
        name = sa.engine.make_url(url).database
        self.created.remove(name)
        self.dropping.append(self.dropper.submit(self.drop, [name]))

    def drop_all(self) -> None:
        self.dropper.shutdown()
        for done in self.dropping:
            done.result()  # a failed drop fails the run, so no database is left silently
        self.drop(self.created)


@pytest.fixture(scope="session")
def pg_admin():
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as e:
        require(False, f"PostgreSQL is not reachable at {PG_URL}: {e.orig}")
    databases = PostgresDatabases(engine)
    yield databases
    databases.drop_all()
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin) -> Iterator[str]:
    """A PostgreSQL database of this test's own, migrated and empty."""
    url = pg_admin.create()
    yield url
    pg_admin.drop_soon(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file that tests copy instead of migrating their own."""
    path = tmp_path_factory.mktemp("template") / "annotations.sqlite"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    """A database of this test's own on each backend, migrated and empty."""
    if request.param == "sqlite":
        path = tmp_path / "annotations.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request, tmp_path: Path) -> str:
    """A database of this test's own on each backend without any schema (for migrations)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'annotations.sqlite'}"
    return request.getfixturevalue("pg_admin").create_empty()


@pytest.fixture
def store(db_url: str):
    """A migrated annotation store on that database."""
    store = Store(db_url)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture
def make_hub(request, tmp_path: Path, db_url: str):
    require(PROXY.exists(), f"configurable-http-proxy is not installed at {PROXY} (npm ci)")
    hubs: list[Hub] = []

    def make(extra_config: str = "", env: dict | None = None, start: bool = True, **options) -> Hub:
        folder = tmp_path / f"hub{len(hubs)}"
        folder.mkdir()
        hub = Hub(folder, db_url, extra_config, env, **options)
        hubs.append(hub)
        return hub.start() if start else hub

    yield make
    leaked, links, tracebacks = {}, {}, []
    for i, hub in enumerate(hubs):
        hub.stop()
        hub.keep_log(f"{request.node.name}-{i}")  # the hub log of every end-to-end test
        leaked.update(dict.fromkeys(hub.tokens_in_log()))
        links.update(dict.fromkeys(hub.link_tokens_in_log()))
        tracebacks += hub.tracebacks()
    assert not leaked, f"plaintext tokens in the hub log: {list(leaked)}"
    assert not links, f"link tokens in the hub log: {list(links)}"
    assert not tracebacks, f"tracebacks in the hub log (see its artifact): {tracebacks}"


@pytest.fixture
def hub(make_hub) -> Hub:
    return make_hub()
