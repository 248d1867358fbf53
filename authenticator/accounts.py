"""Accounts: creation, login with throttling, passwords, and one-time links.

Slow work (Argon2) never runs inside a transaction, so a login in progress holds no
database lock. Callers on an event loop run these methods in a thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from . import cursors, passwords, usernames
from .errors import Conflict, Forbidden, InvalidInput, LinkError, NotFound
from .links import LinkClaims, LinkSigner
from .lockout import LockoutPolicy
from .models import Account, Annotation, Membership, Project, utcnow
from .permissions import Principal
from .store import Store


class Deactivated(Exception):
    """A right password for a deactivated account: a failed login like any other, which
    the caller may record as such (never shown to the person logging in)."""


@dataclass(frozen=True)
class FirstRun:
    """What the first start did: created ``name``; no link token when a password was given."""

    name: str
    link_token: str | None


class Accounts:
    def __init__(
        self,
        store: Store,
        signer: LinkSigner,
        lockout: LockoutPolicy,
        min_password_length: int = 10,
        clock: Callable[[], datetime] = utcnow,
        admin_users: frozenset[str] = frozenset(),
    ) -> None:
        """``admin_users``: names that are hub admins by config (Authenticator.admin_users)."""
        self.store = store
        self.admin_users = admin_users
        self.signer = signer
        self.lockout = lockout
        self.min_password_length = min_password_length
        self.clock = clock

    # -- lookups -----------------------------------------------------------------

    def get(self, name: str) -> Account | None:
        with self.store.transaction(readonly=True) as s:
            return find_account(s, name)

    def service_principal(self, name: str) -> Principal:
        """The principal a hub admin issues a token for: only an active service account
        (people create their own tokens; nobody mints one to act as a person)."""
        account = self.get(name)
        if account is None or account.kind != "service":
            raise InvalidInput(
                f"{name!r} is not a service account: hub admins create tokens for service "
                "accounts (svc:<name>) only; people create their own."
            )
        if not account.active:
            raise Conflict(f"{name!r} is deactivated: reactivate it first.")
        return Principal(name=account.name, admin=False, kind="service")

    # -- lifecycle ---------------------------------------------------------------

    def ensure(self, name: str) -> bool:
        """Create a password-less account unless one exists; True if it was created.

        Idempotent; never touches an existing account (a deactivated one stays so).
        """
        try:
            with self.store.transaction() as s:
                if find_account(s, name) is not None:
                    return False
                s.add(Account(name=name, created_at=self.clock()))
        except IntegrityError:
            return False  # another process created it between our read and write
        return True

    def is_admin(self, account: Account) -> bool:
        """Hub admin: the account's flag, or named in Authenticator.admin_users."""
        return account.admin or account.name in self.admin_users

    def listing(
        self, cursor: str | None = None, limit: int | None = None
    ) -> tuple[list[Account], str | None]:
        """Accounts by name, a page of ``limit`` from ``cursor`` and the next page's
        cursor; ``limit`` None: all of them."""
        query = cursors.after(select(Account).order_by(Account.name), cursor, limit, Account.name)
        with self.store.transaction(readonly=True) as s:
            rows = list(s.scalars(query))
        return cursors.cut(rows, limit, lambda account: (account.name,))

    def create(self, name: str, admin: bool = False) -> Account:
        """A new account made by a hub admin: a person (no password yet) or ``svc:`` service."""
        kind = usernames.account_kind(name)
        if admin and kind == "service":
            raise InvalidInput("A service account cannot be a hub admin.")
        try:
            with self.store.transaction() as s:
                if find_account(s, name) is not None:
                    raise Conflict(f"An account named {name!r} exists already.")
                account = Account(name=name, kind=kind, admin=admin, created_at=self.clock())
                s.add(account)
                return account
        except IntegrityError:
            raise Conflict(f"An account named {name!r} exists already.") from None

    def delete(self, name: str) -> bool:
        """Delete the account and its memberships.

        Never the last active hub admin, nor the last admin of a project.
        """
        with self.store.transaction() as s:
            account = find_account(s, name)
            if account is None:
                return False
            self._keep_an_active_admin(s, account)
            _keep_project_admins(s, account)
            s.delete(account)
            return True

    def rename(self, name: str, new_name: str) -> bool:
        """Give the account ``name`` (and the annotations it owns) the name ``new_name``;
        False when there is no such account. Memberships and tokens follow by id."""
        usernames.check_username(new_name)
        with self.store.transaction() as s:
            account = find_account(s, name)
            if account is None:
                return False
            if find_account(s, new_name) is not None:
                raise Conflict(
                    f"An account named {new_name!r} exists already: delete it or choose "
                    "another name."
                )
            account.name = new_name
            # Annotations keep their owner's name as part of their key (SPEC 7).
            s.execute(
                update(Annotation).where(Annotation.owner_id == account.id).values(owner=new_name)
            )
            return True

    def update(self, name: str, active: bool | None = None, admin: bool | None = None) -> Account:
        """Change ``active`` and/or ``admin`` together: every check passes before any write."""
        with self.store.transaction() as s:
            account = require_account(s, name)
            if admin and account.kind == "service":
                raise InvalidInput("A service account cannot be a hub admin.")
            if admin is False and name in self.admin_users:
                raise Conflict(
                    f"{name!r} is a hub admin through c.Authenticator.admin_users in "
                    "jupyterhub_config.py: remove them there and restart the hub."
                )
            if active is False or admin is False:
                self._keep_an_active_admin(s, account)
            if active is False:
                account.link_generation += 1  # no link outlives a deactivation
            if active is not None:
                account.active = active
            if admin is not None:
                account.admin = admin
            return account

    def set_active(self, name: str, active: bool) -> Account:
        return self.update(name, active=active)

    def set_admin(self, name: str, admin: bool) -> Account:
        return self.update(name, admin=admin)

    def _keep_an_active_admin(self, s: Session, leaving: Account) -> None:
        """Refuse a change that takes ``leaving`` away as the last active hub admin."""
        if not (leaving.active and self.is_admin(leaving)):
            return
        # Locking every admin row, in one order, makes two admins demoting each other
        # take turns (locking only "the others" deadlocks on PostgreSQL).
        admins = s.scalars(
            select(Account.id)
            .where(Account.active.is_(True))
            .where(Account.admin.is_(True) | Account.name.in_(self.admin_users))
            .order_by(Account.id)
            .with_for_update()
        ).all()
        if not set(admins) - {leaving.id}:
            raise Conflict(
                f"{leaving.name!r} is the last active hub admin: make someone else a hub "
                "admin first."
            )

    def first_run(self, name: str, password: str | None) -> FirstRun | None:
        """Create the first admin when there are no accounts at all; else None.

        With ``password`` the admin can log in at once; without, the result carries a
        setup link token. The policy is checked before anything is written.
        """
        if password is not None:
            passwords.check_policy(password, name, self.min_password_length)
            password_hash = passwords.hash_password(password)
        else:
            password_hash = None
        now = self.clock()
        account = Account(
            name=name,
            admin=True,
            password_hash=password_hash,
            password_changed_at=now if password_hash else None,
            created_at=now,
            link_generation=0,
        )
        try:
            with self.store.transaction() as s:
                if s.scalars(select(Account.id).limit(1)).first() is not None:
                    return None
                s.add(account)
        except IntegrityError:
            return None  # a replica starting beside us won the race
        token = None if password_hash else self._sign(account, "setup")
        return FirstRun(name=name, link_token=token)

    # -- login -------------------------------------------------------------------

    def login(self, name: str, password: str, address: str) -> Account | None:
        """The account if ``password`` is right and the account active, None otherwise.

        The attempt is reserved first (`LockoutPolicy.reserve`): it counts as a failure
        unless the password proves right, so parallel guesses get no more checks than
        the limit. Unknown names, wrong passwords and deactivated accounts cost one
        Argon2 verification each and answer alike; `Deactivated` (raised only after a
        right password) tells the caller why, for its audit record, not for the user.
        Raises LockedOut while throttled, before any hashing.
        """
        now = self.clock()
        with self.store.transaction() as s:
            self.lockout.reserve(s, name, address, now)
            account = find_account(s, name)
        stored = account.password_hash if account else None
        if not passwords.verify_password(stored, password):
            return None
        if not account.active:
            raise Deactivated(name)  # the reserved failure stays, as for a wrong password
        new_hash = passwords.hash_password(password) if passwords.needs_rehash(stored) else None
        with self.store.transaction() as s:
            self.lockout.clear(s, name)
            if new_hash:
                s.execute(
                    update(Account)
                    .where(Account.name == name, Account.password_hash == stored)
                    .values(password_hash=new_hash)
                )
        return account

    def change_password(self, name: str, current: str, new: str, address: str) -> None:
        try:
            checked = self.login(name, current, address)
        except Deactivated:
            checked = None
        if checked is None:
            raise Forbidden("The current password is not correct.")
        passwords.check_policy(new, name, self.min_password_length)
        with self.store.transaction() as s:
            version = require_account(s, name).credential_version
        self._set_password(name, new, version)

    # -- links -------------------------------------------------------------------

    def issue_link(self, name: str, purpose: str) -> str:
        """A new link; every older unused link of the account dies with it."""
        with self.store.transaction() as s:
            account = require_account(s, name, lock=True)
            if not account.active:
                raise InvalidInput(f"The account {name!r} is deactivated: reactivate it first.")
            account.link_generation += 1
            s.flush()
            return self._sign(account, purpose)

    def revoke_links(self, name: str) -> None:
        """Kill every unused link of ``name`` (a hub admin's explicit revocation)."""
        with self.store.transaction() as s:
            account = require_account(s, name, lock=True)
            account.link_generation += 1

    def invite_or_reset_link(self, name: str, setup_for_admin: bool = False) -> str:
        """A link for an admin to hand over: an invitation until a password is set.

        ``setup_for_admin`` (the CLI): a hub admin with no password yet gets a setup link.
        """
        account = self.get(name)
        if account is None:
            raise NotFound(f"There is no account named {name!r}.")
        if account.kind == "service":
            raise InvalidInput("A service account has no password: give it a token instead.")
        if account.password_hash:
            purpose = "reset"
        elif setup_for_admin and account.admin:
            purpose = "setup"
        else:
            purpose = "invite"
        return self.issue_link(name, purpose)

    def _sign(self, account: Account, purpose: str) -> str:
        return self.signer.issue(
            account.name,
            purpose,
            account.credential_version,
            account_stamp(account),
            account.link_generation,
        )

    def check_link(self, token: str) -> LinkClaims:
        """The claims of a link that can still be used; LinkError otherwise."""
        claims = self.signer.verify(token)
        account = self.get(claims.name)
        # Another stamp: the link's account was deleted and this one has its name.
        if account is None or not account.active or account_stamp(account) != claims.account:
            raise LinkError("This link's account no longer exists or is deactivated.")
        if account.credential_version != claims.version:
            raise LinkError(
                "This link has already been used, or the password was changed since it was "
                "issued. Log in, or ask an administrator for a new link."
            )
        if account.link_generation != claims.generation:
            raise LinkError(
                "This link was revoked: a newer link was issued for the account, or it was "
                "deactivated, or an administrator revoked its links. Ask an administrator "
                "for a new link."
            )
        return claims

    def use_link(self, token: str, password: str) -> str:
        """Set the password through a link; the link dies. Returns the account name."""
        claims = self.check_link(token)
        passwords.check_policy(password, claims.name, self.min_password_length)
        self._set_password(claims.name, password, claims.version)
        return claims.name

    def _set_password(self, name: str, password: str, expected_version: int) -> None:
        password_hash = passwords.hash_password(password)
        with self.store.transaction() as s:
            # Compare-and-set on the version: of two racing uses of one link, one wins.
            done = s.execute(
                update(Account)
                .where(Account.name == name, Account.credential_version == expected_version)
                .values(
                    password_hash=password_hash,
                    credential_version=Account.credential_version + 1,
                    password_changed_at=self.clock(),
                )
            ).rowcount
            if done != 1:
                raise LinkError(
                    "The password was changed meanwhile: this link or form is no longer valid."
                )
            # A reset link is how a locked-out user gets back in.
            self.lockout.clear(s, name)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def account_stamp(account: Account) -> str:
    """A value that tells ``account`` from any earlier or later account of its name.

    Links carry it, so deleting an account kills its links even when an account of the
    same name is created later. Neither part suffices alone: SQLite reuses the id of
    a deleted last row, and two accounts may be created in the same instant; both at
    once (to the microsecond) does not happen. Hashed so a link shows neither.
    """
    created_us = (account.created_at - _EPOCH) // timedelta(microseconds=1)
    return hashlib.sha256(f"{account.id}:{created_us}".encode()).hexdigest()[:16]


def find_account(session: Session, name: str) -> Account | None:
    return session.scalars(select(Account).where(Account.name == name)).first()


def require_account(session: Session, name: str, lock: bool = False) -> Account:
    query = select(Account).where(Account.name == name)
    account = session.scalars(query.with_for_update() if lock else query).first()
    if account is None:
        raise NotFound(f"There is no account named {name!r}.")
    return account


def _keep_project_admins(s: Session, account: Account) -> None:
    """Refuse to delete the last admin of a project (a project always keeps one)."""
    others = aliased(Membership)
    orphaned = s.scalars(
        select(Project.slug)
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.account_id == account.id, Membership.role == "admin")
        .where(
            ~select(others.id)
            .where(
                others.project_id == Project.id,
                others.role == "admin",
                others.account_id != account.id,
            )
            .exists()
        )
        .order_by(Project.slug)
    ).all()
    if orphaned:
        raise Conflict(
            f"{account.name!r} is the last admin of project {orphaned[0]!r}: make someone "
            "else its admin first."
        )
