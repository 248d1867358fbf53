"""Fixtures: real databases (SQLite files, PostgreSQL) and real hubs.

Outside CI a missing PostgreSQL, proxy or Chromium skips the tests that need it; in CI
(``CI=true``) it fails them, so a green run always means they ran.
"""

from __future__ import annotations

import os
import uuid
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


class PostgresDatabases:
    """Fresh databases of this run on the test server, all dropped when the run ends."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.created: list[str] = []

    def create(self) -> str:
        """The URL of a new, empty database."""
        name = f"annotations_test_{uuid.uuid4().hex[:12]}"
        with self.engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return str(sa.engine.make_url(PG_URL).set(database=name).render_as_string(False))

    def drop_all(self) -> None:
        with self.engine.connect() as conn:
            for name in self.created:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
def pg_url(pg_admin) -> str:
    """A fresh, empty PostgreSQL database of this test's own (dropped at the end of the run)."""
    return pg_admin.create()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'annotations.sqlite'}"
    return request.getfixturevalue("pg_url")


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

    def make(
        extra_config: str = "", env: dict | None = None, start: bool = True, **options
    ) -> Hub:
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
