"""The composition root: built from settings, started once, calls off the event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from jupyterhub_annotations.authenticator.accounts import Accounts
from jupyterhub_annotations.authenticator.audit import Audit
from jupyterhub_annotations.authenticator.auth import AnnotationAuthenticator
from jupyterhub_annotations.authenticator.errors import Conflict, Unavailable
from jupyterhub_annotations.authenticator.links import LinkSigner
from jupyterhub_annotations.authenticator.lockout import LockoutPolicy
from jupyterhub_annotations.authenticator.models import Account
from jupyterhub_annotations.authenticator.permissions import Principal
from jupyterhub_annotations.authenticator.store import NeedsStore

from tests.hub import REPO

# One process's start-up, as a hub or a replica does it; prints what it did.
START = """
import json, sys
from jupyterhub_annotations.authenticator.auth import AnnotationAuthenticator
auth = AnnotationAuthenticator(db_url=sys.argv[1], link_secret="k" * 40)
auth.projects = {"demo": {"members": {"admin": "admin", "alice": "annotator"}}}
started = auth.core.start("admin", None)
print(json.dumps({"first": started.first_admin is not None,
                  "declared": started.declared_accounts}))
"""


def test_starts_at_once_on_one_fresh_database_take_turns(db_url):
    """Four processes start together on an empty database: migrations run once, one
    of them creates the first admin, none fails."""
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", START, db_url],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = []
    for start in starts:
        out, err = start.communicate(timeout=120)
        assert start.returncode == 0, err
        results.append(json.loads(out))
    assert sum(r["first"] for r in results) == 1, results
    assert sorted(name for r in results for name in r["declared"]) == ["alice"]
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            names = conn.execute(sa.select(Account.name).order_by(Account.name)).scalars()
            assert list(names) == ["admin", "alice"]
    finally:
        engine.dispose()


@pytest.fixture
def auth_core(tmp_path):
    auth = AnnotationAuthenticator(
        db_url=f"sqlite:///{tmp_path / 'annotations.sqlite'}", link_secret="k" * 40
    )
    yield auth.core
    auth.core.close()


def test_run_calls_the_core_in_a_store_thread_never_on_the_loop(auth_core):
    seen = []

    def call(x: int) -> int:
        seen.append(threading.current_thread().name)
        return x + 1

    assert asyncio.run(auth_core.run(call, 1)) == 2
    assert seen and seen[0].startswith("store")


def test_a_cache_hit_is_answered_on_the_loop_and_a_miss_in_a_store_thread(auth_core):
    auth_core.store.migrate()
    auth_core.accounts.create("alice")
    plaintext, _ = auth_core.tokens.create(Principal(name="alice", admin=False), "t")
    now = datetime.now(UTC)
    auth_core.tokens.clock = lambda: now
    statements = []  # (thread, SQL) of every statement reaching the database

    def seen(conn, cursor, statement, *args) -> None:
        statements.append((threading.current_thread().name, statement.lstrip()[:6].upper()))

    sa.event.listen(auth_core.store.engine, "before_cursor_execute", seen)

    def authenticate() -> str:
        return asyncio.run(auth_core.run_cached(auth_core.tokens.authenticate, plaintext)).name

    assert authenticate() == "alice"  # a miss: read (and last use written) in a thread
    assert statements and all(thread.startswith("store") for thread, _ in statements)
    statements.clear()
    assert authenticate() == "alice"  # a hit: no store call at all
    assert statements == []
    # A minute on, the last use is due: the loop's try is refused before it counts as
    # written, so the store thread writes it.
    now += timedelta(minutes=1)
    assert authenticate() == "alice"
    assert "UPDATE" in [sql for _, sql in statements]
    assert all(thread.startswith("store") for thread, _ in statements)
    with pytest.raises(NeedsStore), auth_core.store.memory_only():
        auth_core.accounts.get("alice")


def test_an_action_commits_whole_or_not_at_all(store):
    accounts = Accounts(store, LinkSigner(b"k" * 32, timedelta(hours=1)), LockoutPolicy())
    audit = Audit(store, logging.getLogger("test"))
    with pytest.raises(Unavailable), store.action():
        accounts.create("carol")
        audit.record("user.create", "admin", "carol")
        raise Unavailable("gone")
    assert accounts.get("carol") is None and audit.page(target="carol")[0] == []
    with store.action():
        accounts.create("dave")
        # A conflict caught inside the action undoes only its own part (a savepoint).
        with pytest.raises(Conflict):
            accounts.create("dave")
        audit.record("user.create", "admin", "dave")
    assert accounts.get("dave") is not None
    assert [e.action for e in audit.page(target="dave")[0]] == ["user.create"]
