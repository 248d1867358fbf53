"""Projects and memberships on SQLite and PostgreSQL, including the config-declared ones."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from jupyterhub_annotations.authenticator.access_cache import AccessCache
from jupyterhub_annotations.authenticator.accounts import Accounts
from jupyterhub_annotations.authenticator.errors import Conflict, Forbidden, InvalidInput, NotFound
from jupyterhub_annotations.authenticator.links import LinkSigner
from jupyterhub_annotations.authenticator.lockout import LockoutPolicy
from jupyterhub_annotations.authenticator.projects import (
    MemberView,
    Projects,
    ProjectView,
    parse_declared,
)
from jupyterhub_annotations.authenticator.store import Store

CONFIG = "jupyterhub_config.py"


def exists(projects: Projects, slug: str) -> bool:
    try:
        projects.get(slug, None)
    except NotFound:
        return False
    return True


@pytest.fixture
def accounts(store: Store) -> Accounts:
    return Accounts(
        store,
        LinkSigner(b"s" * 32, timedelta(hours=24)),
        LockoutPolicy(max_failures=5, max_address_failures=50, window=timedelta(minutes=15)),
    )


@pytest.fixture(params=["uncached", "cached"])
def make_projects(request, store: Store):
    """Projects with the given ``projects`` config (as a hub start would build it),
    without a cache and with one whose entries never age (its clock stands still): then
    only the store's generation can make a change visible, and every test below must
    pass all the same."""

    def make(config: dict | None = None) -> Projects:
        cache = None
        if request.param == "cached":
            cache = AccessCache(store, 60.0, clock=lambda: 0.0)
        return Projects(store, parse_declared(config or {}), cache=cache)

    return make


@pytest.fixture
def projects(make_projects) -> Projects:
    return make_projects()


def members(projects: Projects, slug: str) -> dict[str, tuple[str, str]]:
    """name -> (role, source)."""
    return {m.name: (m.role, m.source) for m in projects.members(slug)[0]}


def project_with(projects: Projects, accounts: Accounts, slug: str, **roles: str) -> None:
    """A runtime project created by the first named account, with the others added."""
    names = list(roles)
    for name in names:
        if accounts.get(name) is None:
            accounts.create(name)
    projects.create(slug, {}, creator=names[0])
    for name in names[1:]:
        projects.set_member(slug, name, roles[name], granter_role="admin")
    if roles[names[0]] != "admin":
        projects.set_member(slug, names[0], roles[names[0]], granter_role="admin")


# -- parse_declared ------------------------------------------------------------------

ADMIN = {"members": {"alice": "admin"}}


@pytest.mark.parametrize(
    ("config", "must_name"),
    [
        pytest.param({"Bad Slug": ADMIN}, ["'Bad Slug'", "lower-case"], id="bad-slug"),
        pytest.param({"-lead": ADMIN}, ["'-lead'"], id="slug-leading-dash"),
        pytest.param({"x" * 65: ADMIN}, ["1 to 64"], id="slug-too-long"),
        pytest.param(
            {"demo": {**ADMIN, "colour": "red"}},
            ["projects['demo']", "colour", "share_annotations", "members"],
            id="unknown-key",
        ),
        pytest.param(
            {"demo": {**ADMIN, "share_annotations": "yes"}},
            ["projects['demo']", "'share_annotations'", "true or false"],
            id="non-bool-share",
        ),
        pytest.param(
            {"demo": {**ADMIN, "api_access": 1}},
            ["projects['demo']", "'api_access'", "true or false"],
            id="non-bool-api-access",
        ),
        pytest.param(
            {"demo": {**ADMIN, "description": 3}},
            ["projects['demo']", "'description'", "a string"],
            id="non-string-description",
        ),
        pytest.param(
            {"demo": {"members": {"alice": "admin", "bob": "owner"}}},
            ["projects['demo']['members']['bob']", "'owner'", "viewer, annotator, admin"],
            id="unknown-role",
        ),
        pytest.param(
            {"demo": {"members": {"alice": "admin", "__system": "viewer"}}},
            ["'__system'", "reserved"],
            id="reserved-member-name",
        ),
        pytest.param(
            {"demo": {"members": {"alice": "admin", "bad name!": "viewer"}}},
            ["projects['demo']['members']['bad name!']", "lower-case letters"],
            id="bad-member-name",
        ),
        pytest.param(
            {"demo": {"members": {"alice": "admin", "svc:Bad:x": "viewer"}}},
            ["svc:<name>"],
            id="bad-service-name",
        ),
        pytest.param(
            {"demo": {"members": {"alice": "annotator", "bob": "viewer"}}},
            ["projects['demo']['members']", "'admin'"],
            id="no-admin",
        ),
        pytest.param({"demo": {}}, ["projects['demo']['members']", "'admin'"], id="no-members"),
        pytest.param({"demo": ["alice"]}, ["projects['demo']", "dict"], id="not-a-dict"),
        pytest.param(
            {"demo": {"members": ["alice"]}},
            ["projects['demo']['members']", "dict of name: role"],
            id="members-not-a-dict",
        ),
        pytest.param(
            {"demo": {"members": {"alice": "admin", 7: "viewer"}}},
            ["projects['demo']['members'][7]", "strings"],
            id="member-name-not-a-string",
        ),
    ],
)
def test_parse_declared_refuses_bad_config_naming_what_to_fix(config, must_name):
    with pytest.raises(InvalidInput) as e:
        parse_declared(config)
    for part in must_name:
        assert part in e.value.message


def test_parse_declared_normalises_member_names_and_keeps_settings():
    parsed = parse_declared(
        {
            "demo": {
                "description": "A demo",
                "share_annotations": True,
                "members": {" Alice ": "admin", "BOB": "viewer", "svc:model-x": "annotator"},
            }
        }
    )
    assert parsed == {
        "demo": {
            "description": "A demo",
            "share_annotations": True,
            "members": {"alice": "admin", "bob": "viewer", "svc:model-x": "annotator"},
        }
    }


def test_parse_declared_of_nothing_is_nothing():
    assert parse_declared({}) == {}


# -- apply_declared ------------------------------------------------------------------


def test_apply_declared_creates_projects_and_password_less_accounts(make_projects, accounts):
    accounts.create("alice")
    projects = make_projects(
        {
            "demo": {
                "description": "Demo project",
                "share_annotations": True,
                "api_access": False,
                "members": {"alice": "admin", "bob": "annotator", "svc:model-x": "viewer"},
            },
            "other": {"members": {"carol": "admin"}},
        }
    )
    assert sorted(projects.apply_declared()) == ["bob", "carol", "svc:model-x"]
    demo = projects.get("demo", None)
    assert demo == ProjectView("demo", "Demo project", True, False, 1, 30, False, None)
    other = projects.get("other", "admin")
    assert (other.description, other.share_annotations, other.api_access) == ("", False, True)
    assert members(projects, "demo") == {
        "alice": ("admin", "config"),
        "bob": ("annotator", "config"),
        "svc:model-x": ("viewer", "config"),
    }
    assert members(projects, "other") == {"carol": ("admin", "config")}
    for name in ("bob", "carol"):
        account = accounts.get(name)
        assert account.password_hash is None and account.active and not account.admin
        assert account.kind == "user"
    assert accounts.get("svc:model-x").kind == "service"


def test_apply_declared_creates_a_member_of_two_projects_once(make_projects, accounts):
    projects = make_projects(
        {
            "one": {"members": {"alice": "admin"}},
            "two": {"members": {"alice": "viewer", "bob": "admin"}},
        }
    )
    assert sorted(projects.apply_declared()) == ["alice", "bob"]
    assert [a.name for a in accounts.listing()[0]] == ["alice", "bob"]
    assert [(v.slug, v.role) for v in projects.visible_to("alice", admin=False)] == [
        ("one", "admin"),
        ("two", "viewer"),
    ]


def test_apply_declared_twice_changes_nothing(make_projects, accounts):
    config = {"demo": {"description": "d", "members": {"alice": "admin", "bob": "viewer"}}}
    projects = make_projects(config)
    assert sorted(projects.apply_declared()) == ["alice", "bob"]
    before = (members(projects, "demo"), projects.visible_to("root", admin=True))
    # A second start, with a fresh service object, as a restarted hub has.
    again = make_projects(config)
    assert again.apply_declared() == []
    assert (members(again, "demo"), again.visible_to("root", admin=True)) == before
    assert [a.name for a in accounts.listing()[0]] == ["alice", "bob"]


def test_apply_declared_reapplies_a_changed_role_and_setting(make_projects):
    make_projects(
        {"demo": {"description": "old", "members": {"alice": "admin", "bob": "viewer"}}}
    ).apply_declared()
    projects = make_projects(
        {"demo": {"description": "new", "members": {"alice": "admin", "bob": "annotator"}}}
    )
    assert projects.apply_declared() == []
    assert members(projects, "demo")["bob"] == ("annotator", "config")
    assert projects.get("demo", None).description == "new"


def test_apply_declared_keeps_runtime_changes_of_undeclared_settings(make_projects):
    config = {"demo": {"description": "d", "members": {"alice": "admin"}}}
    projects = make_projects(config)
    projects.apply_declared()
    projects.update("demo", {"share_annotations": True}, "admin")
    make_projects(config).apply_declared()
    assert projects.get("demo", None).share_annotations is True


def test_apply_declared_removes_a_dropped_config_membership_but_keeps_runtime_ones(
    make_projects, accounts
):
    first = make_projects({"demo": {"members": {"alice": "admin", "bob": "viewer"}}})
    first.apply_declared()
    accounts.create("carol")
    first.set_member("demo", "carol", "annotator", granter_role="admin")

    restarted = make_projects({"demo": {"members": {"alice": "admin"}}})
    restarted.apply_declared()
    assert members(restarted, "demo") == {
        "alice": ("admin", "config"),
        "carol": ("annotator", "api"),
    }
    # The account of the dropped member stays; only the membership goes.
    assert accounts.get("bob") is not None


def test_apply_declared_turns_a_runtime_membership_into_a_config_one(make_projects, accounts):
    first = make_projects({"demo": {"members": {"alice": "admin"}}})
    first.apply_declared()
    accounts.create("bob")
    first.set_member("demo", "bob", "viewer", granter_role="admin")
    assert members(first, "demo")["bob"] == ("viewer", "api")

    restarted = make_projects({"demo": {"members": {"alice": "admin", "bob": "annotator"}}})
    assert restarted.apply_declared() == []
    assert members(restarted, "demo")["bob"] == ("annotator", "config")
    with pytest.raises(Conflict):
        restarted.set_member("demo", "bob", "viewer", granter_role="admin")


def test_apply_declared_adopts_an_existing_runtime_project(projects, make_projects, accounts):
    accounts.create("alice")
    projects.create("demo", {"description": "runtime"}, creator="alice")
    declared = make_projects({"demo": {"description": "config", "members": {"bob": "admin"}}})
    assert declared.apply_declared() == ["bob"]
    assert declared.get("demo", None).description == "config"
    assert members(declared, "demo") == {"alice": ("admin", "api"), "bob": ("admin", "config")}


# -- config memberships and settings are read-only at runtime ------------------------


@pytest.fixture
def declared(make_projects, accounts) -> Projects:
    projects = make_projects(
        {
            "demo": {
                "description": "declared",
                "members": {"alice": "admin", "bob": "viewer"},
            }
        }
    )
    projects.apply_declared()
    return projects


@pytest.mark.parametrize("role", ["viewer", "annotator", "admin"])
def test_changing_a_config_membership_is_a_conflict_naming_the_config(declared, role):
    with pytest.raises(Conflict) as e:
        declared.set_member("demo", "bob", role, granter_role="admin")
    assert CONFIG in e.value.message
    assert "'bob'" in e.value.message and "projects['demo']" in e.value.message
    assert members(declared, "demo")["bob"] == ("viewer", "config")


def test_removing_a_config_membership_is_a_conflict_naming_the_config(declared):
    with pytest.raises(Conflict) as e:
        declared.remove_member("demo", "bob")
    assert CONFIG in e.value.message
    assert "bob" in members(declared, "demo")


def test_updating_a_declared_setting_is_a_conflict_naming_the_config(declared):
    with pytest.raises(Conflict) as e:
        declared.update("demo", {"description": "changed", "api_access": False}, "admin")
    assert CONFIG in e.value.message and "'description'" in e.value.message
    view = declared.get("demo", None)
    # Nothing of the refused change was written, not even the undeclared part.
    assert (view.description, view.api_access) == ("declared", True)


def test_updating_an_undeclared_setting_of_a_declared_project_works(declared):
    view = declared.update("demo", {"share_annotations": True, "api_access": False}, "admin")
    assert (view.share_annotations, view.api_access, view.role) == (True, False, "admin")
    stored = declared.get("demo", "viewer")
    assert (stored.share_annotations, stored.api_access, stored.description) == (
        True,
        False,
        "declared",
    )


def test_deleting_a_declared_project_is_a_conflict_naming_the_config(declared):
    with pytest.raises(Conflict) as e:
        declared.delete("demo")
    assert CONFIG in e.value.message
    assert exists(declared, "demo")


def test_runtime_members_of_a_declared_project_can_be_changed(declared, accounts):
    accounts.create("carol")
    assert declared.set_member("demo", "carol", "viewer", granter_role="admin") is True
    assert declared.set_member("demo", "carol", "annotator", granter_role="admin") is False
    assert members(declared, "demo")["carol"] == ("annotator", "api")
    declared.remove_member("demo", "carol")
    assert "carol" not in members(declared, "demo")


# -- create, update, delete ----------------------------------------------------------


def test_create_makes_the_creator_the_projects_admin(projects, accounts):
    accounts.create("alice")
    view = projects.create("demo", {"description": "Demo", "share_annotations": True}, "alice")
    assert view == ProjectView("demo", "Demo", True, True, 1, 30, False, "admin")
    assert projects.members("demo")[0] == [MemberView("alice", "admin", "api", show_others=True)]
    assert projects.access("demo", "alice")[0] == "admin"
    assert projects.get("demo", "admin") == view


def test_create_with_a_taken_slug_is_a_conflict(projects, accounts):
    accounts.create("alice")
    accounts.create("bob")
    projects.create("demo", {"description": "first"}, creator="alice")
    with pytest.raises(Conflict) as e:
        projects.create("demo", {"description": "second"}, creator="bob")
    assert "'demo'" in e.value.message
    assert projects.get("demo", None).description == "first"
    assert projects.members("demo")[0] == [MemberView("alice", "admin", "api", show_others=True)]


def test_create_with_a_declared_slug_is_a_conflict(declared, accounts):
    accounts.create("carol")
    with pytest.raises(Conflict):
        declared.create("demo", {}, creator="carol")


@pytest.mark.parametrize("slug", ["Demo", "", "-demo", "de mo", "demo/x", "x" * 65, "dé"])
def test_create_with_a_bad_slug_is_invalid_input(projects, accounts, slug):
    accounts.create("alice")
    with pytest.raises(InvalidInput) as e:
        projects.create(slug, {}, creator="alice")
    assert repr(slug) in e.value.message
    assert projects.visible_to("alice", admin=True) == []


def test_create_with_a_badly_typed_setting_is_invalid_input(projects, accounts):
    accounts.create("alice")
    with pytest.raises(InvalidInput) as e:
        projects.create("demo", {"share_annotations": "yes"}, creator="alice")
    assert "'share_annotations'" in e.value.message
    assert not exists(projects, "demo")


def test_create_by_an_unknown_creator_leaves_no_project(projects):
    with pytest.raises(NotFound):
        projects.create("demo", {}, creator="ghost")
    assert not exists(projects, "demo")


def test_delete_of_a_runtime_project_removes_it_and_its_memberships(projects, accounts):
    project_with(projects, accounts, "demo", alice="admin", bob="viewer")
    projects.delete("demo")
    assert not exists(projects, "demo")
    assert projects.access("demo", "bob")[0] is None
    assert projects.visible_to("bob", admin=False) == []
    with pytest.raises(NotFound):
        projects.get("demo", None)
    with pytest.raises(NotFound):
        projects.delete("demo")
    # The accounts stay.
    assert accounts.get("bob") is not None


def test_unknown_project_is_not_found_everywhere(projects, accounts):
    accounts.create("alice")
    with pytest.raises(NotFound):
        projects.get("nope", None)
    with pytest.raises(NotFound):
        projects.update("nope", {"description": "x"}, "admin")
    with pytest.raises(NotFound):
        projects.members("nope")[0]
    with pytest.raises(NotFound):
        projects.set_member("nope", "alice", "viewer", granter_role="admin")
    with pytest.raises(NotFound):
        projects.remove_member("nope", "alice")
    assert projects.access("nope", "alice")[0] is None


# -- members -------------------------------------------------------------------------


def test_set_member_adds_then_changes_a_role(projects, accounts):
    project_with(projects, accounts, "demo", alice="admin")
    accounts.create("bob")
    assert projects.set_member("demo", "bob", "viewer", granter_role="admin") is True
    assert projects.set_member("demo", "bob", "annotator", granter_role="admin") is False
    assert members(projects, "demo") == {"alice": ("admin", "api"), "bob": ("annotator", "api")}


def test_set_member_for_an_unknown_account_is_not_found(projects, accounts):
    project_with(projects, accounts, "demo", alice="admin")
    with pytest.raises(NotFound) as e:
        projects.set_member("demo", "ghost", "viewer", granter_role="admin")
    assert "'ghost'" in e.value.message
    assert "ghost" not in members(projects, "demo")


def test_set_member_with_an_unknown_role_is_invalid_input(projects, accounts):
    project_with(projects, accounts, "demo", alice="admin", bob="viewer")
    with pytest.raises(InvalidInput):
        projects.set_member("demo", "bob", "owner", granter_role="admin")
    assert members(projects, "demo")["bob"] == ("viewer", "api")


@pytest.mark.parametrize(
    ("granter", "role"),
    [("annotator", "admin"), ("viewer", "annotator"), ("viewer", "admin"), (None, "viewer")],
)
def test_granting_a_role_above_your_own_is_forbidden(projects, accounts, granter, role):
    project_with(projects, accounts, "demo", alice="admin")
    accounts.create("bob")
    with pytest.raises(Forbidden):
        projects.set_member("demo", "bob", role, granter_role=granter)
    assert "bob" not in members(projects, "demo")


def test_last_project_admin_cannot_be_demoted(projects, accounts):
    project_with(projects, accounts, "demo", alice="admin", bob="annotator")
    with pytest.raises(Conflict) as e:
        projects.set_member("demo", "alice", "annotator", granter_role="admin")
    assert "'demo'" in e.value.message and "admin" in e.value.message
    assert members(projects, "demo")["alice"] == ("admin", "api")


def test_last_project_admin_cannot_be_removed(projects, accounts):
    project_with(projects, accounts, "demo", alice="admin", bob="annotator")
    with pytest.raises(Conflict):
        projects.remove_member("demo", "alice")
    assert members(projects, "demo")["alice"] == ("admin", "api")


def test_last_project_admin_can_stay_admin(projects, accounts):
    project_with(projects, accounts, "demo", alice="admin")
    assert projects.set_member("demo", "alice", "admin", granter_role="admin") is False


def test_project_admin_can_be_demoted_once_another_admin_exists(projects, accounts):
    project_with(projects, accounts, "demo", alice="admin", bob="admin")
    projects.set_member("demo", "alice", "viewer", granter_role="admin")
    assert members(projects, "demo") == {"alice": ("viewer", "api"), "bob": ("admin", "api")}
    # Now bob is the last one.
    with pytest.raises(Conflict):
        projects.set_member("demo", "bob", "viewer", granter_role="admin")


def test_project_admin_can_be_removed_once_another_admin_exists(projects, accounts):
    project_with(projects, accounts, "demo", alice="admin", bob="admin")
    projects.remove_member("demo", "alice")
    assert members(projects, "demo") == {"bob": ("admin", "api")}
    with pytest.raises(Conflict):
        projects.remove_member("demo", "bob")


def test_a_config_admin_counts_as_the_remaining_admin(declared, accounts):
    accounts.create("carol")
    declared.set_member("demo", "carol", "admin", granter_role="admin")
    declared.set_member("demo", "carol", "viewer", granter_role="admin")
    declared.set_member("demo", "carol", "admin", granter_role="admin")
    declared.remove_member("demo", "carol")
    assert members(declared, "demo")["alice"] == ("admin", "config")


def test_removing_a_non_member_is_not_found(projects, accounts):
    project_with(projects, accounts, "demo", alice="admin")
    accounts.create("bob")
    with pytest.raises(NotFound):
        projects.remove_member("demo", "bob")
    with pytest.raises(NotFound):
        projects.remove_member("demo", "ghost")


def test_two_project_admins_demoting_each_other_at_once_leave_one_admin(projects, accounts):
    project_with(projects, accounts, "demo", alice="admin", bob="admin")
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def demote(name: str) -> None:
        barrier.wait()
        try:
            projects.set_member("demo", name, "viewer", granter_role="admin")
            outcomes[name] = "ok"
        except Exception as e:  # recorded and checked below
            outcomes[name] = e

    threads = [threading.Thread(target=demote, args=(n,)) for n in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["alice", "bob"]
    wins = [n for n, o in outcomes.items() if o == "ok"]
    assert len(wins) == 1, outcomes
    (loser,) = {"alice", "bob"} - set(wins)
    assert isinstance(outcomes[loser], Conflict), outcomes
    roles = {name: role for name, (role, _) in members(projects, "demo").items()}
    assert list(roles.values()).count("admin") == 1


# -- visibility ----------------------------------------------------------------------


@pytest.fixture
def three_projects(projects, accounts) -> Projects:
    project_with(projects, accounts, "alpha", alice="admin", bob="viewer")
    project_with(projects, accounts, "beta", alice="admin", bob="annotator")
    project_with(projects, accounts, "gamma", alice="admin")
    accounts.create("root", admin=True)
    accounts.create("carol")
    return projects


def test_hub_admin_sees_every_project_as_admin(three_projects):
    views = three_projects.visible_to("root", admin=True)
    assert [(v.slug, v.role) for v in views] == [
        ("alpha", "admin"),
        ("beta", "admin"),
        ("gamma", "admin"),
    ]


def test_member_sees_only_their_projects_with_their_role(three_projects):
    views = three_projects.visible_to("bob", admin=False)
    assert [(v.slug, v.role) for v in views] == [("alpha", "viewer"), ("beta", "annotator")]


def test_non_member_sees_no_project(three_projects):
    assert three_projects.visible_to("carol", admin=False) == []
    assert three_projects.visible_to("ghost", admin=False) == []


def test_project_views_serialise_with_the_fixed_field_names(three_projects):
    (view,) = [v for v in three_projects.visible_to("bob", admin=False) if v.slug == "alpha"]
    assert view.as_json() == {
        "slug": "alpha",
        "description": "",
        "share_annotations": False,
        "api_access": True,
        "overlap": 1,
        "lease_minutes": 30,
        "blind": False,
        "role": "viewer",
    }
    assert three_projects.members("alpha")[0][0].as_json() == {
        "name": "alice",
        "role": "admin",
        "source": "api",
        "show_others": True,
    }


# -- accounts and memberships --------------------------------------------------------


def test_deleting_an_account_removes_its_memberships_and_keeps_the_project(projects, accounts):
    project_with(projects, accounts, "demo", alice="admin", bob="annotator")
    project_with(projects, accounts, "other", bob="admin", alice="admin")
    assert accounts.delete("bob") is True
    assert members(projects, "demo") == {"alice": ("admin", "api")}
    assert exists(projects, "demo") and exists(projects, "other")
    assert projects.access("demo", "bob")[0] is None
    # A new account of the same name starts with no memberships.
    accounts.create("bob")
    assert projects.visible_to("bob", admin=False) == []


def test_deleting_the_last_admin_of_a_project_is_refused(projects, accounts):
    project_with(projects, accounts, "demo", bob="admin", alice="annotator")
    with pytest.raises(Conflict, match="last admin of project 'demo'"):
        accounts.delete("bob")
    assert members(projects, "demo")["bob"] == ("admin", "api")
    projects.set_member("demo", "alice", "admin", granter_role="admin")
    assert accounts.delete("bob") is True


def test_deleting_a_config_member_account_removes_the_membership_until_restart(
    declared, make_projects, accounts
):
    accounts.delete("bob")
    assert members(declared, "demo") == {"alice": ("admin", "config")}
    # The next start re-creates the declared member (password-less).
    restarted = make_projects(
        {"demo": {"description": "declared", "members": {"alice": "admin", "bob": "viewer"}}}
    )
    assert restarted.apply_declared() == ["bob"]
    assert members(restarted, "demo")["bob"] == ("viewer", "config")
