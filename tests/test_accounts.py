"""The account core on SQLite and PostgreSQL: first run, login, lockout, links."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import argon2
import pytest
from jupyterhub_annotations.authenticator import passwords
from jupyterhub_annotations.authenticator.accounts import Accounts, Deactivated, FirstRun
from jupyterhub_annotations.authenticator.errors import (
    AnnotationError,
    Forbidden,
    InvalidInput,
    LinkError,
    LockedOut,
    NotFound,
)
from jupyterhub_annotations.authenticator.links import LinkSigner
from jupyterhub_annotations.authenticator.lockout import LockoutPolicy
from jupyterhub_annotations.authenticator.models import Account, LoginFailure
from jupyterhub_annotations.authenticator.store import Store
from sqlalchemy import func, inspect, select

PASSWORD = "correct horse 4 annotations"
NEW_PASSWORD = "battery staple 5 annotations"
WRONG = "not the password at all"
ADDRESS = "192.0.2.1"
WINDOW = timedelta(minutes=15)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(store: Store, clock: Clock) -> Accounts:
    return Accounts(
        store,
        LinkSigner(b"s" * 32, timedelta(hours=24)),
        LockoutPolicy(max_failures=5, max_address_failures=50, window=WINDOW),
        clock=clock,
    )


def with_password(accounts: Accounts, name: str, password: str = PASSWORD) -> None:
    """An account that has ``password``, set the way an invitation sets it."""
    accounts.ensure(name)
    accounts.use_link(accounts.issue_link(name, "invite"), password)


def fail(accounts: Accounts, name: str, times: int, clock: Clock, address: str = ADDRESS):
    """``times`` failed logins, a minute apart."""
    for _ in range(times):
        assert accounts.login(name, WRONG, address) is None
        clock.advance(minutes=1)


def failures(store: Store, name: str) -> int:
    with store.transaction() as s:
        query = select(func.count()).select_from(LoginFailure).where(LoginFailure.name == name)
        return s.scalar(query)


# -- first run ---------------------------------------------------------------------


def test_first_run_creates_admin_with_a_setup_link(accounts):
    first = accounts.first_run("admin", None)
    assert isinstance(first, FirstRun)
    assert first.name == "admin" and first.link_token
    account = accounts.get("admin")
    assert account.admin and account.active and account.password_hash is None
    claims = accounts.check_link(first.link_token)
    assert (claims.name, claims.purpose, claims.version) == ("admin", "setup", 0)


def test_first_run_setup_link_sets_the_admin_password(accounts):
    first = accounts.first_run("admin", None)
    assert accounts.use_link(first.link_token, PASSWORD) == "admin"
    assert accounts.login("admin", PASSWORD, ADDRESS).name == "admin"


def test_first_run_with_password_needs_no_link(accounts, clock):
    first = accounts.first_run("admin", PASSWORD)
    assert first == FirstRun(name="admin", link_token=None)
    account = accounts.get("admin")
    assert account.admin and account.password_changed_at == clock.now
    assert accounts.login("admin", PASSWORD, ADDRESS).name == "admin"


def test_second_first_run_does_nothing(accounts):
    accounts.first_run("admin", PASSWORD)
    assert accounts.first_run("admin", NEW_PASSWORD) is None
    assert accounts.first_run("root", None) is None
    assert accounts.get("root") is None
    # The existing password was not reset.
    assert accounts.login("admin", PASSWORD, ADDRESS) is not None


def test_first_run_does_nothing_when_any_account_exists(accounts):
    accounts.ensure("bob")
    assert accounts.first_run("admin", None) is None
    assert accounts.get("admin") is None


def test_first_run_with_a_weak_password_writes_nothing(accounts, store):
    with pytest.raises(InvalidInput, match="too short"):
        accounts.first_run("admin", "short")
    with pytest.raises(InvalidInput, match="commonly used"):
        accounts.first_run("admin", "password123")
    with store.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Account)) == 0
    # The table is still empty, so a later start with a good password creates the admin.
    assert accounts.first_run("admin", PASSWORD) is not None


# -- lifecycle -------------------------------------------------------------------


def test_ensure_creates_a_password_less_account_once(accounts):
    assert accounts.ensure("bob") is True
    assert accounts.ensure("bob") is False
    account = accounts.get("bob")
    assert account.password_hash is None and not account.admin and account.active
    # Without a password nobody logs in, whatever they type.
    assert accounts.login("bob", "", ADDRESS) is None
    assert accounts.login("bob", PASSWORD, ADDRESS) is None


def test_ensure_leaves_an_existing_account_untouched(accounts):
    with_password(accounts, "bob")
    before = accounts.get("bob")
    assert accounts.ensure("bob") is False
    after = accounts.get("bob")
    assert after.password_hash == before.password_hash
    assert after.credential_version == before.credential_version


def test_ensure_never_reactivates_a_deactivated_account(accounts):
    accounts.ensure("bob")
    accounts.set_active("bob", False)
    assert accounts.ensure("bob") is False
    assert accounts.get("bob").active is False


def test_delete_removes_the_account(accounts):
    accounts.ensure("bob")
    assert accounts.delete("bob") is True
    assert accounts.get("bob") is None
    assert accounts.delete("bob") is False


def test_set_active_on_unknown_account_is_not_found(accounts):
    with pytest.raises(NotFound, match="no account named 'ghost'"):
        accounts.set_active("ghost", False)


# -- login -----------------------------------------------------------------------


def test_login_with_the_right_password_returns_the_account(accounts):
    with_password(accounts, "bob")
    account = accounts.login("bob", PASSWORD, ADDRESS)
    assert account.name == "bob" and not account.admin


def test_login_with_a_wrong_password_fails_and_is_counted(accounts, store):
    with_password(accounts, "bob")
    assert accounts.login("bob", WRONG, ADDRESS) is None
    assert failures(store, "bob") == 1


def test_login_of_an_unknown_name_fails_and_is_counted_alike(accounts, store):
    assert accounts.login("ghost", PASSWORD, ADDRESS) is None
    assert failures(store, "ghost") == 1


def test_deactivated_account_fails_like_a_wrong_password_and_counts_toward_the_lockout(
    accounts, store
):
    with_password(accounts, "bob")
    accounts.set_active("bob", False)
    # Only the caller learns it (for the audit): `Deactivated` is no user-facing error.
    with pytest.raises(Deactivated):
        accounts.login("bob", PASSWORD, ADDRESS)
    assert not issubclass(Deactivated, AnnotationError)
    assert accounts.login("bob", WRONG, ADDRESS) is None
    # Both attempts count as failures: the lockout cannot tell them apart either.
    assert failures(store, "bob") == 2


def test_reactivated_account_logs_in_again(accounts):
    with_password(accounts, "bob")
    accounts.set_active("bob", False)
    accounts.set_active("bob", True)
    assert accounts.login("bob", PASSWORD, ADDRESS) is not None


def test_login_upgrades_a_hash_made_with_weaker_parameters(accounts, store):
    accounts.ensure("bob")
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with store.transaction() as s:
        s.scalars(select(Account).where(Account.name == "bob")).one().password_hash = weak
    assert accounts.login("bob", PASSWORD, ADDRESS) is not None
    upgraded = accounts.get("bob").password_hash
    assert upgraded != weak and not passwords.needs_rehash(upgraded)
    assert accounts.login("bob", PASSWORD, ADDRESS) is not None


# -- lockout ---------------------------------------------------------------------


def test_five_failures_lock_out_even_the_right_password(accounts, clock):
    with_password(accounts, "bob")
    fail(accounts, "bob", 5, clock)  # at 12:00 .. 12:04; now 12:05
    with pytest.raises(LockedOut) as e:
        accounts.login("bob", PASSWORD, ADDRESS)
    # Free again when the oldest of the five (12:00) leaves the window: 12:15.
    assert e.value.retry_after == 10 * 60
    assert e.value.status == 429
    assert "Try again in 10 minutes" in e.value.message
    assert "password reset link" in e.value.message


def test_four_failures_do_not_lock_out(accounts, clock):
    with_password(accounts, "bob")
    fail(accounts, "bob", 4, clock)
    assert accounts.login("bob", PASSWORD, ADDRESS) is not None


def test_lockout_counts_failures_from_any_address(accounts, clock):
    with_password(accounts, "bob")
    for i in range(5):
        fail(accounts, "bob", 1, clock, address=f"198.51.100.{i}")
    with pytest.raises(LockedOut, match="this account"):
        accounts.login("bob", PASSWORD, "203.0.113.9")


def test_lockout_ends_when_the_window_passes(accounts, clock):
    with_password(accounts, "bob")
    fail(accounts, "bob", 5, clock)
    with pytest.raises(LockedOut) as e:
        accounts.login("bob", PASSWORD, ADDRESS)
    clock.advance(seconds=e.value.retry_after - 1)
    with pytest.raises(LockedOut) as again:
        accounts.login("bob", PASSWORD, ADDRESS)
    assert again.value.retry_after == 1
    clock.advance(seconds=1)
    assert accounts.login("bob", PASSWORD, ADDRESS) is not None


def test_failures_older_than_the_window_do_not_count(accounts, clock):
    with_password(accounts, "bob")
    fail(accounts, "bob", 4, clock)
    clock.advance(minutes=20)
    fail(accounts, "bob", 4, clock)
    assert accounts.login("bob", PASSWORD, ADDRESS) is not None


def test_unknown_names_are_locked_out_like_real_ones(accounts, clock):
    fail(accounts, "ghost", 5, clock)
    with pytest.raises(LockedOut):
        accounts.login("ghost", PASSWORD, ADDRESS)


def test_one_address_failing_on_many_names_is_locked_out(store, clock):
    accounts = Accounts(
        store,
        LinkSigner(b"s" * 32, timedelta(hours=24)),
        LockoutPolicy(max_failures=5, max_address_failures=3, window=WINDOW),
        clock=clock,
    )
    with_password(accounts, "bob")
    for name in ("ann", "cid", "dee"):
        fail(accounts, name, 1, clock)
    with pytest.raises(LockedOut) as e:
        accounts.login("bob", PASSWORD, ADDRESS)
    assert "your address" in e.value.message
    assert e.value.retry_after == 12 * 60
    # Another address is not affected, nor is bob's own count.
    assert accounts.login("bob", PASSWORD, "203.0.113.9") is not None


def test_successful_login_clears_the_account_failures(accounts, clock, store):
    with_password(accounts, "bob")
    fail(accounts, "bob", 4, clock)
    assert accounts.login("bob", PASSWORD, ADDRESS) is not None
    assert failures(store, "bob") == 0
    fail(accounts, "bob", 4, clock)  # 8 within the window, but only 4 since the login
    assert accounts.login("bob", PASSWORD, ADDRESS) is not None


def test_parallel_attempts_get_no_more_password_checks_than_the_limit(store, clock, monkeypatch):
    """30 attempts at once, more threads than the limit: the reservation lets 5 hash."""
    accounts = Accounts(
        store,
        LinkSigner(b"s" * 32, timedelta(hours=24)),
        LockoutPolicy(max_failures=5, max_address_failures=50, window=WINDOW),
        clock=clock,
    )
    with_password(accounts, "bob")
    checks, verify = [], passwords.verify_password
    barrier = threading.Barrier(30)

    def counted(stored, password):
        checks.append(password)
        return verify(stored, password)

    monkeypatch.setattr(passwords, "verify_password", counted)

    def attempt(password: str) -> str:
        barrier.wait()
        try:
            return "ok" if accounts.login("bob", password, ADDRESS) else "wrong"
        except LockedOut:
            return "locked"

    with ThreadPoolExecutor(30) as pool:
        outcomes = Counter(pool.map(attempt, [WRONG] * 29 + [PASSWORD]))
    # A right password within the limit clears the failures (as a login does), so the
    # guesses that reserve after it get a new allowance: 5 checks, or 10 around a success.
    limit = 5 if outcomes["ok"] == 0 else 10
    assert len(checks) <= limit and outcomes["locked"] >= 30 - limit, (len(checks), outcomes)
    if outcomes["ok"] == 0:  # the right one came after the limit: refused like the rest
        with pytest.raises(LockedOut):
            accounts.login("bob", PASSWORD, ADDRESS)


def test_failures_past_the_window_are_pruned(accounts, clock, store):
    fail(accounts, "ghost", 3, clock)
    clock.advance(minutes=30)
    fail(accounts, "other", 1, clock)
    assert failures(store, "ghost") == 0


# -- links and passwords -----------------------------------------------------------


def test_link_sets_the_password_and_dies(accounts):
    accounts.ensure("bob")
    token = accounts.issue_link("bob", "invite")
    assert accounts.use_link(token, PASSWORD) == "bob"
    assert accounts.login("bob", PASSWORD, ADDRESS) is not None
    with pytest.raises(LinkError, match="already been used"):
        accounts.check_link(token)
    with pytest.raises(LinkError, match="already been used"):
        accounts.use_link(token, NEW_PASSWORD)
    assert accounts.login("bob", PASSWORD, ADDRESS) is not None
    assert accounts.login("bob", NEW_PASSWORD, ADDRESS) is None


def test_using_one_link_kills_the_others(accounts):
    accounts.ensure("bob")
    first = accounts.issue_link("bob", "invite")
    second = accounts.issue_link("bob", "reset")
    accounts.use_link(second, PASSWORD)
    with pytest.raises(LinkError, match="already been used"):
        accounts.use_link(first, NEW_PASSWORD)


def test_a_new_link_revokes_the_older_unused_ones(accounts):
    accounts.ensure("bob")
    first = accounts.issue_link("bob", "invite")
    second = accounts.issue_link("bob", "invite")
    with pytest.raises(LinkError, match="a newer link was issued"):
        accounts.check_link(first)
    assert accounts.use_link(second, PASSWORD) == "bob"


def test_revoking_links_and_deactivating_kill_every_unused_link(accounts):
    accounts.ensure("bob")
    link = accounts.issue_link("bob", "invite")
    accounts.revoke_links("bob")
    with pytest.raises(LinkError, match="revoked"):
        accounts.use_link(link, PASSWORD)
    link = accounts.issue_link("bob", "invite")
    accounts.set_active("bob", False)
    accounts.set_active("bob", True)  # reactivating does not bring it back
    with pytest.raises(LinkError, match="revoked"):
        accounts.use_link(link, PASSWORD)
    assert accounts.get("bob").password_hash is None
    with pytest.raises(NotFound):
        accounts.revoke_links("nobody")


def test_link_with_a_weak_password_stays_usable(accounts):
    accounts.ensure("bob")
    token = accounts.issue_link("bob", "invite")
    with pytest.raises(InvalidInput, match="too short"):
        accounts.use_link(token, "short")
    with pytest.raises(InvalidInput, match="commonly used"):
        accounts.use_link(token, "qwertyuiop")
    assert accounts.get("bob").password_hash is None
    assert accounts.use_link(token, PASSWORD) == "bob"


def test_link_dies_after_change_password(accounts):
    with_password(accounts, "bob")
    token = accounts.issue_link("bob", "reset")
    accounts.change_password("bob", PASSWORD, NEW_PASSWORD, ADDRESS)
    with pytest.raises(LinkError, match="already been used"):
        accounts.check_link(token)
    assert accounts.login("bob", NEW_PASSWORD, ADDRESS) is not None
    assert accounts.login("bob", PASSWORD, ADDRESS) is None


def test_change_password_with_wrong_current_password_is_forbidden(accounts, store):
    with_password(accounts, "bob")
    with pytest.raises(Forbidden, match="current password is not correct"):
        accounts.change_password("bob", WRONG, NEW_PASSWORD, ADDRESS)
    assert accounts.login("bob", PASSWORD, ADDRESS) is not None
    assert accounts.login("bob", NEW_PASSWORD, ADDRESS) is None


def test_change_password_to_a_weak_one_is_refused(accounts):
    with_password(accounts, "bob")
    with pytest.raises(InvalidInput, match="too short"):
        accounts.change_password("bob", PASSWORD, "short", ADDRESS)
    assert accounts.login("bob", PASSWORD, ADDRESS) is not None


def test_change_password_records_when(accounts, clock):
    with_password(accounts, "bob")
    clock.advance(days=3)
    accounts.change_password("bob", PASSWORD, NEW_PASSWORD, ADDRESS)
    assert accounts.get("bob").password_changed_at == clock.now


def test_reset_link_lets_a_locked_out_account_back_in(accounts, clock, store):
    with_password(accounts, "bob")
    fail(accounts, "bob", 5, clock)
    with pytest.raises(LockedOut):
        accounts.login("bob", PASSWORD, ADDRESS)
    accounts.use_link(accounts.issue_link("bob", "reset"), NEW_PASSWORD)
    assert failures(store, "bob") == 0
    assert accounts.login("bob", NEW_PASSWORD, ADDRESS).name == "bob"


def test_no_link_for_a_deactivated_account(accounts):
    accounts.ensure("bob")
    accounts.set_active("bob", False)
    with pytest.raises(InvalidInput, match="deactivated"):
        accounts.issue_link("bob", "reset")


def test_outstanding_link_of_a_deactivated_account_is_refused(accounts):
    accounts.ensure("bob")
    token = accounts.issue_link("bob", "invite")
    accounts.set_active("bob", False)
    with pytest.raises(LinkError, match="deactivated"):
        accounts.use_link(token, PASSWORD)
    assert accounts.get("bob").password_hash is None


def test_outstanding_link_of_a_deleted_account_is_refused(accounts):
    accounts.ensure("bob")
    token = accounts.issue_link("bob", "invite")
    accounts.delete("bob")
    with pytest.raises(LinkError, match="no longer exists"):
        accounts.check_link(token)


def test_link_of_a_deleted_account_is_refused_for_its_recreated_namesake(accounts, store, clock):
    accounts.ensure("bob")
    old_id = accounts.get("bob").id
    token = accounts.issue_link("bob", "invite")
    accounts.delete("bob")
    clock.advance(seconds=1)
    accounts.ensure("bob")  # a new bob: credential version 0 again, like the link's
    if store.engine.dialect.name == "sqlite":
        assert accounts.get("bob").id == old_id  # SQLite reuses the last row's id
    with pytest.raises(LinkError, match="no longer exists"):
        accounts.use_link(token, PASSWORD)
    assert accounts.get("bob").password_hash is None
    assert accounts.use_link(accounts.issue_link("bob", "invite"), PASSWORD) == "bob"


def test_link_of_a_deleted_account_is_refused_for_a_namesake_made_the_same_instant(accounts):
    # The fake clock stands still: only the new id tells the accounts apart.
    accounts.ensure("bob")
    token = accounts.issue_link("bob", "invite")
    accounts.delete("bob")
    accounts.ensure("carol")
    accounts.ensure("bob")
    with pytest.raises(LinkError, match="no longer exists"):
        accounts.check_link(token)


def test_first_run_setup_link_dies_with_its_admin(accounts, clock):
    first = accounts.first_run("admin", None)
    accounts.ensure("root")
    accounts.set_admin("root", True)
    accounts.delete("admin")
    clock.advance(minutes=1)
    accounts.create("admin", admin=True)
    with pytest.raises(LinkError, match="no longer exists"):
        accounts.use_link(first.link_token, PASSWORD)


def test_no_link_for_an_unknown_account(accounts):
    with pytest.raises(NotFound):
        accounts.issue_link("ghost", "invite")


# -- the store -------------------------------------------------------------------


def test_migrate_twice_is_harmless(store, accounts):
    with_password(accounts, "bob")
    store.migrate()
    assert set(inspect(store.engine).get_table_names()) >= {"accounts", "login_failures"}
    assert accounts.login("bob", PASSWORD, ADDRESS) is not None


def test_data_survives_a_second_store_on_the_same_database(db_url, accounts, clock):
    with_password(accounts, "bob")
    fail(accounts, "carol", 2, clock)
    second = Store(db_url)
    try:
        second.migrate()
        again = Accounts(second, accounts.signer, accounts.lockout, clock=clock)
        assert again.get("bob") is not None
        assert again.login("bob", PASSWORD, ADDRESS) is not None
        fail(again, "carol", 3, clock)
        with pytest.raises(LockedOut):
            again.login("carol", PASSWORD, ADDRESS)
    finally:
        second.dispose()
