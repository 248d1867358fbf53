"""The store's engine: connections that outlive the server, and errors that say retry."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa
from jupyterhub_annotations.authenticator import store as store_module
from jupyterhub_annotations.authenticator.errors import Unavailable
from jupyterhub_annotations.authenticator.store import Store


def backend_pid(store: Store) -> int:
    with store.reading() as conn:
        return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()


def test_an_idle_connection_the_server_dropped_is_replaced_not_an_error(
    pg_url, pg_admin, monkeypatch
):
    """As after a PostgreSQL restart: the pooled connection is dead; the next request
    must still work (pinged because it sat idle, then replaced by the pool)."""
    store = Store(pg_url)
    try:
        dead = backend_pid(store)
        with pg_admin.engine.connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": dead})
        monkeypatch.setattr(store_module, "IDLE_PING_SECONDS", 0.0)
        assert backend_pid(store) != dead
    finally:
        store.dispose()


def test_a_busy_connection_is_not_pinged(pg_url):
    """Under load (checked out again at once) no extra round trip is made."""
    store = Store(pg_url)
    statements: list[str] = []
    try:
        backend_pid(store)  # the connection now sits in the pool
        sa.event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        with store.reading() as conn:
            conn.execute(sa.text("SELECT 2"))
    finally:
        store.dispose()
    assert statements == ["SELECT 2"]


def test_a_locked_database_is_a_503_to_retry(tmp_path, monkeypatch):
    """SQLite: another process holds the write lock past the busy timeout."""
    path = tmp_path / "locked.sqlite"
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 50)
    store = Store(f"sqlite:///{path}")
    store.migrate()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the other writer
        with pytest.raises(Unavailable) as raised:
            with store.one_statement():
                pass
        assert raised.value.status == 503
        assert raised.value.headers == {"Retry-After": "1"}
        assert "retry" in raised.value.message
    finally:
        other.close()
        store.dispose()
