"""The composition root: everything the product does, built once from plain settings.

`Core` holds the store, the domain services, their caches and the worker pools. The
in-hub Authenticator builds it from its traits; handlers reach it through the Tornado
application settings (`handlers.base.AnnotationHandler.core`). Nothing here imports
Tornado or JupyterHub, and nothing is hashed at import.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from .access_cache import AccessCache
from .accounts import Accounts, FirstRun
from .annotations import Annotations
from .audit import Audit
from .links import LinkSigner
from .lockout import LockoutPolicy
from .models import Account
from .projects import Projects
from .store import NeedsStore, Store
from .tokens import Tokens
from .work import Work

T = TypeVar("T")

# PostgreSQL: fewer threads than the engine's pool has connections (10), so none of
# them waits for a connection; the logins' hashing threads use the rest. SQLite: one,
# since it has one writer at a time anyway, and writers in several threads would wait
# for its lock in busy-timeout sleeps (a PUT's p99 went from 25 ms to 980 ms).
STORE_THREADS = {"postgresql": 8, "sqlite": 1}


@dataclass(frozen=True)
class Settings:
    """What `Core` is built from: plain values, checked where they are configured (the
    Authenticator's traits say what each one means and its bounds)."""

    db_url: str
    link_key: bytes
    link_lifetime: timedelta
    min_password_length: int
    lockout_max_failures: int
    lockout_max_address_failures: int
    lockout_window: timedelta
    admin_users: frozenset[str]
    token_max_lifetime_days: int
    token_max_live_per_user: int
    access_cache_seconds: float
    password_hash_threads: int
    annotation_max_bytes: int
    annotation_import_max_records: int
    annotation_import_max_bytes: int
    declared_projects: dict[str, dict]  # as `projects.parse_declared` returns them
    trusted_proxy_hops: int


@dataclass(frozen=True)
class StartUp:
    """What `Core.start` did, for the caller to log."""

    first_admin: FirstRun | None
    declared_accounts: list[str]


class Core:
    """The store, the domain services and the pools that run them off the event loop."""

    def __init__(
        self,
        settings: Settings,
        log: logging.Logger,
        may_use: Callable[[str], bool] = lambda name: True,
    ) -> None:
        """``may_use``: whether an account's name may use the hub at all, asked at every
        token use (the in-hub Authenticator's `allowed_users` and `blocked_users`)."""
        self.settings = settings
        self.log = log
        self.may_use = may_use
        self.store = Store(settings.db_url)
        self.accounts = Accounts(
            self.store,
            LinkSigner(settings.link_key, settings.link_lifetime),
            LockoutPolicy(
                max_failures=settings.lockout_max_failures,
                max_address_failures=settings.lockout_max_address_failures,
                window=settings.lockout_window,
            ),
            min_password_length=settings.min_password_length,
            admin_users=settings.admin_users,
        )
        self.tokens = Tokens(
            self.store,
            is_admin=self.accounts.is_admin,
            may_use=may_use,
            max_lifetime_days=settings.token_max_lifetime_days,
            max_live_per_user=settings.token_max_live_per_user,
            cache=AccessCache(self.store, settings.access_cache_seconds),
        )
        self.projects = Projects(
            self.store,
            settings.declared_projects,
            cache=AccessCache(self.store, settings.access_cache_seconds),
        )
        self.annotations = Annotations(
            self.store,
            is_admin=self.accounts.is_admin,
            max_bytes=settings.annotation_max_bytes,
            import_max_records=settings.annotation_import_max_records,
        )
        self.work = Work(self.store, max_records=settings.annotation_import_max_records)
        self.audit = Audit(self.store, log)
        threads = STORE_THREADS.get(self.store.engine.dialect.name, 8)
        self._store_pool = ThreadPoolExecutor(threads, thread_name_prefix="store")
        # A lock lives while someone holds or awaits it (`run_in_turn`).
        self._turns: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._hash_pool = ThreadPoolExecutor(
            settings.password_hash_threads, thread_name_prefix="argon2"
        )

    def start(
        self, first_admin: str, first_admin_password: str | None, declare_projects: bool = True
    ) -> StartUp:
        """The start-up step, once per process before serving: migrations, the first
        admin when there are no accounts, the projects declared in the config (unless
        ``declare_projects`` is False). Under the store's start-up lock, so replicas
        starting together take turns."""
        with self.store.startup_lock():
            self.store.migrate()
            first = self.accounts.first_run(first_admin, first_admin_password)
            if first is not None:
                self.audit.record("user.create", None, first.name, admin=True, reason="first run")
                if first.link_token:
                    self.audit.record("link.issue", None, first.name, purpose="setup")
            declared = self.projects.apply_declared() if declare_projects else []
        return StartUp(first_admin=first, declared_accounts=declared)

    def update_account(
        self,
        name: str,
        actor: str | None,
        address: str | None,
        reason: str | None = None,
        **changes: bool,
    ) -> Account:
        """Change an account's ``admin``/``active`` flags and record it (with an
        optional ``reason``); a deactivation also kills its links, recorded as such.
        In the store's threads, inside an action (`act`)."""
        account = self.accounts.update(name, **changes)
        because = {"reason": reason} if reason else {}
        self.audit.record("user.update", actor, name, address, **changes, **because)
        if changes.get("active") is False:
            self.audit.record("link.revoke", actor, name, address, reason="deactivated")
        return account

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn``, which may use the store, in the store's threads: the event loop
        never waits on a database, whether a server's round trip or SQLite's lock."""
        call = functools.partial(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._store_pool, call)

    async def run_in_turn(self, key: Hashable, fn: Callable[..., T], *args: Any) -> T:
        """`run`, with the calls of one ``key`` taking turns on the event loop before they
        reach the store's threads: callers that would all wait for one database lock (a
        project's claims, `Work`) then hold one store thread between them, not all of
        them, and other requests keep theirs."""
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = asyncio.Lock()
        async with turn:
            return await self.run(fn, *args)

    async def run_cached(self, fn: Callable[..., T], *args: Any) -> T:
        """`run` for a lookup usually answered from the access caches: tried on the
        event loop first, with the store refusing (`Store.memory_only`), so a cache hit
        costs no thread hop; on a miss, called again in the store's threads. ``fn``
        must do nothing before its first store call that it cannot do twice."""
        try:
            with self.store.memory_only():
                return fn(*args)
        except NeedsStore:
            return await self.run(fn, *args)

    async def act(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`run` for a user action: ``fn`` and everything it writes, audit records
        included, is one transaction (`Store.action`), committed whole or not at all."""

        def action() -> T:
            with self.store.action():
                return fn(*args, **kwargs)

        return await self.run(action)

    async def run_hashing(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn``, which hashes or verifies a password, in the hashing threads
        (`password_hash_threads`), so logins queue for their turn."""
        return await asyncio.get_running_loop().run_in_executor(self._hash_pool, fn, *args)

    def close(self) -> None:
        self._store_pool.shutdown(wait=False)
        self._hash_pool.shutdown(wait=False)
        self.store.dispose()
