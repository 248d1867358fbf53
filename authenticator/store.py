"""The database engine, transactions, and schema migrations."""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .errors import Unavailable

MIGRATIONS = Path(__file__).with_name("migrations")
# The advisory lock's name (`Store.startup_lock`); any text hashes to a lock key.
STARTUP_LOCK = "jupyterhub-annotations start-up"


# How long a SQLite writer waits for another's lock before giving up (a 503 to retry).
BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # Let SQLAlchemy's "begin" event below emit BEGIN itself (pysqlite's own is lazy).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the writer; busy_timeout waits for the lock
    # instead of failing when the CLI and the hub write at the same moment.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn) -> None:
    # A deferred transaction that reads, then writes, fails with "database is locked"
    # when another writer committed in between (busy_timeout cannot help). Writers
    # take the lock up front instead; read-only transactions stay deferred.
    options = conn.get_execution_options()
    if options.get("bare_read"):
        return  # one-statement reads need no transaction of their own
    conn.exec_driver_sql("BEGIN" if options.get("readonly") else "BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    # Error messages go to the log: without the statement's values.
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_size=10, max_overflow=10, hide_parameters=True)
        event.listen(engine, "checkin", _note_idle)
        event.listen(engine, "checkout", _ping_if_idle)
    return engine


# A pooled connection idle this long is pinged before use. pool_pre_ping would ping at
# every checkout: a round trip per request, a fifth of a GET's time on PostgreSQL.
IDLE_PING_SECONDS = 5.0


def _note_idle(_dbapi_conn, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_conn, record, _proxy) -> None:
    """Make sure a connection that sat idle still works (the server may have restarted);
    the pool replaces one that does not. Busy connections were just used: no ping."""
    idle_since = record.info.get("idle_since")  # None: a new connection, just made
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
        return
    try:
        with closing(dbapi_conn.cursor()) as cursor:
            cursor.execute("SELECT 1")
        dbapi_conn.rollback()  # the driver began a transaction for it
    except Exception as e:  # whatever the driver raises for a dead connection
        raise DisconnectionError(str(e)) from e


@contextmanager
def _busy_is_unavailable() -> Iterator[None]:
    """A database that is locked, deadlocked or gone is a 503 to retry, not a 500."""
    try:
        yield
    except OperationalError as e:
        raise Unavailable(
            "The database is busy or unreachable: retry in a moment. Nothing was written."
        ) from e


def lock_keys(session: Session, *keys: str) -> None:
    """Make the transactions that name any of ``keys`` take turns until they end.

    PostgreSQL: transaction-scoped advisory locks, taken in one order so two
    transactions never wait for each other. SQLite needs none: its writers already
    hold the one database lock from BEGIN IMMEDIATE to the end.
    """
    if session.get_bind().dialect.name == "sqlite":
        return
    for key in sorted(set(keys)):
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))


class NeedsStore(Exception):
    """Raised by the store when it is used inside `Store.memory_only`."""


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


