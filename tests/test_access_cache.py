"""The in-process cache of access facts (`authenticator.access_cache`) and its use by
`Tokens.authenticate`, `Projects.access` and `Projects.visible_to`, on SQLite and
PostgreSQL: exact for changes made through this process (the store's generation),
bounded in time for changes made by another one (a second `Store` on the same database
stands for the CLI or another hub), bounded in size, off at 0 seconds. Clocks are fakes:
nothing here sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from jupyterhub_annotations.authenticator.access_cache import AccessCache
from jupyterhub_annotations.authenticator.accounts import Accounts
from jupyterhub_annotations.authenticator.auth import AnnotationAuthenticator
from jupyterhub_annotations.authenticator.errors import Conflict, Unauthenticated
from jupyterhub_annotations.authenticator.links import LinkSigner
from jupyterhub_annotations.authenticator.lockout import LockoutPolicy
from jupyterhub_annotations.authenticator.models import Account, Membership, Project, Token
from jupyterhub_annotations.authenticator.permissions import Principal
from jupyterhub_annotations.authenticator.projects import Projects
from jupyterhub_annotations.authenticator.store import Store
from jupyterhub_annotations.authenticator.tokens import Tokens, digest_of, generate
from sqlalchemy import event, insert, select, update
from traitlets import TraitError

TTL = 2.0
ROOT = Principal(name="root", admin=True)
ALICE = Principal(name="alice", admin=False)


class Monotonic:
    """A fake `time.monotonic` for the cache's ages."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Clock:
    """A fake wall clock for token expiry."""

    def __init__(self) -> None:
        self.now = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def queries(store: Store) -> list[str]:
    """Every SELECT this process sends to the database, as it reaches it."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    yield seen
    event.remove(store.engine, "before_cursor_execute", record)


@pytest.fixture
def other(store: Store):
    """Another process's view of the same database (the CLI, a second hub)."""
    second = Store(store.engine.url.render_as_string(hide_password=False))
    yield second
    second.dispose()


@pytest.fixture
def monotonic() -> Monotonic:
    return Monotonic()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(store: Store) -> Accounts:
    accounts = Accounts(
        store,
        LinkSigner(b"s" * 32, timedelta(hours=24)),
        LockoutPolicy(max_failures=5, max_address_failures=50, window=timedelta(minutes=15)),
    )
    accounts.create("root", admin=True)
    accounts.create("alice")
    return accounts


@pytest.fixture
def projects(store: Store, accounts: Accounts, monotonic: Monotonic) -> Projects:
    projects = Projects(store, {}, cache=AccessCache(store, TTL, clock=monotonic))
    for slug in ("demo", "birds"):
        projects.create(slug, {}, creator="root")
    projects.set_member("demo", "alice", "annotator", granter_role="admin")
    return projects


@pytest.fixture
def tokens(store: Store, accounts: Accounts, clock: Clock, monotonic: Monotonic) -> Tokens:
    cache = AccessCache(store, TTL, clock=monotonic)
    return Tokens(store, is_admin=accounts.is_admin, clock=clock, cache=cache)


def warm(tokens: Tokens, plaintext: str, queries: list[str]) -> Principal:
    """Authenticate twice; the second time must come from the cache (no query)."""
    tokens.authenticate(plaintext)
    before = len(queries)
    principal = tokens.authenticate(plaintext)
    assert len(queries) == before, "the second use of a token queried the database"
    return principal


# -- the cache on its own -------------------------------------------------------------------


class Loads:
    """A loader that counts its calls and returns what it is told."""

    def __init__(self, value: object = "value") -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        return self.value


def test_an_entry_is_used_until_it_is_older_than_its_seconds(store, monotonic):
    cache = AccessCache(store, TTL, clock=monotonic)
    load = Loads()
    assert cache.lookup("k", load) == "value"
    monotonic.now += TTL - 0.01
    assert cache.lookup("k", load) == "value"
    assert load.calls == 1
    monotonic.now += 0.01  # exactly TTL after the load: stale
    load.value = "new"
    assert cache.lookup("k", load) == "new"
    assert load.calls == 2


def test_a_write_transaction_voids_every_entry_but_reads_do_not(store, monotonic):
    cache = AccessCache(store, TTL, clock=monotonic)
    load = Loads()
    cache.lookup("k", load)
    with store.transaction(readonly=True) as s:
        s.execute(select(Account.id))
    with store.reading() as conn:
        conn.execute(select(Account.id))
    cache.lookup("k", load)
    assert load.calls == 1
    with store.transaction() as s:
        s.execute(select(Account.id))  # a write transaction, even one that wrote nothing
    cache.lookup("k", load)
    assert load.calls == 2
    assert len(cache) == 1


