"""Personal access tokens: format, issuance, scope rules, lookup, revocation.

A token is ``anno_`` + 43 base62 characters of secret (256 bits) + a 6-character
CRC32 checksum, so leaked tokens are easy to scan for and typos are refused without a
database query. Only the SHA-256 digest is stored (unique index: O(1) lookup).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from . import cursors
from .access_cache import AccessCache
from .accounts import require_account
from .errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from .models import Account, Membership, Project, Token, utcnow
from .permissions import SCOPES, USERS_MANAGE, Principal, authorize
from .store import Store

PREFIX = "anno_"
DEFAULT_SCOPES = ("annotations:read",)
_ALPHABET = string.digits + string.ascii_letters
_SECRET_LENGTH = 43  # 43 * log2(62) = 256 bits
_CHECK_LENGTH = 6
_FORMAT = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{_SECRET_LENGTH + _CHECK_LENGTH}}}")
NAME_MAX = 100
# Names of the tokens the hub gives to spawned servers: nobody else may use the prefix,
# since the hub revokes a server's token by its name.
SERVER_PREFIX = "server:"
_SERVER_DIGEST_LENGTH = 12


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits))


def _checksum(secret: str) -> str:
    return _base62(zlib.crc32(f"{PREFIX}{secret}".encode()), _CHECK_LENGTH)


def generate() -> str:
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_LENGTH))
    return f"{PREFIX}{secret}{_checksum(secret)}"


def digest_of(token: str) -> str:
    """The SHA-256 hex digest of a well-formed token; Unauthenticated otherwise."""
    digest = _digest_of_shape(token)
    _check_checksum(token)
    return digest


def _digest_of_shape(token: str) -> str:
    """The digest of a token of the right shape (the checksum is not checked here)."""
    if not _FORMAT.fullmatch(token):
        raise Unauthenticated(
            "The token is malformed: an annotation token starts with 'anno_' and has "
            f"{len(PREFIX) + _SECRET_LENGTH + _CHECK_LENGTH} characters. Copy it again, "
            "or create one at /hub/annotations/tokens."
        )
    return hashlib.sha256(token.encode()).hexdigest()


def _check_checksum(token: str) -> None:
    secret, check = token[len(PREFIX) : -_CHECK_LENGTH], token[-_CHECK_LENGTH:]
    if not secrets.compare_digest(_checksum(secret), check):
        raise Unauthenticated("The token's checksum does not match: it was mistyped or cut.")


def server_token_name(server_name: str) -> str:
    """The name of the token injected into server ``server_name`` ('' is the default).

    At most NAME_MAX characters: a longer one keeps its start and ends with a digest of
    the server name, so it is the same at every start of that server (`post_spawn_stop`
    finds it again) and differs from every other server's.
    """
    name = f"{SERVER_PREFIX}{server_name or 'default'}"
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(server_name.encode()).hexdigest()[:_SERVER_DIGEST_LENGTH]
    return f"{name[: NAME_MAX - _SERVER_DIGEST_LENGTH - 1]}~{digest}"


def _is_server_token(name) -> bool:
    # Ignoring case: "Server:default" in a list would pass for the hub's own.
    return isinstance(name, str) and name.lower().startswith(SERVER_PREFIX)


def check_may_manage_others(caller: Principal) -> None:
    """Acting on somebody else's tokens (listing everyone's, revoking theirs, minting for
    a service account) is user management: a hub admin, and by token only with
    ``users:manage``. The one rule for all of them, decided by `authorize`."""
    authorize(caller, USERS_MANAGE)


@dataclass(frozen=True)
class TokenView:
    id: int
    name: str
    owner: str
    scopes: list[str]
    projects: list[str] | None
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None

    def as_json(self) -> dict:
        body = dict(self.__dict__)
        for key in ("created_at", "expires_at", "last_used_at"):
            body[key] = body[key].isoformat() if body[key] else None
        return body


_AUTHENTICATE = (
    select(
        Token.id,
        Token.scopes,
        Token.projects,
        Token.expires_at,
        Token.revoked_at,
        Account.name,
        Account.admin,
        Account.kind,
        Account.active,
    )
    .join(Account, Account.id == Token.account_id)
    .where(Token.digest == bindparam("digest"))
)


def _split(value: str | None) -> list[str] | None:
    return None if value is None else value.split()


class LastUsed:
    """``last_used_at`` without a database write per request: at most one per interval."""

    def __init__(self, interval: timedelta = timedelta(minutes=1)) -> None:
        self.interval = interval
        self.seen: dict[int, datetime] = {}
        self._written: dict[int, datetime] = {}

    def forget(self, token_id: int) -> None:
        self.seen.pop(token_id, None)
        self._written.pop(token_id, None)

    def record(self, store: Store, token_id: int, now: datetime) -> None:
        self.seen[token_id] = now
        written = self._written.get(token_id)
        if written is None or now - written >= self.interval:
            # Cached access facts stay: a time of last use changes nobody's rights.
            with store.transaction(changes_access=False) as s:
                # Once the store is ours (it may refuse: `Store.memory_only`).
                self._written[token_id] = now
                s.execute(update(Token).where(Token.id == token_id).values(last_used_at=now))


class Tokens:
    def __init__(
        self,
        store: Store,
        is_admin: Callable = lambda account: account.admin,
        may_use: Callable[[str], bool] = lambda name: True,
        max_lifetime_days: int = 90,
        max_live_per_user: int = 50,
        clock: Callable[[], datetime] = utcnow,
        cache: AccessCache | None = None,
    ) -> None:
        """``cache``: where token lookups are kept (by digest); None: no caching.
        ``may_use``: whether the owner may use the hub at all (asked at every use)."""
        self.store = store
        self.is_admin = is_admin
        self.may_use = may_use
        self.max_lifetime_days = max_lifetime_days
        self.max_live_per_user = max_live_per_user
        self.clock = clock
        self.last_used = LastUsed()
        self.cache = cache if cache is not None else AccessCache(store, 0)

    # -- use --------------------------------------------------------------------

    def authenticate(self, token: str) -> Principal:
        """The principal a token acts as; Unauthenticated (401) with the reason if none.

        Revocation, expiry and the owner's deactivation are checked at every call, on
        the token's row as read now or as cached (see `access_cache`).
        """
        digest = _digest_of_shape(token)
        # The checksum is checked before any query, in `_lookup`; a cache hit needs no
        # check: it was loaded for this very string (same digest), which passed then.
        found = self.cache.lookup(digest, lambda: self._lookup(token, digest))
        if found is None:
            raise Unauthenticated("The token is revoked or unknown: create a new one.")
        row, principal = found
        if row.revoked_at is not None:
            raise Unauthenticated("The token is revoked or unknown: create a new one.")
        now = self.clock()
        if row.expires_at <= now:
            raise Unauthenticated(
                f"The token expired on {row.expires_at:%Y-%m-%d %H:%M} UTC: create a new one."
            )
        if not row.active:
            raise Unauthenticated("The token's account is deactivated.")
        if not self.may_use(principal.name):
            raise Unauthenticated(
                "The token's account may not use this hub (c.Authenticator.allowed_users "
                "or blocked_users)."
            )
        self.last_used.record(self.store, row.id, now)
        return principal

    def _lookup(self, token: str, digest: str) -> tuple | None:
        """The token's row and the principal it acts as; None for an unknown digest."""
        _check_checksum(token)  # a mistyped token costs no query
        # The hot path of every scripted request: one indexed Core query, no ORM objects.
        with self.store.reading() as conn:
            row = conn.execute(_AUTHENTICATE, {"digest": digest}).first()
        if row is None:
            return None
        projects = _split(row.projects)
        principal = Principal(
            name=row.name,
            admin=self.is_admin(row),
            kind=row.kind,
            auth="token",
            scopes=frozenset(row.scopes.split()),
            projects=None if projects is None else frozenset(projects),
            token_id=row.id,
            expires_at=row.expires_at,
        )
        return row, principal

    # -- issue ------------------------------------------------------------------

    def create(
        self,
        owner: Principal,
        name: str,
        scopes: Iterable[str] | None = None,
        projects: Iterable[str] | None = None,
        expires_in_days: int | None = None,
        via: Principal | None = None,
    ) -> tuple[str, TokenView]:
        """A new token for ``owner``; ``via`` is the token the request came with, if any.

        Returns the plaintext (shown once, never stored) and the metadata.
        """
        name = name.strip() if isinstance(name, str) else name
        _check_name(name)
        return self._issue(owner, name, scopes, projects, expires_in_days, via)

    def create_for_server(
        self, owner: Principal, server_name: str, scopes: Iterable[str]
    ) -> tuple[str, TokenView]:
        """The token injected into ``owner``'s server ``server_name`` as it starts.

        Named by `server_token_name`; replaces the live one a previous start left (a
        server that died without `post_spawn_stop`). It does not count toward
        `max_live_per_user`: a user at the cap can still start their server, and there
        is at most one such token per server.
        """
        return self._issue(owner, server_token_name(server_name), scopes, server=True)

    def _issue(
        self,
        owner: Principal,
        name: str,
        scopes: Iterable[str] | None,
        projects: Iterable[str] | None = None,
        expires_in_days: int | None = None,
        via: Principal | None = None,
        server: bool = False,
    ) -> tuple[str, TokenView]:
        if scopes is not None and not scopes:
            raise InvalidInput("'scopes' is empty: ask for at least one, or leave it out.")
        scopes = sorted(set(scopes or DEFAULT_SCOPES))
        projects = None if projects is None else sorted(set(projects))
        days = self.max_lifetime_days if expires_in_days is None else expires_in_days
        self._check_request(owner, scopes, days)
        now = self.clock()
        expires_at = now + timedelta(days=days)
        if via is not None and via.auth == "token":
            if expires_in_days is None:  # by default, a minted token ends with its minter
                expires_at = min(expires_at, via.expires_at)
            _check_not_broader(via, scopes, projects, expires_at)
        plaintext = generate()
        try:
            with self.store.transaction() as s:
                # Locked: two creates at once cannot both slip under the cap.
                account = require_account(s, owner.name, lock=True)
                self._check_projects(s, owner, projects)
                # An expired token no longer holds its name; a server's new token
                # replaces its old one outright.
                held = [Token.expires_at <= now] if not server else []
                s.execute(
                    update(Token)
                    .where(
                        Token.account_id == account.id,
                        Token.name == name,
                        Token.revoked_at.is_(None),
                        *held,
                    )
                    .values(revoked_at=now)
                )
                if not server:
                    self._check_cap(s, account.id, now)
                record = Token(
                    account_id=account.id,
                    name=name,
                    digest=hashlib.sha256(plaintext.encode()).hexdigest(),
                    scopes=" ".join(scopes),
                    projects=None if projects is None else " ".join(projects),
                    created_at=now,
                    expires_at=expires_at,
                )
                s.add(record)
                s.flush()
                return plaintext, _view(record, owner.name)
        except IntegrityError:
            raise Conflict(
                f"You already have a token named {name!r}: choose another name."
            ) from None

    def _check_cap(self, s, account_id: int, now: datetime) -> None:
        """At most `max_live_per_user` live tokens, not counting servers' tokens."""
        live = s.scalar(
            select(func.count())
            .select_from(Token)
            .where(
                Token.account_id == account_id,
                Token.revoked_at.is_(None),
                Token.expires_at > now,
                # substr, not LIKE: LIKE ignores case on SQLite but not on PostgreSQL.
                func.substr(Token.name, 1, len(SERVER_PREFIX)) != SERVER_PREFIX,
            )
        )
        if live >= self.max_live_per_user:
            raise Conflict(
                f"You have {live} live tokens, the limit: revoke some before creating another."
            )

    def _check_request(self, owner: Principal, scopes: list[str], days) -> None:
        unknown = [scope for scope in scopes if scope not in SCOPES]
        if unknown:
            raise InvalidInput(f"Unknown scope {unknown[0]!r}: use some of {', '.join(SCOPES)}.")
        if "users:manage" in scopes and not owner.admin:
            raise InvalidInput("Only hub admins can hold the scope 'users:manage'.")
        if isinstance(days, bool) or not isinstance(days, int):
            raise InvalidInput("'expires_in_days' must be a whole number of days.")
        if not 1 <= days <= self.max_lifetime_days:
            raise InvalidInput(f"'expires_in_days' must be 1 to {self.max_lifetime_days}.")

    @staticmethod
    def _check_projects(s, owner: Principal, projects: list[str] | None) -> None:
        if not projects:
            if projects == []:
                raise InvalidInput("'projects' is empty: leave it out for all your projects.")
            return
        found = set(s.scalars(select(Project.slug).where(Project.slug.in_(projects))))
        if not owner.admin:
            found = set(
                s.scalars(
                    select(Project.slug)
                    .join(Membership, Membership.project_id == Project.id)
                    .join(Account, Account.id == Membership.account_id)
                    .where(Account.name == owner.name, Project.slug.in_(projects))
                )
            )
        missing = [slug for slug in projects if slug not in found]
        if missing:
            raise InvalidInput(f"You are not a member of a project {missing[0]!r}.")

    # -- list and revoke ----------------------------------------------------------

    def listing(
        self, owner: str | None = None, cursor: str | None = None, limit: int | None = None
    ) -> tuple[list[TokenView], str | None]:
        """Live (unrevoked) tokens of ``owner``, or of everyone when None, by owner and
        age: a page of ``limit`` from ``cursor`` and the next page's cursor; ``limit``
        None: all of them."""
        query = (
            select(Token, Account.name)
            .join(Account, Account.id == Token.account_id)
            .where(Token.revoked_at.is_(None))
            .order_by(Account.name, Token.id)
        )
        if owner is not None:
            query = query.where(Account.name == owner)
        query = cursors.after(query, cursor, limit, Account.name, Token.id)
        with self.store.transaction(readonly=True) as s:
            rows = s.execute(query).all()
        views = [_view(record, name, self.last_used.seen.get(record.id)) for record, name in rows]
        return cursors.cut(views, limit, lambda view: (view.owner, view.id))

    def revoke(self, token_id: int, caller: Principal) -> str:
        """Revoke by id: the owner, or as `check_may_manage_others` allows; anyone who
        is no hub admin gets 404 for somebody else's token (no leak).

        Returns the owner's name."""
        with self.store.transaction() as s:
            row = s.execute(
                select(Token, Account.name)
                .join(Account, Account.id == Token.account_id)
                .where(Token.id == token_id, Token.revoked_at.is_(None))
            ).first()
            others = row is not None and row.name != caller.name
            if row is None or (others and not caller.admin):  # no leak to non-admins
                raise NotFound(f"You have no token with id {token_id}.")
            if others:
                check_may_manage_others(caller)
            row.Token.revoked_at = self.clock()
        self.last_used.forget(token_id)
        return row.name

    def revoke_named(self, owner: str, name: str) -> int:
        """Revoke ``owner``'s live token called ``name`` (the spawner's); how many."""
        with self.store.transaction() as s:
            return s.execute(
                update(Token)
                .where(
                    Token.account_id
                    == select(Account.id).where(Account.name == owner).scalar_subquery(),
                    Token.name == name,
                    Token.revoked_at.is_(None),
                )
                .values(revoked_at=self.clock())
            ).rowcount


