"""AnnotationAuthenticator: the JupyterHub side of the product.

It turns hub events (start, login, add/delete user, refresh) into calls on the domain
core (`accounts`, `store`, `links`) and registers our handlers. The traits below are the
whole configuration surface; `jupyterhub --help-all` shows their help.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.auth import Authenticator
from jupyterhub.utils import url_path_join
from jupyterhub_annotations.handlers import hub_compat, hub_mirror
from jupyterhub_annotations.handlers.base import StoppingFilter
from tornado import web
from traitlets import Dict, Enum, Float, Integer, List, TraitError, Unicode, default, validate

from . import passwords, redact, usernames
from .accounts import Deactivated
from .core import Core, Settings
from .errors import AnnotationError, Conflict, InvalidInput, LockedOut
from .links import link_url, load_or_create_secret
from .paths import public_hub_url, share_dir, state_dir
from .permissions import SCOPES, USERS_MANAGE, Principal
from .projects import parse_declared
from .tokens import server_token_name

MIN_LINK_SECRET_LENGTH = 32  # characters; the signer needs 32 bytes (HS256's key size)


def _checked_link_secret(secret: str, source: str) -> str:
    """``secret`` unless it is set and too short; ``source`` names where it was set.

    A TraitError naming the option, rather than the signer's bare error at first use.
    The message gives the length only, never the secret.
    """
    if secret and len(secret) < MIN_LINK_SECRET_LENGTH:
        raise TraitError(
            f"{source} has {len(secret)} characters; a link signing secret needs at least "
            f"{MIN_LINK_SECRET_LENGTH} (for instance the output of `openssl rand -hex 32`). "
            "Or leave it unset, and a key is generated and kept in link_secret_file."
        )
    return secret


def api_url_for(spawner) -> str:
    """The API's URL as the server reaches the hub: at `Spawner.hub_connect_url` when it
    is set (batchspawner, containers), as JupyterHub builds its own JUPYTERHUB_API_URL."""
    hub_url = spawner.hub.url
    if spawner.hub_connect_url is not None:
        hub_url = url_path_join(spawner.hub_connect_url, urlparse(hub_url).path)
    return url_path_join(hub_url, "annotations/api/")


class AnnotationAuthenticator(Authenticator):
    """Accounts with Argon2id passwords, a first-run admin and one-time links."""

    db_url = Unicode(
        help="""
        SQLAlchemy URL of the annotation store (accounts, login throttling, and later
        projects, tokens and annotations).

        Default: ``annotations.sqlite`` beside the hub's own SQLite database (or in the
        working directory when the hub uses another database). For PostgreSQL use
        ``postgresql+psycopg://user:password@host/dbname``. The schema is created and
        upgraded by migrations at hub start; existing data is never dropped.
        """,
    ).tag(config=True)

    @default("db_url")
    def _db_url_default(self) -> str:
        return f"sqlite:///{self._state_dir / 'annotations.sqlite'}"

    first_admin = Unicode(
        "admin",
        help="""
        Name of the hub admin created when the account table is empty at hub start.
        Unless `first_admin_password` is set, the hub log shows, once, a one-time setup
        URL where this admin chooses a password. Lower-cased, as the hub does with
        login names; a reserved name (with ``:`` or starting with ``__``) is refused.
        """,
    ).tag(config=True)

    @validate("first_admin")
    def _check_first_admin(self, proposal) -> str:
        # Lower case, or the hub would log in "admin" while we created "Admin".
        name = usernames.normalize(proposal.value)
        try:
            usernames.check_username(name)
        except InvalidInput as e:
            raise TraitError(
                f"c.AnnotationAuthenticator.first_admin = {proposal.value!r} cannot name "
                f"the first admin: {e.message}"
            ) from None
        return name

    first_admin_password = Unicode(
        help="""
        Password of the first admin, for unattended deployments. Read from the
        environment variable ``ANNOTATIONS_ADMIN_PASSWORD`` when not set here. It is
        used only when the first admin is created (an existing password is never reset)
        and must pass the password policy; no setup link is printed then.
        """,
    ).tag(config=True)

    @default("first_admin_password")
    def _first_admin_password_default(self) -> str:
        return os.environ.get("ANNOTATIONS_ADMIN_PASSWORD", "")

    link_secret = Unicode(
        help="""
        Key that signs one-time links (setup, invitation, reset), at least 32 characters.
        Read from the environment variable ``ANNOTATIONS_LINK_SECRET`` when not set here;
        otherwise a random key is generated once and kept in `link_secret_file`.
        Every replica of a hub must share it. Changing it voids all outstanding links.
        """,
    ).tag(config=True)

    @default("link_secret")
    def _link_secret_default(self) -> str:
        # traitlets does not validate defaults: check the environment variable here.
        secret = os.environ.get("ANNOTATIONS_LINK_SECRET", "")
        return _checked_link_secret(secret, "The environment variable ANNOTATIONS_LINK_SECRET")

    @validate("link_secret")
    def _check_link_secret(self, proposal) -> str:
        return _checked_link_secret(proposal.value, "c.AnnotationAuthenticator.link_secret")

    link_secret_file = Unicode(
        help="""
        File (mode 0600) that holds the generated link signing key when `link_secret`
        is not set. Default: ``annotations_link_secret`` beside the hub's database.
        """,
    ).tag(config=True)

    @default("link_secret_file")
    def _link_secret_file_default(self) -> str:
        return str(self._state_dir / "annotations_link_secret")

    link_lifetime_hours = Float(
        24.0,
        min=1 / 3600,
        max=24 * 365,
        help="""
        Hours a one-time link (setup, invitation, reset) stays valid if unused: one
        second (1/3600) to a year (8760).
        """,
    ).tag(config=True)

    min_password_length = Integer(
        10,
        min=8,
        max=passwords.MAX_LENGTH,
        help="""
        Shortest password accepted, 8 to 1024. Passwords are also refused when longer
        than 1024 characters, equal to the username, or on the shipped list of common
        passwords.
        """,
    ).tag(config=True)

    lockout_max_failures = Integer(
        5,
        min=1,
        max=10_000,
        help="""
        Failed logins for one account name within `lockout_window_minutes` after which
        further attempts are refused (even with the right password) until the oldest
        failure leaves the window. A reset link still works.
        """,
    ).tag(config=True)

    lockout_max_address_failures = Integer(
        50,
        min=1,
        max=1_000_000,
        help="""
        Failed logins from one client address, over all names, within
        `lockout_window_minutes` after which that address is refused for a while.
        """,
    ).tag(config=True)

    lockout_window_minutes = Float(
        15.0,
        min=1 / 60,
        max=7 * 24 * 60,
        help="""
        Window, in minutes, over which failed logins are counted: one second (1/60) to
        a week (10080).
        """,
    ).tag(config=True)

    trusted_proxy_hops = Integer(
        1,
        min=0,
        max=10,
        help="""
        How many proxies stand between the clients and the hub, each appending the
        address it saw to ``X-Forwarded-For``. The default, 1, is the
        configurable-http-proxy that JupyterHub runs; add one for each reverse proxy
        (nginx, a load balancer) in front of it that appends to ``X-Forwarded-For``.
        The client address of the login limits and the audit log is the one the
        outermost of them saw; what the client wrote itself (the left part of
        ``X-Forwarded-For``, ``X-Real-Ip``) is ignored. 0: the address of whoever
        connects to the hub (no proxy at all).
        """,
    ).tag(config=True)

    projects = Dict(
        help="""
        Projects and their members, applied at every hub start::

            c.AnnotationAuthenticator.projects = {
                "birds": {
                    "description": "Bird calls, 2026 season",
                    "members": {"alice": "admin", "bob": "annotator", "carol": "viewer"},
                    "share_annotations": False,  # annotators see only their own
                    "api_access": True,          # tokens may use this project
                    "overlap": 2,         # the queue hands each item to 2 annotators
                    "lease_minutes": 30,  # a claim lapses after 30 minutes
                    "blind": True,        # others' annotations hidden until your own
                },
            }

        Roles: ``viewer`` (read everything), ``annotator`` (write their own
        annotations), ``admin`` (members, settings, every annotation). Each project
        needs at least one admin. Members without an account get one with no password
        (issue them a link). Memberships and settings declared here are read-only at
        runtime (the API answers 409 naming this option); members and projects added at
        runtime are kept in the database. A membership removed from here is removed at
        the next start; a project removed from here stays, and becomes editable.
        ``overlap`` (1-100, default 1), ``lease_minutes`` (1-10080, default 30) and
        ``blind`` (default False) steer the work queue (docs/work.md).
        """,
    ).tag(config=True)

    @validate("projects")
    def _check_projects(self, proposal) -> dict:
        try:
            parse_declared(proposal.value)
        except InvalidInput as e:
            raise TraitError(e.message) from None
        return proposal.value

    token_max_lifetime_days = Integer(
        90,
        min=1,
        max=3650,
        help="""
        Longest lifetime of a personal access token, in days. Every token expires:
        ``expires_in_days`` is 1 to this value (default when not asked: this value).
        """,
    ).tag(config=True)

    token_max_live_per_user = Integer(
        50,
        min=1,
        max=10_000,
        help="Most live (unrevoked, unexpired) tokens one account may hold at once (1 to 10000).",
    ).tag(config=True)

    inject_token_scopes = List(
        Unicode(),
        help="""
        Scopes of a token given to every single-user server it starts, for notebooks to
        call the API: the server's environment gets ``ANNOTATIONS_API_URL`` and
        ``ANNOTATIONS_TOKEN``. The token is revoked when the server stops and never
        outlives `token_max_lifetime_days`. Empty (the default): no token is injected.
        Example: ``["annotations:read", "annotations:write"]``. ``users:manage`` is
        refused: anything running in a server can read its token, and a notebook must
        not act as a hub admin. The token is named ``server:<server name>`` and does not
        count toward `token_max_live_per_user`.
        """,
    ).tag(config=True)

    @validate("inject_token_scopes")
    def _check_inject_token_scopes(self, proposal) -> list:
        unknown = sorted(set(proposal.value) - set(SCOPES))
        if unknown:
            raise TraitError(f"inject_token_scopes: unknown scopes {unknown}; use {SCOPES}")
        if USERS_MANAGE in proposal.value:
            # Refused at start rather than dropped per user: silently giving admins'
            # notebooks different rights from everyone else's would surprise more.
            raise TraitError(
                "inject_token_scopes must not contain 'users:manage': it makes a token act "
                "as a hub admin (reset links, new admins), and any code running in a "
                "notebook server can read the server's token. Remove it; a hub admin "
                "who needs it creates a personal token at /hub/annotations/tokens."
            )
        return proposal.value

    access_cache_seconds = Float(
        2.0,
        min=0,
        max=300,
        help="""
        Seconds this hub may keep, in memory, what it read about a token (its owner,
        scopes, revocation, expiry, the owner's active and admin flags) and about
        project access (roles, memberships, ``api_access``), so API requests with
        personal access tokens need no database query.

        Changes made through this hub (its API, its pages, its spawner hooks) void the
        cache at once: they apply at the next request. Changes made by another process
        (the ``jupyterhub-annotations`` command, another hub on the same database, a
        manual edit of the database) are seen within this many seconds; a token's
        expiry is checked at every request regardless. 0 turns the cache off: every
        request reads the database. At most 10,000 tokens and 10,000 project lookups
        are kept, the least recently used going first. The default, 2 seconds, lets a
        busy script (more than one request a second) skip nearly every query, while a
        revocation elsewhere still applies before anyone could act on it by hand.
        """,
    ).tag(config=True)

    password_hash_threads = Integer(
        min=1,
        max=64,
        help="""
        Threads that hash or verify passwords at the same time (Argon2id: about 0.1 s
        of CPU and 64 MiB each). Logins beyond that wait their turn, so a burst of
        logins cannot starve the rest of the hub. Default: CPU cores minus one, at
        least one. At most 64.
        """,
    ).tag(config=True)

    @default("password_hash_threads")
    def _password_hash_threads_default(self) -> int:
        return max(1, (os.cpu_count() or 2) - 1)

    annotation_max_bytes = Integer(
        1 << 20,
        min=64,
        max=256 << 20,
        help="""
        Largest ``data`` of one annotation, in bytes of compact JSON (default 1 MiB).
        A bigger one is refused with 413 and nothing is written.
        """,
    ).tag(config=True)

    annotation_import_max_records = Integer(
        10_000,
        min=1,
        max=1_000_000,
        help="Most annotations one import request may carry, 1 to 1000000 (split bigger batches).",
    ).tag(config=True)

    annotation_import_max_bytes = Integer(
        16 << 20,
        min=1024,
        max=1 << 30,
        help="""
        Largest body of one import request, in bytes (default 16 MiB, at most 1 GiB).
        A request that declares a bigger body is refused with 413 before any of it is
        read. The whole batch is checked before anything is written, so it is held in
        memory (about ten times its size once parsed) and parsed off the event loop.
        """,
    ).tag(config=True)

    hub_user_deletion = Enum(
        ["deactivate", "keep"],
        default_value="deactivate",
        help="""
        What deleting a user in JupyterHub (its admin page, ``DELETE
        /hub/api/users/<name>``, ``jupyterhub-idle-culler --cull-users``) does to their
        account. Either way the hub user goes with its servers and browser sessions,
        and nothing is destroyed: password, tokens, memberships and annotations stay.

        ``deactivate`` (the default): the account is deactivated, as on the Users page:
        no login, no token, unused links die, until a hub admin reactivates it there.
        ``keep``: the account stays active; the person logs in again (which brings the
        hub user back) and their tokens keep working: for hubs that cull idle users.

        The last active hub admin is never deactivated this way (the log says so).
        Accounts are deleted for good on the Users page or the API only.
        """,
    ).tag(config=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # Every line of the hub log, JupyterHub's access log included, is scrubbed of
        # secrets in URLs whatever their case (JupyterHub's own scrubbing is not).
        redact.install(self.log)
        # A restart under load is no error (docs/restarts.md): no traceback for it.
        redact.install(self.log, StoppingFilter)

    @default("any_allow_config")
    def _any_allow_config_default(self) -> bool:
        # Our account table is the allow list (see check_allowed).
        return True

    # -- the core, built on first use -----------------------------------------------

    @property
    def _state_dir(self) -> Path:
        return state_dir(getattr(self.parent, "db_url", None))

    @cached_property
    def core(self) -> Core:
        """The domain core, built from these settings (`Core`); `start_core` readies
        its database."""
        key = (
            self.link_secret.encode()
            if self.link_secret
            else load_or_create_secret(Path(self.link_secret_file))
        )
        settings = Settings(
            db_url=self.db_url,
            link_key=key,
            link_lifetime=timedelta(hours=self.link_lifetime_hours),
            min_password_length=self.min_password_length,
            lockout_max_failures=self.lockout_max_failures,
            lockout_max_address_failures=self.lockout_max_address_failures,
            lockout_window=timedelta(minutes=self.lockout_window_minutes),
            admin_users=frozenset(usernames.normalize(n) for n in self.admin_users),
            token_max_lifetime_days=self.token_max_lifetime_days,
            token_max_live_per_user=self.token_max_live_per_user,
            access_cache_seconds=self.access_cache_seconds,
            password_hash_threads=self.password_hash_threads,
            annotation_max_bytes=self.annotation_max_bytes,
            annotation_import_max_records=self.annotation_import_max_records,
            annotation_import_max_bytes=self.annotation_import_max_bytes,
            declared_projects=parse_declared(self.projects),
            trusted_proxy_hops=self.trusted_proxy_hops,
        )
        return Core(settings, self.log, may_use=self.may_use_hub)

    def may_use_hub(self, name: str) -> bool:
        """JupyterHub's allow and block lists, read live (the hub adds to
        `allowed_users` as it adds users): not in `blocked_users`, and in
        `allowed_users` when that is set (`admin_users` are, as the hub merges them).
        Beside them, an active account is needed (`check_allowed`)."""
        if name in self.blocked_users:
            return False
        return not self.allowed_users or name in self.allowed_users

    def link_url(self, token: str) -> str:
        """The one-time URL for a link token, under the hub's URL as configured (for
        the log and the CLI; pages use the URL the caller reached)."""
        app = self.parent
        return link_url(token, public_hub_url(app.public_url, app.bind_url, app.hub_prefix))

    # -- hub start ------------------------------------------------------------------

    def check_allow_config(self) -> None:
        """Called by the hub at start, before `add_user` runs for existing users: the
        account table must be ready before the hub adds anyone to it."""
        super().check_allow_config()
        self.start_core()
        if self.parent is not None:  # the hub's database, when a hub runs us
            hub_mirror.show_all(self.parent.db, self.core)
            self.parent.db.commit()
        hub_compat.on_rename(self.rename_account)

    def start_core(self) -> None:
        """The start-up step (`Core.start`: migrations, first admin, declared projects),
        and what it did, in the log."""
        try:
            started = self.core.start(self.first_admin, self.first_admin_password or None)
        except InvalidInput as e:
            self.log.critical("first_admin_password is not usable: %s", e.message)
            raise SystemExit(1) from None
        first = started.first_admin
        if first is not None and first.link_token:
            self.log.warning(
                "\n\n    First run: set the password of the admin %r at this one-time URL"
                " (valid %g hours):\n\n    %s\n",
                first.name,
                self.link_lifetime_hours,
                self.link_url(first.link_token),
                extra={"shows_secret": True},  # the one line meant to show a link
            )
        elif first is not None:
            self.log.info("First run: created admin %r with the configured password", first.name)
        for name in started.declared_accounts:
            self.log.info("Created account %r for a project in the config (no password yet)", name)
        if first is None:
            account = self.core.accounts.get(self.first_admin)
            if account is not None and account.admin and account.password_hash is None:
                self.log.warning(
                    "Admin %r has no password yet. Print a new setup link with: "
                    "jupyterhub-annotations setup-link --config %s",
                    account.name,
                    getattr(self.parent, "config_file", "jupyterhub_config.py"),
                )

    def get_handlers(self, app) -> list:
        from jupyterhub_annotations.handlers import (  # handlers import the core
            CORE_SETTING,
            default_handlers,
        )

        hub_compat.add_template_path(app.tornado_settings, str(share_dir() / "templates"))
        # Handlers reach the core through the application's settings, built just before.
        app.tornado_settings[CORE_SETTING] = self.core
        return super().get_handlers(app) + default_handlers

    # -- login ----------------------------------------------------------------------

    def validate_username(self, username: str) -> bool:
        if not super().validate_username(username):
            return False
        try:
            usernames.check_username(username)
        except InvalidInput:
            return False
        return True

    async def authenticate(self, handler, data: dict) -> dict | None:
        """Check the login form; None means the generic "Invalid username or password"."""
        from jupyterhub_annotations.handlers.base import (
            request_address,  # handlers import the core, not vice versa
        )

        core = self.core
        name = self.normalize_username(data.get("username") or "")
        password = data.get("password") or ""
        address = request_address(handler, self.trusted_proxy_hops) if handler else ""
        if not self.validate_username(name):
            # Still one Argon2 verification, so a malformed name is not faster.
            await core.run_hashing(passwords.verify_password, None, password)
            # Not the name itself: a malformed "name" is often a password typed too early.
            await core.run(
                core.audit.record, "login.failure", None, None, address, reason="malformed name"
            )
            return None
        try:
            account = await core.run_hashing(core.accounts.login, name, password, address)
        except LockedOut as e:
            await core.run(core.audit.record, "login.locked", name, name, address)
            error = web.HTTPError(429, e.message)
            error.headers = {"Retry-After": str(e.retry_after)}
            raise error from None
        except Deactivated:
            # Answered like a wrong password (SPEC 13): only the audit knows.
            await core.run(core.audit.record, "login.deactivated", name, name, address)
            return None
        if account is None:
            await core.run(core.audit.record, "login.failure", name, name, address)
            return None
        mirror = await core.act(self._logged_in, name, address)
        hub_user = handler.find_user(name) if handler else None
        if hub_user is not None and mirror is not None:  # else add_user comes next
            self._mirror_groups(hub_user, mirror)
        return {"name": name, "admin": core.accounts.is_admin(account)}

    def _logged_in(self, name: str, address: str) -> hub_mirror.AccountMirror | None:
        self.core.audit.record("login.success", name, name, address)
        return hub_mirror.read(self.core, name)

    @staticmethod
    def _mirror_groups(user, mirror: hub_mirror.AccountMirror) -> None:
        """The hub user's project groups as the store has them (`hub_mirror`)."""
        hub_mirror.set_groups(user.db, user.orm_user, mirror.roles)
        user.db.commit()

    async def check_allowed(self, username: str, authentication: dict | None = None) -> bool:
        """Active accounts of our store may use the hub, within JupyterHub's
        `allowed_users` when it is set (`may_use_hub`); nobody else. (The hub checks
        `blocked_users` itself before this.)"""
        if not self.may_use_hub(username):
            return False
        account = await self.core.run(self.core.accounts.get, username)
        return account is not None and account.active

    async def refresh_user(self, user, handler=None) -> bool | dict:
        """False (log out) once the account is deactivated or deleted; else its admin flag.

        Our store decides who is a hub admin, so the hub's own flag follows it.
        """
        mirror = await self.core.run(hub_mirror.read, self.core, user.name)
        if mirror is None or not mirror.active or not self.may_use_hub(user.name):
            if handler is not None:
                hub_compat.prepare_logout(handler)
            return False
        self._mirror_groups(user, mirror)
        return {"admin": mirror.admin}

    # -- spawned servers ------------------------------------------------------------

    async def pre_spawn_start(self, user, spawner) -> None:
        """Give the server a token of `inject_token_scopes` and where the API is.

        Called by the hub before each start of a server; an error here fails the
        spawn, so nothing the user controls (their other tokens, the server's name)
        may make it fail. A token left from a server that died without
        `post_spawn_stop` is replaced.
        """
        if self.inject_token_scopes:
            plaintext = await self.core.act(self._server_token, user.name, spawner.name)
            spawner.environment["ANNOTATIONS_TOKEN"] = plaintext
            spawner.environment["ANNOTATIONS_API_URL"] = api_url_for(spawner)

    def _server_token(self, name: str, server_name: str) -> str:
        core = self.core
        account = core.accounts.get(name)
        owner = Principal(name=account.name, admin=core.accounts.is_admin(account))
        plaintext, view = core.tokens.create_for_server(
            owner, server_name, self.inject_token_scopes
        )
        core.audit.record("token.create", name, name, id=view.id, name=view.name)
        return plaintext

    async def post_spawn_stop(self, user, spawner) -> None:
        """Revoke the server's token: it lives exactly as long as the server."""
        if self.inject_token_scopes:
            await self.core.act(self._revoke_server_token, user.name, spawner.name)

    def _revoke_server_token(self, name: str, server_name: str) -> None:
        token_name = server_token_name(server_name)
        if self.core.tokens.revoke_named(name, token_name):
            self.core.audit.record("token.revoke", name, name, name=token_name)

    # -- the hub's user lifecycle ---------------------------------------------------

    async def add_user(self, user) -> None:
        """Called for every hub user at every start, at first login and on REST creation.

        Idempotent: creates a password-less account only when none exists (an admin
        then issues a link); never re-activates or changes an existing account.
        """
        super().add_user(user)
        await self.core.act(self._ensure_account, user.name)

    def _ensure_account(self, name: str) -> None:
        if self.core.accounts.ensure(name):
            self.core.audit.record("user.create", None, name, reason="added to the hub")

    async def delete_user(self, user) -> None:
        """Called when the hub deletes a user (its admin page, its REST API, a culler):
        the account is deactivated or kept (`hub_user_deletion`), never deleted. Never
        refused either, so the hub's deletion completes: a culler logs a traceback for
        every refusal, every cycle."""
        if self.hub_user_deletion == "deactivate":
            await self.core.act(self._deactivate_deleted, user.name)
        super().delete_user(user)

    def _deactivate_deleted(self, name: str) -> None:
        account = self.core.accounts.get(name)
        if account is None or not account.active:
            return
        try:
            self.core.update_account(name, None, None, reason="deleted from the hub", active=False)
        except Conflict:
            self.log.warning(
                "JupyterHub deleted the user %r; their account stays active, as the last "
                "active hub admin (make someone else a hub admin first).",
                name,
            )
            self.core.audit.record(
                "user.update", None, name, reason="deleted from the hub; kept as last admin"
            )

    def rename_account(self, name: str, new_name: str) -> None:
        """Called as JupyterHub renames a user (`hub_compat.on_rename`), before the
        hub commits: the account takes the new name, or the rename is refused (409)."""
        try:
            # On the event loop: the hub's assignment cannot wait for a thread. A rare
            # admin action, and one short transaction.
            with self.core.store.action():
                if self.core.accounts.rename(name, new_name):
                    self.core.audit.record("user.rename", None, new_name, previous=name)
        except AnnotationError as e:
            raise web.HTTPError(e.status, e.message) from None