def test_a_rolled_back_write_voids_the_entries_too(store, monotonic):
    cache = AccessCache(store, TTL, clock=monotonic)
    load = Loads()
    cache.lookup("k", load)
    with pytest.raises(Conflict), store.transaction():
        raise Conflict("changed my mind")
    cache.lookup("k", load)
    assert load.calls == 2


def test_writes_that_change_no_access_keep_the_entries(store, monotonic):
    cache = AccessCache(store, TTL, clock=monotonic)
    load = Loads()
    cache.lookup("k", load)
    generation = store.generation
    with store.transaction(changes_access=False) as s:
        s.execute(update(Account).values(created_at=Account.created_at))
    assert store.generation == generation
    cache.lookup("k", load)
    assert load.calls == 1


def test_what_was_read_while_a_write_committed_is_not_kept(store, monotonic):
    cache = AccessCache(store, TTL, clock=monotonic)

    def load_during_a_write() -> str:
        with store.transaction() as s:  # commits (and bumps) while the lookup loads
            s.execute(select(Account.id))
        return "read before the write"

    assert cache.lookup("k", load_during_a_write) == "read before the write"
    assert len(cache) == 0
    load = Loads("fresh")
    assert cache.lookup("k", load) == "fresh"
    assert load.calls == 1


def test_none_is_never_kept(store, monotonic):
    cache = AccessCache(store, TTL, clock=monotonic)
    load = Loads(None)
    assert cache.lookup("k", load) is None
    assert cache.lookup("k", load) is None
    assert load.calls == 2
    assert len(cache) == 0


def test_the_number_of_entries_is_capped_least_recently_used_first(store, monotonic):
    cache = AccessCache(store, TTL, max_entries=3, clock=monotonic)
    for key in "abc":
        cache.lookup(key, Loads(key))
    cache.lookup("a", Loads("not loaded"))  # a is now the most recently used
    for i in range(1000):
        cache.lookup(("many", i), Loads(i))
        assert len(cache) <= 3
    assert len(cache) == 3
    for key in "abc":
        load = Loads("reloaded")
        assert cache.lookup(key, load) == "reloaded"
    cache = AccessCache(store, TTL, max_entries=2, clock=monotonic)
    cache.lookup("a", Loads())
    cache.lookup("b", Loads())
    cache.lookup("a", Loads())  # a hit: b is now the least recently used
    cache.lookup("c", Loads())
    kept, gone = Loads("kept?"), Loads("gone?")
    assert cache.lookup("a", kept) == "value" and kept.calls == 0
    assert cache.lookup("b", gone) == "gone?" and gone.calls == 1


def test_zero_seconds_means_no_cache(store, monotonic):
    cache = AccessCache(store, 0, clock=monotonic)
    assert not cache.enabled
    load = Loads()
    for _ in range(5):
        cache.lookup("k", load)
    assert load.calls == 5
    assert len(cache) == 0


# -- tokens ------------------------------------------------------------------------------


def test_a_cached_token_needs_no_query_and_is_keyed_by_its_digest(tokens, queries):
    plaintext, view = tokens.create(ALICE, "t")
    principal = warm(tokens, plaintext, queries)
    assert (principal.name, principal.token_id, principal.auth) == ("alice", view.id, "token")
    keys = list(tokens.cache._entries)
    assert keys == [digest_of(plaintext)]
    assert plaintext not in repr(tokens.cache._entries)


def test_a_mistyped_token_is_refused_without_a_query_even_beside_a_cached_one(tokens, queries):
    plaintext, _ = tokens.create(ALICE, "t")
    warm(tokens, plaintext, queries)
    position = 20
    other = "A" if plaintext[position] != "A" else "B"
    typo = plaintext[:position] + other + plaintext[position + 1 :]
    before = len(queries)
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="checksum"):
            tokens.authenticate(typo)
    with pytest.raises(Unauthenticated, match="malformed"):
        tokens.authenticate(plaintext[:-1])
    assert len(queries) == before
    assert len(tokens.cache) == 1


def test_revocation_through_the_core_applies_at_the_next_use(tokens, queries):
    plaintext, view = tokens.create(ALICE, "t")
    warm(tokens, plaintext, queries)
    tokens.revoke(view.id, ALICE)
    with pytest.raises(Unauthenticated, match="revoked or unknown"):
        tokens.authenticate(plaintext)
    named, _ = tokens.create_for_server(ALICE, "", ["annotations:read"])
    warm(tokens, named, queries)
    assert tokens.revoke_named("alice", "server:default") == 1
    with pytest.raises(Unauthenticated, match="revoked or unknown"):
        tokens.authenticate(named)