def _check_name(name) -> None:
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= NAME_MAX:
        raise InvalidInput(f"A token needs a name of 1 to {NAME_MAX} characters.")
    if _is_server_token(name):
        raise InvalidInput(
            f"Token names starting with {SERVER_PREFIX!r} are reserved for the tokens the "
            "hub gives to notebook servers: choose another name."
        )


def _check_not_broader(
    via: Principal, scopes: list[str], projects: list[str] | None, expires_at: datetime
) -> None:
    """A token can never mint a token with more scopes, projects or time than itself."""
    if "tokens:manage" not in via.scopes:
        raise Forbidden("This token lacks the scope 'tokens:manage' needed to create tokens.")
    extra = sorted(set(scopes) - via.scopes)
    if extra:
        raise Forbidden(f"A token cannot create a token with more scopes than its own: {extra}.")
    if via.projects is not None and (projects is None or not set(projects) <= via.projects):
        raise Forbidden(
            "A token restricted to projects can only create tokens restricted to some of "
            f"them: {sorted(via.projects)}."
        )
    if expires_at > via.expires_at:
        raise Forbidden(
            "A token cannot create a token that outlives it: ask for fewer days "
            f"(this one expires {via.expires_at:%Y-%m-%d %H:%M} UTC)."
        )


def _view(record: Token, owner: str, seen: datetime | None = None) -> TokenView:
    last = max(filter(None, (record.last_used_at, seen)), default=None)
    return TokenView(
        id=record.id,
        name=record.name,
        owner=owner,
        scopes=record.scopes.split(),
        projects=_split(record.projects),
        created_at=record.created_at,
        expires_at=record.expires_at,
        last_used_at=last,
    )