class Store:
    """Owns the engine; every unit of work is one transaction (commit or roll back).

    `generation` counts the write transactions of this process that may have changed
    who may do what; caches of access facts (`access_cache`) drop what they read
    before it moved.
    """

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._generation = 0
        self._generation_lock = threading.Lock()  # writers run in threads too (logins)
        # The session of the unit of work running on this thread, if any (`action`).
        self._local = threading.local()

    @property
    def generation(self) -> int:
        """Changes after every write transaction of this process (see `transaction`)."""
        return self._generation

    @contextmanager
    def startup_lock(self) -> Iterator[None]:
        """Held by one process at a time for its start-up step (`Core.start`), so hubs
        or replicas starting together on one database take turns.

        PostgreSQL: a session advisory lock on a connection of its own. SQLite: an
        exclusive lock on a file beside the database (an in-memory one needs none).
        """
        self._enter()
        if self.engine.dialect.name == "sqlite":
            path = self.engine.url.database
            if not path or path == ":memory:":
                yield
                return
            with open(f"{path}.startup-lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
                yield
            return
        key = func.hashtextextended(STARTUP_LOCK, 0)
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(select(func.pg_advisory_lock(key)))
            try:
                yield
            finally:
                conn.execute(select(func.pg_advisory_unlock(key)))

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration; never drops data."""
        command.upgrade(alembic_config(self.engine), "head")

    @contextmanager
    def memory_only(self) -> Iterator[None]:
        """Any use of the store on this thread inside raises `NeedsStore` before it
        touches the database: the event loop may try work that is usually answered from
        the caches, and hand it to the store's threads when it is not (`Core.run_cached`).
        """
        self._local.memory_only = True
        try:
            yield
        finally:
            self._local.memory_only = False

    def _enter(self) -> None:
        if getattr(self._local, "memory_only", False):
            raise NeedsStore

    def _bump(self) -> None:
        with self._generation_lock:
            self._generation += 1

    def _unit(self) -> Session | None:
        return getattr(self._local, "session", None)

    @contextmanager
    def action(self) -> Iterator[None]:
        """One transaction for one user action: every `transaction`, `one_statement` and
        `reading` on this thread inside it joins it, so the action and its audit records
        commit together or not at all ("Nothing was written" is then true). Inner
        transactions are savepoints: a conflict one of them catches undoes only its part.
        """
        self._enter()
        if self._unit() is not None:
            yield  # already inside one
            return
        try:
            with _busy_is_unavailable(), self._sessions() as session, session.begin():
                session.connection(execution_options={"readonly": False})
                self._local.session = session
                try:
                    yield
                finally:
                    self._local.session = None
        finally:
            self._bump()  # the action may have changed who may do what

    @contextmanager
    def transaction(self, readonly: bool = False, changes_access: bool = True) -> Iterator[Session]:
        """One transaction: committed at the end, rolled back on any error.

        Writers serialise on SQLite (BEGIN IMMEDIATE); pass ``readonly=True`` for
        transactions that only read, so they never wait for a writer.

        A write transaction bumps `generation` once it has ended, committed or rolled
        back (a rollback needs none; bumping anyway is simpler and fails safe). Pass
        ``changes_access=False`` only for writes that touch nothing that decides who
        may do what (accounts, memberships, projects, tokens other than their
        ``last_used_at``): annotations, for instance. Cached access facts then stay.

        Inside an `action`, a savepoint of the action's transaction.
        """
        self._enter()
        unit = self._unit()
        if unit is not None:
            with unit.begin_nested():
                yield unit
            return
        try:
            with _busy_is_unavailable(), self._sessions() as session, session.begin():
                session.connection(execution_options={"readonly": readonly})
                yield session
        finally:
            if changes_access and not readonly:
                # After the commit: a reader that saw the old data read the old
                # generation, so what it cached is dropped.
                self._bump()

    @property
    def waits_on_network(self) -> bool:
        """Whether every statement is a round trip to a database server (not SQLite,
        which answers in process within microseconds): such calls are worth running off
        the event loop, so the hub serves other requests while it waits."""
        return self.engine.dialect.name != "sqlite"

    @contextmanager
    def one_statement(self) -> Iterator[Connection]:
        """A connection for a write that is one statement, atomic on its own (an upsert,
        a conditional UPDATE), and the reads that explain its outcome.

        On PostgreSQL it runs in autocommit: no BEGIN and COMMIT round trips around the
        statement, which commits (or fails whole) by itself. SQLite takes its write lock
        up front (BEGIN IMMEDIATE), as every writer there does. No ORM, and `generation`
        is left alone: use `transaction` for anything that changes who may do what.
        """
        self._enter()
        unit = self._unit()
        if unit is not None:
            yield unit.connection()  # part of the action: atomic with the rest of it
            return
        with _busy_is_unavailable():
            if self.waits_on_network:
                autocommit = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                with autocommit as conn:
                    yield conn
            else:
                with self.engine.begin() as conn:
                    yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for a quick SELECT on a hot path: no ORM, no explicit BEGIN.

        Each statement sees a consistent snapshot of its own; use `transaction` when
        several reads must agree with each other or anything is written.
        """
        self._enter()
        unit = self._unit()
        if unit is not None:
            yield unit.connection()  # sees what the action wrote so far
            return
        options = {"bare_read": True}
        if self.engine.dialect.name != "sqlite":
            # No BEGIN/ROLLBACK round trips (SQLite's are skipped in _sqlite_begin, and
            # switching its isolation level per checkout costs more than it saves).
            options["isolation_level"] = "AUTOCOMMIT"
        with _busy_is_unavailable(), self.engine.connect().execution_options(**options) as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()