def test_deactivation_and_deletion_apply_at_the_next_use(tokens, accounts, queries):
    plaintext, _ = tokens.create(ALICE, "t")
    warm(tokens, plaintext, queries)
    accounts.set_active("alice", False)
    with pytest.raises(Unauthenticated, match="deactivated"):
        tokens.authenticate(plaintext)
    accounts.set_active("alice", True)
    warm(tokens, plaintext, queries)
    accounts.delete("alice")
    with pytest.raises(Unauthenticated, match="revoked or unknown"):
        tokens.authenticate(plaintext)


def test_the_hub_admin_flag_applies_at_the_next_use(tokens, accounts, queries):
    plaintext, _ = tokens.create(ALICE, "t")
    assert warm(tokens, plaintext, queries).admin is False
    accounts.set_admin("alice", True)
    assert tokens.authenticate(plaintext).admin is True
    accounts.set_admin("alice", False)
    assert tokens.authenticate(plaintext).admin is False


def test_expiry_is_checked_on_the_cached_token_at_every_use(tokens, clock, queries):
    plaintext, view = tokens.create(ALICE, "t", expires_in_days=1)
    warm(tokens, plaintext, queries)
    clock.advance(days=1)  # the wall clock only: the cache entry is still fresh
    before = len(queries)
    with pytest.raises(Unauthenticated) as refused:
        tokens.authenticate(plaintext)
    assert len(queries) == before  # refused from the cache
    assert refused.value.message == (
        f"The token expired on {view.expires_at:%Y-%m-%d %H:%M} UTC: create a new one."
    )


def test_a_change_by_another_process_is_seen_once_the_entry_is_old_enough(
    tokens, other, monotonic, queries
):
    plaintext, view = tokens.create(ALICE, "t")
    warm(tokens, plaintext, queries)
    with other.transaction() as s:  # not through this process: no generation bump
        s.execute(update(Token).where(Token.id == view.id).values(revoked_at=Token.created_at))
    monotonic.now += TTL - 0.5
    assert tokens.authenticate(plaintext).name == "alice"  # within the bound: cached
    monotonic.now += 0.5
    with pytest.raises(Unauthenticated, match="revoked or unknown"):
        tokens.authenticate(plaintext)


def test_an_expiry_moved_by_another_process_applies_within_the_bound(
    tokens, other, monotonic, clock, queries
):
    plaintext, view = tokens.create(ALICE, "t")
    warm(tokens, plaintext, queries)
    with other.transaction() as s:
        past = clock.now - timedelta(seconds=1)
        s.execute(update(Token).where(Token.id == view.id).values(expires_at=past))
    monotonic.now += TTL
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.authenticate(plaintext)


def test_an_unknown_token_is_not_remembered_as_unknown(tokens, store, other, queries):
    plaintext = generate()
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="revoked or unknown"):
            tokens.authenticate(plaintext)
    assert len(tokens.cache) == 0
    # Another process (a second hub) issues exactly this token now: usable at once.
    with other.transaction() as s:
        alice = s.scalar(select(Account.id).where(Account.name == "alice"))
        s.execute(
            insert(Token).values(
                account_id=alice,
                name="from elsewhere",
                digest=digest_of(plaintext),
                scopes="annotations:read",
                created_at=tokens.clock(),
                expires_at=tokens.clock() + timedelta(days=1),
            )
        )
    assert tokens.authenticate(plaintext).name == "alice"


def test_last_use_is_recorded_on_cache_hits_without_voiding_the_cache(
    tokens, store, clock, queries
):
    plaintext, view = tokens.create(ALICE, "t")
    warm(tokens, plaintext, queries)
    clock.advance(minutes=2)  # the next use writes last_used_at
    generation = store.generation
    tokens.authenticate(plaintext)
    assert store.generation == generation  # that write changes nobody's rights
    with store.transaction(readonly=True) as s:
        written = s.scalar(select(Token.last_used_at).where(Token.id == view.id))
    assert written == clock.now
    clock.advance(seconds=5)
    warm(tokens, plaintext, queries)
    assert tokens.listing("alice")[0][0].last_used_at == clock.now


def test_the_token_cache_is_capped(store, accounts, clock, monotonic):
    cache = AccessCache(store, TTL, max_entries=5, clock=monotonic)
    tokens = Tokens(store, is_admin=accounts.is_admin, clock=clock, cache=cache)
    made = [tokens.create(ALICE, f"t{i}")[0] for i in range(12)]
    for plaintext in made:
        tokens.authenticate(plaintext)
    assert len(cache) == 5
    assert set(cache._entries) == {digest_of(p) for p in made[-5:]}


def test_without_a_cache_every_use_queries(store, accounts, clock, queries):
    tokens = Tokens(store, is_admin=accounts.is_admin, clock=clock)  # the default: none
    plaintext, _ = tokens.create(ALICE, "t")
    tokens.authenticate(plaintext)
    for _ in range(3):
        before = len(queries)
        tokens.authenticate(plaintext)
        assert len(queries) == before + 1


