"""Personal access tokens (SPEC section 6): format, checksum, digest, the scope algebra of
`authorize` for token principals, and the `Tokens` service on SQLite and PostgreSQL with
a fake clock (issue, use, list, revoke, cap, names, expiry, minting, last use)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from jupyterhub_annotations.authenticator.access_cache import AccessCache
from jupyterhub_annotations.authenticator.accounts import Accounts
from jupyterhub_annotations.authenticator.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from jupyterhub_annotations.authenticator.links import LinkSigner
from jupyterhub_annotations.authenticator.lockout import LockoutPolicy
from jupyterhub_annotations.authenticator.models import Token
from jupyterhub_annotations.authenticator.permissions import (
    PERMISSIONS,
    SCOPES,
    Principal,
    authorize,
)
from jupyterhub_annotations.authenticator.projects import Projects
from jupyterhub_annotations.authenticator.store import Store
from jupyterhub_annotations.authenticator.tokens import (
    NAME_MAX,
    PREFIX,
    LastUsed,
    Tokens,
    digest_of,
    generate,
    server_token_name,
)
from sqlalchemy import event, select, update

TOKEN = re.compile(r"anno_[0-9A-Za-z]{49}")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
READ, WRITE = "annotations:read", "annotations:write"


# -- format, checksum, digest -----------------------------------------------------------


def test_a_token_is_the_prefix_43_base62_secret_characters_and_a_6_character_checksum():
    token = generate()
    assert PREFIX == "anno_"
    assert TOKEN.fullmatch(token), token
    assert len(token) == 5 + 43 + 6
    assert digest_of(token)  # its own checksum matches


def test_generated_tokens_are_unique_and_use_the_whole_alphabet():
    tokens = {generate() for _ in range(2000)}
    assert len(tokens) == 2000
    assert all(TOKEN.fullmatch(t) for t in tokens)
    secrets_ = [t[5:48] for t in tokens]
    assert set("".join(secrets_)) == set(BASE62)  # 62 symbols: 43 of them carry 256 bits
    assert len({s[:8] for s in secrets_}) == 2000  # no shared prefix: no fixed pattern


def test_the_digest_is_the_sha256_hex_of_the_whole_token():
    token = generate()
    digest = digest_of(token)
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest_of(token) == digest  # deterministic: the lookup key
    assert digest_of(generate()) != digest


def _changed(token: str, position: int) -> str:
    other = BASE62[(BASE62.index(token[position]) + 1) % 62]
    return token[:position] + other + token[position + 1 :]


def test_the_checksum_catches_any_one_changed_character():
    token = generate()
    for position in range(len(PREFIX), len(token)):  # secret and checksum alike
        with pytest.raises(Unauthenticated, match="checksum") as e:
            digest_of(_changed(token, position))
        assert e.value.status == 401


def test_the_checksum_catches_swapped_neighbours():
    token = generate()
    for i in range(len(PREFIX), len(token) - 1):
        if token[i] != token[i + 1]:
            swapped = token[:i] + token[i + 1] + token[i] + token[i + 2 :]
            with pytest.raises(Unauthenticated, match="checksum"):
                digest_of(swapped)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t[:-1], id="truncated by one"),
        pytest.param(lambda t: t[:30], id="cut in half"),
        pytest.param(lambda t: t + "0", id="one too many"),
        pytest.param(lambda t: t.replace("anno_", "anna_"), id="wrong prefix"),
        pytest.param(lambda t: t.replace("anno_", "ANNO_"), id="upper-case prefix"),
        pytest.param(lambda t: t[5:], id="no prefix"),
        pytest.param(lambda t: t[:20] + "-" + t[21:], id="not base62"),
        pytest.param(lambda t: " " + t, id="leading space"),
        pytest.param(lambda t: t + "\n", id="trailing newline"),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: "anno_", id="prefix only"),
    ],
)
def test_malformed_tokens_are_refused_without_a_lookup(mangle):
    with pytest.raises(Unauthenticated, match="malformed") as e:
        digest_of(mangle(generate()))
    assert e.value.status == 401
    assert "anno_" in e.value.message  # says what a token looks like


def test_messages_never_contain_the_token():
    token = generate()
    for bad in (_changed(token, 20), token[:-1]):
        with pytest.raises(Unauthenticated) as e:
            digest_of(bad)
        assert token[5:15] not in e.value.message and bad[5:15] not in e.value.message


# -- scope algebra: token scopes ∩ roles ∩ token projects ∩ api_access --------------------

OK = "ok"
PERMISSION_ORDER = (
    "authenticated",
    "users:manage",
    "projects:create",
    "project:read",
    "project:manage",
    "project:delete",
    "tokens:manage",
    "annotations:read",
    "annotations:write",
    "member:self",
    "annotations:review",
)
F, NF = Forbidden, NotFound

# A hub admin's token (every role, so only the scope counts) with one scope, against
# each permission in PERMISSION_ORDER.
ADMIN_TOKEN_TABLE = {
    "annotations:read": (OK, F, F, OK, F, F, F, OK, F, F, OK),  # reads, changes nothing
    "annotations:write": (OK, F, F, OK, F, F, F, OK, OK, OK, OK),
    "projects:manage": (OK, F, OK, OK, OK, OK, F, F, F, OK, F),
    "tokens:manage": (OK, F, F, F, F, F, OK, F, F, F, F),
    "users:manage": (OK, OK, F, F, F, F, F, F, F, F, F),
}

# A non-admin's token with one scope, on a project where their membership is None,
# viewer, annotator, admin: the lower of what the scope and the role allow.
MEMBER_TOKEN_TABLE = {
    ("annotations:read", "project:read"): (NF, OK, OK, OK),
    ("annotations:read", "project:manage"): (NF, F, F, F),
    ("annotations:read", "project:delete"): (NF, F, F, F),
    ("annotations:write", "project:read"): (NF, OK, OK, OK),
    ("annotations:write", "project:manage"): (NF, F, F, F),
    ("annotations:write", "project:delete"): (NF, F, F, F),
    ("projects:manage", "project:read"): (NF, OK, OK, OK),
    ("projects:manage", "project:manage"): (NF, F, F, OK),
    ("projects:manage", "project:delete"): (NF, F, F, F),
    ("tokens:manage", "project:read"): (NF, F, F, F),
    ("tokens:manage", "project:manage"): (NF, F, F, F),
    ("tokens:manage", "project:delete"): (NF, F, F, F),
    ("projects:manage", "projects:create"): (F, F, F, F),
    ("users:manage", "users:manage"): (F, F, F, F),  # a scope is no role
    ("tokens:manage", "tokens:manage"): (OK, OK, OK, OK),
    ("annotations:read", "tokens:manage"): (F, F, F, F),
    ("annotations:read", "annotations:read"): (NF, OK, OK, OK),
    ("annotations:read", "annotations:write"): (NF, F, F, F),
    ("annotations:write", "annotations:read"): (NF, OK, OK, OK),  # writing implies reading
    ("annotations:write", "annotations:write"): (NF, F, OK, OK),  # viewers never write
    ("projects:manage", "annotations:read"): (NF, F, F, F),
    ("projects:manage", "annotations:write"): (NF, F, F, F),
    ("tokens:manage", "annotations:read"): (NF, F, F, F),
    ("annotations:read", "member:self"): (NF, F, F, F),  # no state change without a write scope
    ("annotations:write", "member:self"): (NF, OK, OK, OK),
    ("projects:manage", "member:self"): (NF, OK, OK, OK),
    ("annotations:read", "annotations:review"): (NF, OK, F, OK),  # not annotators
    ("annotations:write", "annotations:review"): (NF, OK, F, OK),
    ("projects:manage", "annotations:review"): (NF, F, F, F),
    ("tokens:manage", "annotations:review"): (NF, F, F, F),
}
MEMBER_ROLES = (None, "viewer", "annotator", "admin")


def token_of(name: str, admin: bool, scopes, projects=None) -> Principal:
    return Principal(
        name=name,
        admin=admin,
        auth="token",
        scopes=frozenset(scopes),
        projects=None if projects is None else frozenset(projects),
        token_id=1,
        expires_at=datetime(2100, 1, 1, tzinfo=UTC),
    )


def outcome_of(principal, permission, role=None, slug="demo", api_access=True):
    try:
        authorize(principal, permission, role, slug, api_access)
    except (Forbidden, NotFound, Unauthenticated, InvalidInput) as e:
        assert e.message
        return type(e)
    return OK


@pytest.mark.parametrize("permission", ["users:manage", "projects:create"])
def test_a_project_restricted_token_reaches_nothing_outside_its_projects(permission):
    token = token_of("root", True, SCOPES, projects={"demo"})
    with pytest.raises(Forbidden, match=r"restricted to the projects \['demo'\]"):
        authorize(token, permission)
    # Within them, on itself and on its own tokens, it works.
    for allowed in ("authenticated", "tokens:manage"):
        assert outcome_of(token, allowed) == OK
    assert outcome_of(token, "project:manage", "admin", slug="demo") == OK
    assert outcome_of(token, "project:read", "admin", slug="birds") == NF


def test_the_tables_cover_every_scope_and_permission():
    assert set(ADMIN_TOKEN_TABLE) == set(SCOPES)
    assert set(PERMISSION_ORDER) == set(PERMISSIONS) - {"public"}


@pytest.mark.parametrize("scope", SCOPES)
def test_a_hub_admins_token_can_do_only_what_its_scope_carries(scope):
    token = token_of("root", True, {scope})
    got = tuple(outcome_of(token, p, "admin") for p in PERMISSION_ORDER)
    assert got == ADMIN_TOKEN_TABLE[scope], dict(zip(PERMISSION_ORDER, got, strict=True))
    assert outcome_of(token, "public") == OK


@pytest.mark.parametrize(("scope", "permission"), list(MEMBER_TOKEN_TABLE))
def test_a_members_token_gets_the_intersection_of_scope_and_role(scope, permission):
    token = token_of("alice", False, {scope})
    got = tuple(outcome_of(token, permission, role) for role in MEMBER_ROLES)
    assert got == MEMBER_TOKEN_TABLE[(scope, permission)]


@pytest.mark.parametrize("admin", [False, True])
@pytest.mark.parametrize("permission", PERMISSION_ORDER)
@pytest.mark.parametrize("role", MEMBER_ROLES)
def test_a_token_with_every_scope_never_exceeds_a_session(admin, permission, role):
    scopes = SCOPES if admin else set(SCOPES) - {"users:manage"}
    session = Principal(name="alice", admin=admin)
    token = token_of("alice", admin, scopes)
    assert outcome_of(token, permission, role) == outcome_of(session, permission, role)


def test_the_missing_scope_is_named_in_the_refusal():
    with pytest.raises(Forbidden, match="projects:manage"):
        authorize(token_of("root", True, {"annotations:read"}), "project:manage", "admin", "x")
    with pytest.raises(Forbidden, match="tokens:manage"):
        authorize(token_of("alice", False, {"annotations:read"}), "tokens:manage")


@pytest.mark.parametrize("admin", [False, True])
@pytest.mark.parametrize("permission", ["project:read", "project:manage", "project:delete"])
def test_a_project_restricted_token_does_not_see_other_projects(admin, permission):
    token = token_of("alice", admin, SCOPES, projects={"demo"})
    assert outcome_of(token, permission, "admin", slug="birds") is NotFound
    expected = OK if admin or permission != "project:delete" else Forbidden
    assert outcome_of(token, permission, "admin", slug="demo") == expected
    # Not-project permissions are untouched by the restriction.
    assert outcome_of(token, "authenticated") == OK
    assert outcome_of(token, "tokens:manage") == OK


@pytest.mark.parametrize("admin", [False, True])
@pytest.mark.parametrize("permission", ["project:read", "project:manage"])
def test_api_access_off_refuses_tokens_but_not_sessions(admin, permission):
    session = Principal(name="alice", admin=admin)
    token = token_of("alice", admin, set(SCOPES) - {"users:manage"})
    assert outcome_of(session, permission, "admin", api_access=False) == OK
    assert outcome_of(token, permission, "admin", api_access=True) == OK
    with pytest.raises(Forbidden, match="API access"):
        authorize(token, permission, "admin", "demo", api_access=False)
    if not admin:  # a non-member learns nothing, not even that access is off
        assert outcome_of(token, permission, None, api_access=False) is NotFound


def test_api_access_off_does_not_touch_routes_without_a_project():
    token = token_of("root", True, SCOPES)
    for permission in ("authenticated", "users:manage", "projects:create", "tokens:manage"):
        assert outcome_of(token, permission, api_access=False) == OK


# -- the Tokens service on SQLite and PostgreSQL ------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += timedelta(**kw)


ROOT = Principal(name="root", admin=True)
ALICE = Principal(name="alice", admin=False)
BOB = Principal(name="bob", admin=False)
SESSION_OF = {"root": ROOT, "alice": ALICE, "bob": BOB}


@pytest.fixture
def accounts(store: Store) -> Accounts:
    accounts = Accounts(
        store,
        LinkSigner(b"s" * 32, timedelta(hours=24)),
        LockoutPolicy(max_failures=5, max_address_failures=50, window=timedelta(minutes=15)),
    )
    accounts.create("root", admin=True)
    accounts.create("alice")
    accounts.create("bob")
    projects = Projects(store, {})
    for slug in ("demo", "birds", "fish"):
        projects.create(slug, {}, creator="root")
    projects.set_member("demo", "alice", "annotator", granter_role="admin")
    projects.set_member("birds", "alice", "viewer", granter_role="admin")
    projects.set_member("demo", "bob", "viewer", granter_role="admin")
    return accounts


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["uncached", "cached"])
def tokens(request, store: Store, accounts: Accounts, clock: Clock) -> Tokens:
    """The service without a cache, and with one whose entries never age (its clock
    stands still): then only the store's generation can make a change visible, and
    every test below must pass all the same."""
    cache = None
    if request.param == "cached":
        cache = AccessCache(store, 60.0, clock=lambda: 0.0)
    return Tokens(store, is_admin=accounts.is_admin, clock=clock, cache=cache)


def stored(store: Store, token_id: int) -> Token:
    with store.transaction(readonly=True) as s:
        return s.scalar(select(Token).where(Token.id == token_id))


def test_create_returns_the_plaintext_once_and_stores_only_its_digest(tokens, store, clock):
    plaintext, view = tokens.create(ALICE, "laptop")
    assert TOKEN.fullmatch(plaintext)
    assert view.name == "laptop" and view.owner == "alice"
    assert view.scopes == ["annotations:read"]  # the default
    assert view.projects is None
    assert view.created_at == clock.now
    assert view.expires_at == clock.now + timedelta(days=90)  # the default: the maximum
    assert view.last_used_at is None
    body = view.as_json()
    assert set(body) == {
        "id",
        "name",
        "owner",
        "scopes",
        "projects",
        "created_at",
        "expires_at",
        "last_used_at",
    }
    assert plaintext not in str(body)
    record = stored(store, view.id)
    assert record.digest == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext not in str({c.name: getattr(record, c.name) for c in Token.__table__.c})
    assert record.revoked_at is None


def test_authenticate_gives_the_owners_principal_with_the_tokens_scopes(tokens, clock):
    plaintext, view = tokens.create(
        ALICE,
        "ci",
        scopes=["annotations:write", "annotations:read", "annotations:read"],
        projects=["demo", "birds"],
        expires_in_days=7,
    )
    assert view.scopes == ["annotations:read", "annotations:write"]  # sorted, deduplicated
    assert view.projects == ["birds", "demo"]
    p = tokens.authenticate(plaintext)
    assert (p.name, p.admin, p.kind, p.auth) == ("alice", False, "user", "token")
    assert p.scopes == {"annotations:read", "annotations:write"}
    assert p.projects == {"demo", "birds"}
    assert p.token_id == view.id
    assert p.expires_at == clock.now + timedelta(days=7)


def test_the_admin_flag_is_read_at_every_authentication(tokens, accounts):
    plaintext, _ = tokens.create(ALICE, "t")
    assert tokens.authenticate(plaintext).admin is False
    accounts.set_admin("alice", True)
    assert tokens.authenticate(plaintext).admin is True
    accounts.set_admin("alice", False)
    assert tokens.authenticate(plaintext).admin is False


def test_unknown_revoked_expired_and_deactivated_tokens_are_401_with_the_reason(
    tokens, accounts, clock
):
    with pytest.raises(Unauthenticated, match="revoked or unknown"):
        tokens.authenticate(generate())  # well-formed, never issued
    revoked, view = tokens.create(ALICE, "revoked")
    tokens.revoke(view.id, ALICE)
    with pytest.raises(Unauthenticated, match="revoked"):
        tokens.authenticate(revoked)
    short, _ = tokens.create(ALICE, "short", expires_in_days=1)
    clock.advance(days=1, seconds=-1)
    tokens.authenticate(short)
    clock.advance(seconds=1)
    with pytest.raises(Unauthenticated, match="expired on") as e:
        tokens.authenticate(short)
    assert clock.now.strftime("%Y-%m-%d") in e.value.message
    live, _ = tokens.create(ALICE, "live")
    accounts.set_active("alice", False)
    with pytest.raises(Unauthenticated, match="deactivated"):
        tokens.authenticate(live)
    with pytest.raises(Unauthenticated, match="malformed"):
        tokens.authenticate(live[:-2])
    with pytest.raises(Unauthenticated, match="checksum"):
        tokens.authenticate(_changed(live, 9))


def test_a_deleted_accounts_tokens_are_gone(tokens, accounts):
    plaintext, _ = tokens.create(BOB, "t")
    accounts.delete("bob")
    with pytest.raises(Unauthenticated, match="revoked or unknown"):
        tokens.authenticate(plaintext)


def test_listing_is_metadata_of_live_tokens_own_or_everyones(tokens):
    _, a = tokens.create(ALICE, "a")
    _, b = tokens.create(ALICE, "b", scopes=["tokens:manage"])
    _, gone = tokens.create(ALICE, "gone")
    _, c = tokens.create(BOB, "c")
    _, r = tokens.create(ROOT, "r", scopes=["users:manage"])
    tokens.revoke(gone.id, ALICE)
    assert [(t.id, t.name) for t in tokens.listing("alice")[0]] == [(a.id, "a"), (b.id, "b")]
    assert [t.name for t in tokens.listing("bob")[0]] == ["c"]
    assert [(t.owner, t.name) for t in tokens.listing()[0]] == [
        ("alice", "a"),
        ("alice", "b"),
        ("bob", "c"),
        ("root", "r"),
    ]
    assert tokens.listing("nobody")[0] == []
    assert c.id != r.id


def test_only_the_owner_or_a_hub_admin_revokes_others_get_404(tokens):
    plaintext, view = tokens.create(ALICE, "t")
    with pytest.raises(NotFound) as e:
        tokens.revoke(view.id, BOB)
    assert e.value.status == 404
    tokens.authenticate(plaintext)  # still live
    tokens.revoke(view.id, ROOT)
    with pytest.raises(Unauthenticated):
        tokens.authenticate(plaintext)
    with pytest.raises(NotFound):  # twice: it is gone
        tokens.revoke(view.id, ALICE)
    with pytest.raises(NotFound):
        tokens.revoke(987654, ROOT)


def test_revoke_named_revokes_the_live_token_of_that_name(tokens):
    first, _ = tokens.create_for_server(ALICE, "", [READ])
    other, _ = tokens.create(ALICE, "keep")
    bobs, _ = tokens.create_for_server(BOB, "", [READ])
    assert tokens.revoke_named("alice", "server:default") == 1
    assert tokens.revoke_named("alice", "server:default") == 0
    with pytest.raises(Unauthenticated):
        tokens.authenticate(first)
    tokens.authenticate(other)
    tokens.authenticate(bobs)
    second, _ = tokens.create_for_server(ALICE, "", [READ])  # the name is free again
    tokens.authenticate(second)


def test_live_tokens_are_capped_per_user(store, accounts, clock):
    tokens = Tokens(store, is_admin=accounts.is_admin, max_live_per_user=3, clock=clock)
    views = [tokens.create(ALICE, f"t{i}", expires_in_days=1 + i)[1] for i in range(3)]
    with pytest.raises(Conflict, match="3 live tokens") as e:
        tokens.create(ALICE, "fourth")
    assert e.value.status == 409
    tokens.create(BOB, "bobs")  # per user
    tokens.revoke(views[2].id, ALICE)
    tokens.create(ALICE, "after revoke")
    with pytest.raises(Conflict):
        tokens.create(ALICE, "again")
    clock.advance(days=1)  # t0 expired: it no longer counts
    tokens.create(ALICE, "after expiry")


def test_a_name_is_unique_per_user_among_live_tokens(tokens):
    _, view = tokens.create(ALICE, "laptop")
    with pytest.raises(Conflict, match="'laptop'") as e:
        tokens.create(ALICE, "laptop", scopes=["annotations:write"])
    assert e.value.status == 409
    tokens.create(BOB, "laptop")  # another user's name space
    tokens.revoke(view.id, ALICE)
    plaintext, again = tokens.create(ALICE, "laptop")
    assert again.id != view.id
    tokens.authenticate(plaintext)


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, None, 5])
def test_a_token_needs_a_name_of_1_to_100_characters(tokens, name):
    with pytest.raises(InvalidInput, match="name"):
        tokens.create(ALICE, name)


@pytest.mark.parametrize("days", [0, -1, 91, 10_000, True, 1.5, "7"])
def test_expires_in_days_outside_1_to_the_maximum_is_refused(tokens, days):
    with pytest.raises(InvalidInput, match="expires_in_days") as e:
        tokens.create(ALICE, "t", expires_in_days=days)
    assert e.value.status == 400


def test_expiry_is_days_from_now_up_to_the_configured_maximum(store, accounts, clock):
    tokens = Tokens(store, is_admin=accounts.is_admin, max_lifetime_days=30, clock=clock)
    assert tokens.create(ALICE, "a", expires_in_days=1)[1].expires_at == clock.now + timedelta(1)
    assert tokens.create(ALICE, "b", expires_in_days=30)[1].expires_at == clock.now + timedelta(30)
    assert tokens.create(ALICE, "c")[1].expires_at == clock.now + timedelta(30)
    with pytest.raises(InvalidInput, match="1 to 30"):
        tokens.create(ALICE, "d", expires_in_days=31)


def test_scopes_must_be_known_and_users_manage_is_for_hub_admins(tokens):
    with pytest.raises(InvalidInput, match="Unknown scope 'annotations:delete'"):
        tokens.create(ALICE, "t", scopes=["annotations:read", "annotations:delete"])
    with pytest.raises(InvalidInput, match="users:manage"):
        tokens.create(ALICE, "t", scopes=["users:manage"])
    _, view = tokens.create(ROOT, "t", scopes=list(SCOPES))
    assert view.scopes == sorted(SCOPES)
    with pytest.raises(InvalidInput, match="'scopes' is empty"):
        tokens.create(ALICE, "empty", scopes=[])
    assert tokens.create(ALICE, "default")[1].scopes == ["annotations:read"]


def test_projects_must_be_the_owners_and_not_empty(tokens):
    with pytest.raises(InvalidInput, match="empty"):
        tokens.create(ALICE, "t", projects=[])
    with pytest.raises(InvalidInput, match="'fish'"):
        tokens.create(ALICE, "t", projects=["demo", "fish"])  # exists, alice is no member
    with pytest.raises(InvalidInput, match="'nowhere'"):
        tokens.create(ROOT, "t", projects=["nowhere"])
    assert tokens.create(ROOT, "t", projects=["fish"])[1].projects == ["fish"]  # implicit admin
    assert tokens.create(ALICE, "t", projects=["birds"])[1].projects == ["birds"]


# -- minting through a token (`via`) ------------------------------------------------------


def minter(tokens: Tokens, owner: Principal, **kw) -> Principal:
    plaintext, _ = tokens.create(owner, f"minter {len(tokens.listing()[0])}", **kw)
    return tokens.authenticate(plaintext)


def test_a_session_mints_freely_within_its_roles(tokens, clock):
    _, view = tokens.create(ALICE, "t", scopes=list(SCOPES[:4]), via=ALICE)
    assert view.expires_at == clock.now + timedelta(days=90)


def test_a_token_without_tokens_manage_cannot_mint(tokens):
    via = minter(tokens, ALICE, scopes=["annotations:read", "annotations:write"])
    with pytest.raises(Forbidden, match="tokens:manage") as e:
        tokens.create(ALICE, "child", scopes=["annotations:read"], via=via)
    assert e.value.status == 403


def test_a_token_cannot_mint_more_scopes_projects_or_time_than_itself(tokens, clock):
    via = minter(
        tokens,
        ALICE,
        scopes=["annotations:read", "tokens:manage"],
        projects=["demo", "birds"],
        expires_in_days=10,
    )
    for kw, words in (
        ({"scopes": ["annotations:write"]}, "more scopes"),
        ({"scopes": ["annotations:read", "projects:manage"]}, "more scopes"),
        ({"projects": None}, "restricted to projects"),
        ({"projects": ["demo", "fish"]}, "restricted to projects"),
        ({"expires_in_days": 11}, "outlives"),
    ):
        kw = {"scopes": ["annotations:read"], "projects": ["demo"], **kw}
        with pytest.raises(Forbidden, match=words):
            tokens.create(ALICE, "child", via=via, **kw)
    clock.advance(minutes=1)
    with pytest.raises(Forbidden, match="outlives"):  # 10 days from now is later than via
        tokens.create(ALICE, "child", projects=["demo"], expires_in_days=10, via=via)
    plaintext, child = tokens.create(ALICE, "child", projects=["birds"], via=via)
    assert child.scopes == ["annotations:read"]
    assert child.expires_at == via.expires_at  # by default it ends with its minter
    p = tokens.authenticate(plaintext)
    assert p.projects == {"birds"} and p.scopes == {"annotations:read"}
    _, same = tokens.create(
        ALICE,
        "same",
        scopes=["annotations:read", "tokens:manage"],
        projects=["birds", "demo"],
        expires_in_days=9,
        via=via,
    )
    assert same.expires_at == clock.now + timedelta(days=9)


def test_an_unrestricted_token_mints_restricted_ones(tokens):
    via = minter(tokens, ROOT, scopes=list(SCOPES))
    _, child = tokens.create(ROOT, "child", scopes=["users:manage"], projects=["fish"], via=via)
    assert child.projects == ["fish"]


def test_nothing_is_written_when_minting_is_refused(tokens):
    via = minter(tokens, ALICE, scopes=["tokens:manage"], expires_in_days=2)
    before = [t.id for t in tokens.listing("alice")[0]]
    with pytest.raises(Forbidden):
        tokens.create(ALICE, "child", scopes=["annotations:write"], via=via)
    assert [t.id for t in tokens.listing("alice")[0]] == before


# -- last use without a write per request -------------------------------------------------


@pytest.fixture
def token_writes(store: Store):
    """The writes of last_used_at, as they reach the database."""
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("UPDATE TOKENS SET LAST_USED_AT"):
            statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    yield statements
    event.remove(store.engine, "before_cursor_execute", count)


def test_last_use_is_written_at_most_once_a_minute(tokens, store, clock, token_writes):
    plaintext, view = tokens.create(ALICE, "t")
    assert stored(store, view.id).last_used_at is None
    first = clock.now
    tokens.authenticate(plaintext)
    assert len(token_writes) == 1
    assert stored(store, view.id).last_used_at == first
    for _ in range(20):
        clock.advance(seconds=2)
        tokens.authenticate(plaintext)
    assert len(token_writes) == 1  # 21 uses within 40 s: one write
    assert stored(store, view.id).last_used_at == first
    # The listing shows the latest use all the same.
    assert tokens.listing("alice")[0][0].last_used_at == clock.now
    clock.advance(seconds=20)  # one minute after the write
    tokens.authenticate(plaintext)
    assert len(token_writes) == 2
    assert stored(store, view.id).last_used_at == clock.now


def test_last_use_is_tracked_per_token(tokens, store, clock, token_writes):
    a, va = tokens.create(ALICE, "a")
    b, vb = tokens.create(ALICE, "b")
    tokens.authenticate(a)
    clock.advance(seconds=5)
    tokens.authenticate(b)
    tokens.authenticate(a)
    assert len(token_writes) == 2
    assert stored(store, va.id).last_used_at == clock.now - timedelta(seconds=5)
    assert stored(store, vb.id).last_used_at == clock.now


def test_failed_authentications_record_no_use(tokens, store, accounts, clock, token_writes):
    plaintext, view = tokens.create(ALICE, "t", expires_in_days=1)
    accounts.set_active("alice", False)
    with pytest.raises(Unauthenticated):
        tokens.authenticate(plaintext)
    accounts.set_active("alice", True)
    clock.advance(days=2)
    with pytest.raises(Unauthenticated):
        tokens.authenticate(plaintext)
    assert token_writes == []
    assert stored(store, view.id).last_used_at is None
    assert tokens.listing("alice")[0][0].last_used_at is None


def test_last_used_interval_is_configurable(store, accounts, clock):
    _, view = Tokens(store, clock=clock).create(ALICE, "t")
    last = LastUsed(interval=timedelta(seconds=10))
    last.record(store, view.id, clock.now)
    clock.advance(seconds=9)
    last.record(store, view.id, clock.now)
    assert stored(store, view.id).last_used_at == clock.now - timedelta(seconds=9)
    clock.advance(seconds=1)
    last.record(store, view.id, clock.now)
    assert stored(store, view.id).last_used_at == clock.now
    assert last.seen[view.id] == clock.now


def test_a_revoked_token_records_no_use(tokens, store, clock):
    plaintext, view = tokens.create(ALICE, "t")
    tokens.authenticate(plaintext)
    tokens.revoke(view.id, ALICE)
    with store.transaction() as s:
        s.execute(update(Token).where(Token.id == view.id).values(last_used_at=None))
    with pytest.raises(Unauthenticated):
        tokens.authenticate(plaintext)
    record = stored(store, view.id)
    assert record.revoked_at == clock.now and record.last_used_at is None


def test_an_expired_token_gives_up_its_name(tokens, clock):
    tokens.create(ALICE, "notebook", expires_in_days=1)
    clock.advance(days=2)
    plaintext, view = tokens.create(ALICE, "notebook")
    assert [t.id for t in tokens.listing("alice")[0]] == [view.id]
    assert tokens.authenticate(plaintext).name == "alice"


def test_token_names_are_trimmed(tokens):
    tokens.create(ALICE, "notebook")
    with pytest.raises(Conflict):
        tokens.create(ALICE, "  notebook ")


# -- tokens of spawned servers -------------------------------------------------------------


def test_server_tokens_do_not_count_toward_the_live_token_cap(store, accounts, clock):
    tokens = Tokens(store, is_admin=accounts.is_admin, max_live_per_user=2, clock=clock)
    _, first = tokens.create(ALICE, "laptop")
    tokens.create(ALICE, "ci")
    # At the cap, her servers still get their tokens...
    server, _ = tokens.create_for_server(ALICE, "", [READ, WRITE])
    tokens.create_for_server(ALICE, "gpu", [READ])
    tokens.authenticate(server)
    with pytest.raises(Conflict, match="2 live tokens"):
        tokens.create(ALICE, "third")
    # ...and they take no room from her personal ones.
    tokens.revoke(first.id, ALICE)
    tokens.create(ALICE, "third")


@pytest.mark.parametrize("name", ["server:default", "server:gpu", "Server:default", " server:x"])
def test_a_personal_token_cannot_take_the_server_prefix(tokens, name):
    with pytest.raises(InvalidInput, match="'server:' are reserved") as e:
        tokens.create(ALICE, name)
    assert e.value.status == 400
    assert tokens.listing("alice")[0] == []


def test_a_servers_new_token_replaces_the_one_its_last_start_left(tokens):
    left, _ = tokens.create_for_server(ALICE, "gpu", [READ])  # its stop never came
    other, _ = tokens.create_for_server(ALICE, "", [READ])
    new, view = tokens.create_for_server(ALICE, "gpu", [READ, WRITE])
    assert view.name == "server:gpu" and view.scopes == [READ, WRITE]
    with pytest.raises(Unauthenticated, match="revoked"):
        tokens.authenticate(left)
    tokens.authenticate(new)
    tokens.authenticate(other)
    assert sorted(t.name for t in tokens.listing("alice")[0]) == ["server:default", "server:gpu"]


def test_server_token_names_fit_the_name_limit_and_stay_apart():
    assert server_token_name("") == "server:default"
    assert server_token_name("gpu") == "server:gpu"
    longest_kept = "x" * (NAME_MAX - len("server:"))
    assert server_token_name(longest_kept) == f"server:{longest_kept}"
    long_names = [longest_kept + "y", "x" * 255, "x" * 254 + "z"]
    names = [server_token_name(n) for n in long_names]
    assert all(len(n) == NAME_MAX and n.startswith("server:xxxx") for n in names)
    assert len(set(names)) == len(names)  # same start, still different servers
    assert server_token_name("x" * 255) == names[1]  # the same at every start


def test_a_server_with_a_255_character_name_gets_its_token(tokens):
    plaintext, view = tokens.create_for_server(ALICE, "x" * 255, [READ])
    assert view.name == server_token_name("x" * 255)
    tokens.authenticate(plaintext)
    assert tokens.revoke_named("alice", view.name) == 1


# -- revoking somebody else's token: the same rule as listing everyone's ------------------


def test_a_hub_admins_token_revokes_someone_elses_only_with_users_manage(tokens):
    plaintext, alices = tokens.create(ALICE, "t")
    _, roots = tokens.create(ROOT, "r")
    without = token_of("root", True, ["tokens:manage"])
    with pytest.raises(Forbidden, match="users:manage"):
        tokens.revoke(alices.id, without)
    tokens.authenticate(plaintext)  # still live
    assert tokens.revoke(roots.id, without) == "root"  # its owner's own: no more needed
    with pytest.raises(NotFound):  # a non-admin's token with every scope: as if not there
        tokens.revoke(alices.id, token_of("bob", False, SCOPES))
    assert tokens.revoke(alices.id, token_of("root", True, ["tokens:manage", "users:manage"]))
    with pytest.raises(Unauthenticated, match="revoked"):
        tokens.authenticate(plaintext)
