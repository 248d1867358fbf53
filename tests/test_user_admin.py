"""Account administration by hub admins on SQLite and PostgreSQL (SPEC sections 5 and 8)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from jupyterhub_annotations.authenticator.accounts import Accounts
from jupyterhub_annotations.authenticator.errors import Conflict, InvalidInput, LinkError, NotFound
from jupyterhub_annotations.authenticator.links import LinkSigner
from jupyterhub_annotations.authenticator.lockout import LockoutPolicy
from jupyterhub_annotations.authenticator.store import Store

PASSWORD = "correct horse 4 annotations"


@pytest.fixture
def make_accounts(store: Store) -> Callable[..., Accounts]:
    def make(admin_users: frozenset[str] = frozenset()) -> Accounts:
        return Accounts(
            store,
            LinkSigner(b"s" * 32, timedelta(hours=24)),
            LockoutPolicy(max_failures=5, max_address_failures=50, window=timedelta(minutes=15)),
            admin_users=admin_users,
        )

    return make


@pytest.fixture
def accounts(make_accounts) -> Accounts:
    return make_accounts()


def active_admins(accounts: Accounts) -> list[str]:
    return [a.name for a in accounts.listing()[0] if a.active and accounts.is_admin(a)]


# -- create --------------------------------------------------------------------------


def test_create_person_makes_a_password_less_active_user(accounts):
    account = accounts.create("alice")
    assert (account.name, account.kind, account.admin, account.active) == (
        "alice",
        "user",
        False,
        True,
    )
    stored = accounts.get("alice")
    assert stored.kind == "user" and stored.password_hash is None and stored.active
    assert not accounts.is_admin(stored)


def test_create_person_as_hub_admin(accounts):
    accounts.create("root", admin=True)
    assert accounts.is_admin(accounts.get("root"))


def test_create_service_account(accounts):
    account = accounts.create("svc:model-x")
    assert (account.kind, account.admin) == ("service", False)
    stored = accounts.get("svc:model-x")
    assert stored.kind == "service" and stored.password_hash is None


@pytest.mark.parametrize("name", ["alice", "svc:model-x"])
def test_create_duplicate_account_is_a_conflict(accounts, name):
    accounts.create(name)
    with pytest.raises(Conflict) as e:
        accounts.create(name, admin=False)
    assert repr(name) in e.value.message
    assert [a.name for a in accounts.listing()[0]] == [name]


def test_create_duplicate_of_an_admin_leaves_it_admin(accounts):
    accounts.create("root", admin=True)
    with pytest.raises(Conflict):
        accounts.create("root")
    assert accounts.get("root").admin


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Alice",
        "bad name",
        "-alice",
        ".alice",
        "a/b",
        "x" * 129,
        "__system",
        "a:b",
        "svc:",
        "svc:Model",
        "svc:a:b",
        "svc:__x",
        "svc:-x",
        "svc:" + "x" * 125,
    ],
)
def test_create_with_a_bad_name_is_invalid_input(accounts, name):
    with pytest.raises(InvalidInput):
        accounts.create(name)
    assert accounts.listing()[0] == []


def test_longest_names_are_accepted(accounts):
    accounts.create("x" * 128)
    accounts.create("svc:" + "x" * 124)
    assert {a.kind for a in accounts.listing()[0]} == {"user", "service"}


def test_service_account_cannot_be_created_as_admin(accounts):
    with pytest.raises(InvalidInput) as e:
        accounts.create("svc:model-x", admin=True)
    assert "service account" in e.value.message
    assert accounts.get("svc:model-x") is None


def test_service_account_cannot_be_made_admin(accounts):
    accounts.create("svc:model-x")
    with pytest.raises(InvalidInput):
        accounts.set_admin("svc:model-x", True)
    assert not accounts.get("svc:model-x").admin


def test_listing_is_sorted_by_name(accounts):
    for name in ("carol", "svc:bot", "alice", "bob"):
        accounts.create(name)
    assert [a.name for a in accounts.listing()[0]] == ["alice", "bob", "carol", "svc:bot"]


def test_admin_users_are_admins_without_the_flag(make_accounts):
    accounts = make_accounts(admin_users=frozenset({"root"}))
    accounts.create("root")
    accounts.create("alice")
    assert accounts.is_admin(accounts.get("root"))
    assert not accounts.get("root").admin
    assert not accounts.is_admin(accounts.get("alice"))


@pytest.mark.parametrize("name", ["ghost", "svc:ghost"])
def test_changing_an_unknown_account_is_not_found(accounts, name):
    with pytest.raises(NotFound):
        accounts.set_admin(name, True)
    with pytest.raises(NotFound):
        accounts.set_active(name, False)
    with pytest.raises(NotFound):
        accounts.invite_or_reset_link(name)
    assert accounts.delete(name) is False


# -- the hub keeps an active admin ---------------------------------------------------

# Each takes the named account away as an active hub admin.
REMOVALS = {
    "demote": lambda accounts, name: accounts.set_admin(name, False),
    "deactivate": lambda accounts, name: accounts.set_active(name, False),
    "delete": lambda accounts, name: accounts.delete(name),
}
removal = pytest.mark.parametrize("remove", list(REMOVALS.values()), ids=list(REMOVALS))


@removal
def test_last_active_hub_admin_cannot_be_removed(accounts, remove):
    accounts.create("root", admin=True)
    accounts.create("alice")
    with pytest.raises(Conflict) as e:
        remove(accounts, "root")
    assert "'root'" in e.value.message and "last active hub admin" in e.value.message
    root = accounts.get("root")
    assert root is not None and root.admin and root.active


@removal
def test_hub_admin_can_be_removed_once_another_active_admin_exists(accounts, remove):
    accounts.create("root", admin=True)
    accounts.create("alice", admin=True)
    remove(accounts, "root")
    assert active_admins(accounts) == ["alice"]
    # Now alice is the last one.
    with pytest.raises(Conflict):
        remove(accounts, "alice")


@removal
def test_deactivated_admin_does_not_count_as_the_remaining_admin(accounts, remove):
    accounts.create("root", admin=True)
    accounts.create("alice", admin=True)
    accounts.set_active("alice", False)
    assert active_admins(accounts) == ["root"]
    with pytest.raises(Conflict):
        remove(accounts, "root")
    assert active_admins(accounts) == ["root"]


def test_a_non_admin_can_be_removed_while_only_one_admin_exists(accounts):
    accounts.create("root", admin=True)
    accounts.create("alice")
    accounts.create("bob")
    accounts.set_admin("alice", False)
    accounts.set_active("alice", False)
    assert accounts.delete("bob") is True
    assert active_admins(accounts) == ["root"]


def test_a_deactivated_admin_can_be_demoted_and_deleted(accounts):
    accounts.create("root", admin=True)
    accounts.create("alice", admin=True)
    accounts.set_active("alice", False)
    accounts.set_admin("alice", False)
    assert accounts.delete("alice") is True
    assert active_admins(accounts) == ["root"]


def test_reactivating_an_admin_lets_the_other_go(accounts):
    accounts.create("root", admin=True)
    accounts.create("alice", admin=True)
    accounts.set_active("alice", False)
    accounts.set_active("alice", True)
    accounts.set_admin("root", False)
    assert active_admins(accounts) == ["alice"]


def test_admin_users_member_counts_as_the_remaining_admin(make_accounts):
    accounts = make_accounts(admin_users=frozenset({"root"}))
    accounts.create("root")
    accounts.create("alice", admin=True)
    accounts.set_admin("alice", False)
    assert active_admins(accounts) == ["root"]


def test_admin_users_member_cannot_be_demoted_naming_the_config(make_accounts):
    accounts = make_accounts(admin_users=frozenset({"root"}))
    accounts.create("root", admin=True)
    accounts.create("alice", admin=True)
    with pytest.raises(Conflict) as e:
        accounts.set_admin("root", False)
    assert "admin_users" in e.value.message and "jupyterhub_config.py" in e.value.message
    assert accounts.get("root").admin


@removal
def test_last_active_admin_from_admin_users_cannot_be_removed(make_accounts, remove):
    accounts = make_accounts(admin_users=frozenset({"root"}))
    accounts.create("root")
    accounts.create("alice")
    with pytest.raises(Conflict):
        remove(accounts, "root")
    assert active_admins(accounts) == ["root"]


def test_admin_users_member_can_be_deactivated_while_another_admin_remains(make_accounts):
    accounts = make_accounts(admin_users=frozenset({"root"}))
    accounts.create("root")
    accounts.create("alice", admin=True)
    accounts.set_active("root", False)
    assert active_admins(accounts) == ["alice"]


@removal
def test_two_admins_removing_each_other_at_once_leave_one_active_admin(make_accounts, remove):
    accounts = make_accounts()
    accounts.create("alice", admin=True)
    accounts.create("bob", admin=True)
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def run(name: str) -> None:
        barrier.wait()
        try:
            remove(accounts, name)
            outcomes[name] = "ok"
        except Exception as e:  # recorded and checked below
            outcomes[name] = e

    threads = [threading.Thread(target=run, args=(n,)) for n in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["alice", "bob"], "a thread did not finish"
    wins = [name for name, outcome in outcomes.items() if outcome == "ok"]
    assert len(wins) == 1, outcomes
    assert len(active_admins(accounts)) == 1
    # The writers take turns (never a deadlock), so the loser is told why.
    (loser,) = {"alice", "bob"} - set(wins)
    assert isinstance(outcomes[loser], Conflict), outcomes


# -- links ---------------------------------------------------------------------------


def test_link_is_an_invitation_before_a_password_is_set(accounts):
    accounts.create("alice")
    token = accounts.invite_or_reset_link("alice")
    claims = accounts.signer.verify(token)
    assert (claims.name, claims.purpose) == ("alice", "invite")
    assert accounts.check_link(token).purpose == "invite"


def test_link_is_a_reset_after_a_password_is_set(accounts):
    accounts.create("alice")
    accounts.use_link(accounts.invite_or_reset_link("alice"), PASSWORD)
    token = accounts.invite_or_reset_link("alice")
    claims = accounts.signer.verify(token)
    assert (claims.name, claims.purpose) == ("alice", "reset")
    assert accounts.check_link(token).version == 1


def test_invitation_dies_with_its_account_even_when_the_name_is_reused(accounts):
    accounts.create("alice")
    token = accounts.invite_or_reset_link("alice")
    assert accounts.delete("alice")
    accounts.create("alice")
    with pytest.raises(LinkError) as e:
        accounts.use_link(token, PASSWORD)
    assert e.value.message == "This link's account no longer exists or is deactivated."
    assert accounts.get("alice").password_hash is None
    # The new alice's own invitation works.
    assert accounts.use_link(accounts.invite_or_reset_link("alice"), PASSWORD) == "alice"


def test_admin_without_a_password_gets_a_setup_link_when_asked(accounts):
    accounts.create("root", admin=True)
    accounts.create("alice")
    assert accounts.signer.verify(accounts.invite_or_reset_link("root")).purpose == "invite"
    setup = accounts.invite_or_reset_link("root", setup_for_admin=True)
    assert accounts.check_link(setup).purpose == "setup"
    # Only for admins: a person without a password still gets an invitation.
    invite = accounts.invite_or_reset_link("alice", setup_for_admin=True)
    assert accounts.check_link(invite).purpose == "invite"


def test_service_account_gets_no_link(accounts):
    accounts.create("svc:model-x")
    with pytest.raises(InvalidInput) as e:
        accounts.invite_or_reset_link("svc:model-x")
    assert "token" in e.value.message


def test_deactivated_account_gets_no_link(accounts):
    accounts.create("root", admin=True)
    accounts.create("alice")
    accounts.set_active("alice", False)
    with pytest.raises(InvalidInput):
        accounts.invite_or_reset_link("alice")