# -- projects ----------------------------------------------------------------------------


def test_project_access_is_cached_and_role_changes_apply_at_the_next_call(projects, queries):
    assert projects.access("demo", "alice") == ("annotator", True)
    before = len(queries)
    assert projects.access("demo", "alice") == ("annotator", True)
    assert projects.visible_to("alice", False) == projects.visible_to("alice", False)
    after_first_list = len(queries)
    assert after_first_list == before + 1  # one query for the list, none for the repeat
    projects.set_member("demo", "alice", "viewer", granter_role="admin")
    assert projects.access("demo", "alice") == ("viewer", True)
    assert [v.role for v in projects.visible_to("alice", False)] == ["viewer"]
    projects.remove_member("demo", "alice")
    assert projects.access("demo", "alice") == (None, True)
    assert projects.visible_to("alice", False) == []
    projects.set_member("birds", "alice", "annotator", granter_role="admin")
    assert projects.access("birds", "alice") == ("annotator", True)
    assert [v.slug for v in projects.visible_to("alice", False)] == ["birds"]


def test_api_access_switches_apply_at_the_next_call(projects, queries):
    token = Principal(
        name="alice", admin=False, auth="token", scopes=frozenset({"annotations:read"})
    )
    assert [v.slug for v in projects.visible_to_principal(token)] == ["demo"]
    assert projects.access("demo", "alice") == ("annotator", True)
    projects.update("demo", {"api_access": False}, role="admin")
    assert projects.access("demo", "alice") == ("annotator", False)
    assert projects.visible_to_principal(token) == []
    projects.update("demo", {"api_access": True}, role="admin")
    assert [v.slug for v in projects.visible_to_principal(token)] == ["demo"]


def test_a_new_or_deleted_project_applies_at_the_next_call(projects):
    assert [v.slug for v in projects.visible_to("root", True)] == ["birds", "demo"]
    assert projects.access("fish", "root") == (None, True)
    projects.create("fish", {}, creator="root")
    assert projects.access("fish", "root") == ("admin", True)
    assert [v.slug for v in projects.visible_to("root", True)] == ["birds", "demo", "fish"]
    projects.delete("fish")
    assert [v.slug for v in projects.visible_to("root", True)] == ["birds", "demo"]


def test_a_role_change_by_another_process_is_seen_once_the_entry_is_old_enough(
    projects, other, monotonic
):
    assert projects.access("demo", "alice") == ("annotator", True)
    assert [v.role for v in projects.visible_to("alice", False)] == ["annotator"]
    with other.transaction() as s:
        s.execute(
            update(Membership)
            .where(
                Membership.project_id
                == select(Project.id).where(Project.slug == "demo").scalar_subquery(),
                Membership.account_id
                == select(Account.id).where(Account.name == "alice").scalar_subquery(),
            )
            .values(role="viewer")
        )
    monotonic.now += TTL - 0.5
    assert projects.access("demo", "alice") == ("annotator", True)
    monotonic.now += 0.5
    assert projects.access("demo", "alice") == ("viewer", True)
    assert [v.role for v in projects.visible_to("alice", False)] == ["viewer"]


def test_the_project_cache_is_capped(store, accounts, monotonic):
    projects = Projects(store, {}, cache=AccessCache(store, TTL, max_entries=4, clock=monotonic))
    for i in range(50):
        projects.access(f"nothing-{i}", "alice")
        projects.visible_to(f"nobody-{i}", False)
        assert len(projects.cache) <= 4


def test_without_a_cache_every_project_lookup_queries(store, accounts, queries):
    projects = Projects(store, {})
    projects.create("demo", {}, creator="root")
    for _ in range(3):
        before = len(queries)
        projects.access("demo", "alice")
        projects.visible_to("alice", False)
        assert len(queries) == before + 2


# -- configuration ------------------------------------------------------------------------


def test_the_hub_setting_reaches_both_caches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = []

    def make(**config) -> AnnotationAuthenticator:
        auth = AnnotationAuthenticator(
            db_url=f"sqlite:///{tmp_path / 'annotations.sqlite'}", link_secret="x" * 40, **config
        )
        made.append(auth)
        return auth

    try:
        default = make()
        assert default.access_cache_seconds == 2.0
        core = default.core
        assert core.tokens.cache.seconds == 2.0 and core.tokens.cache.enabled
        assert core.projects.cache.seconds == 2.0
        assert core.tokens.cache is not core.projects.cache
        off = make(access_cache_seconds=0).core
        assert not off.tokens.cache.enabled and not off.projects.cache.enabled
        with pytest.raises(TraitError):
            make(access_cache_seconds=-1)
    finally:
        for auth in made:
            if "core" in auth.__dict__:
                auth.core.close()
