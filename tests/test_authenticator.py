"""AnnotationAuthenticator without a hub: the JupyterHub hooks on a SQLite store."""

from __future__ import annotations

import asyncio
import configparser
import logging
import re
import stat
from collections.abc import Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from jupyterhub import orm
from jupyterhub_annotations.authenticator import passwords
from jupyterhub_annotations.authenticator.auth import AnnotationAuthenticator
from jupyterhub_annotations.authenticator.errors import Unauthenticated
from jupyterhub_annotations.authenticator.permissions import SCOPES, Principal
from sqlalchemy.orm import Session
from tornado import web
from traitlets import Float, Integer, TraitError

from tests.hub import REPO

PASSWORD = "correct horse 4 annotations"
BOB_PASSWORD = "battery staple 5 annotations"
WRONG = "not the password at all"


def handler(address: str = "127.0.0.1", hub_db: Session | None = None) -> SimpleNamespace:
    """A login request straight from ``address`` (no proxy in between), to a hub whose
    database is ``hub_db`` (none: a hub without users)."""
    peer = SimpleNamespace(context=SimpleNamespace(address=(address, 40000)))

    def find_user(name: str) -> SimpleNamespace | None:
        found = orm.User.find(hub_db, name) if hub_db is not None else None
        return user(name, hub_db) if found is not None else None

    return SimpleNamespace(
        request=SimpleNamespace(headers={}, connection=peer), find_user=find_user
    )


def new_hub_db() -> Session:
    """JupyterHub's own database, in memory."""
    return orm.new_session_factory("sqlite://")()


def user(name: str, hub_db: Session | None = None) -> SimpleNamespace:
    """The hub's user ``name`` as the hooks get it: its row in ``hub_db`` (created if
    missing; default: a database of its own)."""
    db = hub_db if hub_db is not None else new_hub_db()
    row = orm.User.find(db, name)
    if row is None:
        row = orm.User(name=name)
        db.add(row)
        db.commit()
    return SimpleNamespace(name=name, orm_user=row, db=db)


def run(hook: Coroutine) -> Any:
    """Await one of the Authenticator's async hooks from a plain test."""
    return asyncio.run(hook)


@pytest.fixture
def make_auth(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNOTATIONS_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("ANNOTATIONS_LINK_SECRET", raising=False)
    made: list[AnnotationAuthenticator] = []

    def make(**config) -> AnnotationAuthenticator:
        settings = {
            "db_url": f"sqlite:///{tmp_path / 'annotations.sqlite'}",
            "link_secret": "x" * 40,
            "first_admin_password": PASSWORD,
            **config,
        }
        # None: leave the option unset (its default applies).
        auth = AnnotationAuthenticator(**{k: v for k, v in settings.items() if v is not None})
        made.append(auth)
        return auth

    yield make
    for auth in made:
        if "core" in auth.__dict__:  # built on first use only
            auth.core.close()


@pytest.fixture
def auth(make_auth) -> AnnotationAuthenticator:
    """A started authenticator: the first admin exists with PASSWORD."""
    auth = make_auth()
    auth.check_allow_config()
    return auth


def with_password(auth: AnnotationAuthenticator, name: str, password: str = BOB_PASSWORD):
    auth.core.accounts.ensure(name)
    auth.core.accounts.use_link(auth.core.accounts.issue_link(name, "invite"), password)


# -- hub start -------------------------------------------------------------------


def test_check_allow_config_creates_the_first_admin_with_the_configured_password(make_auth, caplog):
    auth = make_auth()
    with caplog.at_level(logging.INFO):
        auth.check_allow_config()
    account = auth.core.accounts.get("admin")
    assert account.admin and account.active
    assert passwords.verify_password(account.password_hash, PASSWORD)
    assert "created admin 'admin' with the configured password" in caplog.text
    assert "one-time URL" not in caplog.text


def test_first_admin_name_is_configurable(make_auth):
    auth = make_auth(first_admin="boss")
    auth.check_allow_config()
    assert auth.core.accounts.get("boss").admin
    assert auth.core.accounts.get("admin") is None


def test_restart_never_resets_the_first_admin_password(make_auth):
    make_auth().check_allow_config()
    again = make_auth(first_admin_password=BOB_PASSWORD)
    again.check_allow_config()
    stored = again.core.accounts.get("admin").password_hash
    assert passwords.verify_password(stored, PASSWORD)
    assert not passwords.verify_password(stored, BOB_PASSWORD)


def test_weak_first_admin_password_stops_the_hub_and_creates_nothing(make_auth, caplog):
    auth = make_auth(first_admin_password="password123")
    with pytest.raises(SystemExit) as e:
        auth.check_allow_config()
    assert e.value.code == 1
    assert "first_admin_password is not usable" in caplog.text
    assert "commonly used passwords" in caplog.text
    assert auth.core.accounts.get("admin") is None


def test_first_admin_password_is_read_from_the_environment(make_auth, monkeypatch, tmp_path):
    monkeypatch.setenv("ANNOTATIONS_ADMIN_PASSWORD", BOB_PASSWORD)
    db_url = f"sqlite:///{tmp_path / 'annotations.sqlite'}"
    auth = AnnotationAuthenticator(db_url=db_url, link_secret="x" * 40)
    try:
        auth.check_allow_config()
        stored = auth.core.accounts.get("admin").password_hash
        assert passwords.verify_password(stored, BOB_PASSWORD)
    finally:
        auth.core.store.dispose()


def test_generated_link_secret_is_kept_in_a_private_file(make_auth, tmp_path):
    secret = tmp_path / "keys" / "link_secret"
    auth = make_auth(link_secret="", link_secret_file=str(secret))
    token = auth.core.accounts.signer.issue("admin", "setup", 0, "stamp", 0)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    # Another replica reading the same file verifies the link.
    other = make_auth(link_secret="", link_secret_file=str(secret))
    assert other.core.accounts.signer.verify(token).name == "admin"


@pytest.mark.parametrize("length", [1, 31])
def test_short_link_secret_in_the_config_is_refused_by_name(make_auth, length):
    secret = "q" * length
    with pytest.raises(TraitError) as e:
        make_auth(link_secret=secret)
    message = str(e.value)
    assert "c.AnnotationAuthenticator.link_secret" in message
    assert f"has {length} characters" in message and "at least 32" in message
    assert secret not in message


def test_short_link_secret_in_the_environment_is_refused_by_name(make_auth, monkeypatch):
    monkeypatch.setenv("ANNOTATIONS_LINK_SECRET", "z" * 20)
    auth = make_auth(link_secret=None)
    with pytest.raises(TraitError) as e:
        auth.core  # noqa: B018 - the key is read when the core is built
    message = str(e.value)
    assert "ANNOTATIONS_LINK_SECRET has 20 characters" in message
    assert "z" * 20 not in message


def test_link_secret_of_32_characters_from_the_environment_signs_links(make_auth, monkeypatch):
    monkeypatch.setenv("ANNOTATIONS_LINK_SECRET", "z" * 32)
    auth = make_auth(link_secret=None)
    assert auth.link_secret == "z" * 32
    auth.check_allow_config()
    assert (
        auth.core.accounts.check_link(auth.core.accounts.invite_or_reset_link("admin")).name
        == "admin"
    )


def test_first_admin_is_lower_cased(make_auth):
    auth = make_auth(first_admin="Boss")
    assert auth.first_admin == "boss"
    auth.check_allow_config()
    assert auth.core.accounts.get("boss").admin


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("svc:boss", "reserved"),
        ("a:b", "reserved"),
        ("__boss", "reserved"),
        ("", "1 to 128 characters"),
        ("bo ss", "1 to 128 characters"),
        ("b/oss", "1 to 128 characters"),
    ],
)
def test_reserved_or_invalid_first_admin_is_refused_by_name(make_auth, name, why):
    with pytest.raises(TraitError) as e:
        make_auth(first_admin=name)
    assert "c.AnnotationAuthenticator.first_admin" in str(e.value)
    assert why in str(e.value)


@pytest.mark.parametrize("length", [7, 1025])
def test_min_password_length_out_of_range_is_refused(make_auth, length):
    with pytest.raises(
        TraitError, match=r"'min_password_length' trait .* (less than 8|greater than 1024)"
    ):
        make_auth(min_password_length=length)


# Every numeric option, a value out of its bounds, and the bound named in the message.
OUT_OF_BOUNDS = [
    ("link_lifetime_hours", 0, "less than"),
    ("link_lifetime_hours", 24 * 366, "greater than"),
    ("min_password_length", 7, "less than"),
    ("lockout_max_failures", 0, "less than"),
    ("lockout_max_address_failures", 0, "less than"),
    ("lockout_window_minutes", 0, "less than"),
    ("trusted_proxy_hops", -1, "less than"),
    ("trusted_proxy_hops", 11, "greater than"),
    ("token_max_lifetime_days", 0, "less than"),
    ("token_max_live_per_user", 0, "less than"),
    ("access_cache_seconds", -1, "less than"),
    ("password_hash_threads", 0, "less than"),
    ("annotation_max_bytes", 0, "less than"),
    ("annotation_import_max_records", 0, "less than"),
    ("annotation_import_max_bytes", 10, "less than"),
]


@pytest.mark.parametrize(("option", "value", "bound"), OUT_OF_BOUNDS)
def test_every_numeric_option_refuses_an_impossible_value_by_name(make_auth, option, value, bound):
    with pytest.raises(TraitError, match=rf"'{option}' trait .* should not be {bound}"):
        make_auth(**{option: value})


def test_every_numeric_option_has_bounds():
    traits = AnnotationAuthenticator.class_own_traits(config=True)
    numeric = {name for name, t in traits.items() if isinstance(t, Integer | Float)}
    assert numeric == {option for option, _, _ in OUT_OF_BOUNDS}
    for name in numeric:
        assert traits[name].min is not None, name


def test_every_configurable_trait_has_help():
    traits = AnnotationAuthenticator.class_own_traits(config=True)
    assert {"db_url", "first_admin", "link_secret", "lockout_max_failures"} <= set(traits)
    missing = [name for name, trait in traits.items() if not (trait.help or "").strip()]
    assert missing == []


def test_demo_config_shows_every_option():
    config = (REPO / "jupyterhub_config.py").read_text()
    shown = set(re.findall(r"c\.AnnotationAuthenticator\.(\w+) =", config))
    options = set(AnnotationAuthenticator.class_own_traits(config=True))
    assert sorted(options - shown) == []


def test_declared_python_version_is_the_one_the_code_needs():
    # The code uses datetime.UTC (Python 3.11); ruff's target says the same.
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    assert setup["options"]["python_requires"] == ">=3.11"
    readme = (REPO / "README.md").read_text()
    assert re.findall(r"Python (3\.\d+)\+", readme) == ["3.11"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'target-version = "py311"' in pyproject


# -- login -----------------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_right_password_logs_the_admin_in(auth):
    result = await auth.authenticate(handler(), {"username": "admin", "password": PASSWORD})
    assert result == {"name": "admin", "admin": True}


@pytest.mark.gen_test(timeout=30)
async def test_login_name_is_lowercased(auth):
    # (The hub's login handler strips surrounding space before calling authenticate.)
    result = await auth.authenticate(handler(), {"username": "ADMIN", "password": PASSWORD})
    assert result == {"name": "admin", "admin": True}


@pytest.mark.gen_test(timeout=30)
async def test_regular_user_logs_in_without_admin(auth):
    with_password(auth, "bob")
    result = await auth.authenticate(handler(), {"username": "bob", "password": BOB_PASSWORD})
    assert result == {"name": "bob", "admin": False}


@pytest.mark.gen_test(timeout=30)
async def test_admin_users_config_makes_an_account_admin(make_auth):
    auth = make_auth(admin_users={"bob"})
    auth.check_allow_config()
    with_password(auth, "bob")
    result = await auth.authenticate(handler(), {"username": "bob", "password": BOB_PASSWORD})
    assert result == {"name": "bob", "admin": True}


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize(
    "data",
    [
        {"username": "admin", "password": WRONG},
        {"username": "admin", "password": ""},
        {"username": "admin"},
        {"username": "ghost", "password": PASSWORD},
        {"username": "svc:x", "password": PASSWORD},
        {"username": "__sys", "password": PASSWORD},
        {"username": "a/b", "password": PASSWORD},
        {"username": "", "password": PASSWORD},
        {"password": PASSWORD},
        {"username": "admin", "password": "x" * 2000},
        {"username": "admin", "password": PASSWORD + "x" * 1000},
    ],
    ids=[
        "wrong",
        "empty-password",
        "no-password",
        "unknown",
        "service-name",
        "system-name",
        "slash",
        "empty-name",
        "no-name",
        "2000-chars",
        "right-prefix-too-long",
    ],
)
async def test_bad_login_returns_none(auth, data):
    assert await auth.authenticate(handler(), data) is None


class CountingHasher:
    def __init__(self, real) -> None:
        self.real = real
        self.calls = 0

    def verify(self, stored_hash: str, password: str) -> bool:
        self.calls += 1
        return self.real.verify(stored_hash, password)


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize(
    "data",
    [
        {"username": "svc:x", "password": PASSWORD},
        {"username": "admin", "password": "x" * 2000},
        {"username": "ghost", "password": PASSWORD},
    ],
    ids=["invalid-name", "too-long-password", "unknown-name"],
)
async def test_refused_login_still_costs_one_argon2_verification(auth, monkeypatch, data):
    counting = CountingHasher(passwords._hasher)
    monkeypatch.setattr(passwords, "_hasher", counting)
    assert await auth.authenticate(handler(), data) is None
    assert counting.calls == 1


@pytest.mark.gen_test(timeout=30)
async def test_lockout_answers_429_with_retry_after(make_auth):
    auth = make_auth(lockout_max_failures=3)
    auth.check_allow_config()
    for _ in range(3):
        assert await auth.authenticate(handler(), {"username": "admin", "password": WRONG}) is None
    with pytest.raises(web.HTTPError) as e:
        await auth.authenticate(handler(), {"username": "admin", "password": PASSWORD})
    assert e.value.status_code == 429
    assert "Too many failed login attempts" in e.value.log_message
    retry_after = int(e.value.headers["Retry-After"])
    assert 1 <= retry_after <= 15 * 60


@pytest.mark.gen_test(timeout=30)
async def test_address_lockout_answers_429(make_auth):
    auth = make_auth(lockout_max_address_failures=2)
    auth.check_allow_config()
    for name in ("ann", "cid"):
        assert await auth.authenticate(handler("192.0.2.7"), {"username": name}) is None
    with pytest.raises(web.HTTPError) as e:
        await auth.authenticate(handler("192.0.2.7"), {"username": "admin", "password": PASSWORD})
    assert e.value.status_code == 429
    assert "your address" in e.value.log_message
    data = {"username": "admin", "password": PASSWORD}
    assert await auth.authenticate(handler("192.0.2.8"), data) == {"name": "admin", "admin": True}


@pytest.mark.gen_test(timeout=30)
async def test_deactivated_account_with_right_password_fails_like_a_wrong_one(auth):
    with_password(auth, "bob")
    auth.core.accounts.set_active("bob", False)
    for password in (BOB_PASSWORD, WRONG):
        assert await auth.authenticate(handler(), {"username": "bob", "password": password}) is None
    actions = [e.action for e in auth.core.audit.page(target="bob", action="login")[0]]
    assert actions == ["login.failure", "login.deactivated"]  # newest first


# -- hub hooks -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["svc:x", "__sys", "a:b", "Alice", "a b"])
def test_validate_username_refuses_reserved_and_invalid_names(auth, name):
    assert auth.validate_username(name) is False


@pytest.mark.parametrize("name", ["alice", "a.b-c_d@x.org"])
def test_validate_username_accepts_person_names(auth, name):
    assert auth.validate_username(name) is True


def test_check_allowed_only_for_active_accounts(auth):
    run(auth.add_user(user("bob")))
    assert run(auth.check_allowed("admin")) is True
    assert run(auth.check_allowed("bob")) is True
    assert run(auth.check_allowed("ghost")) is False
    auth.core.accounts.set_active("bob", False)
    assert run(auth.check_allowed("bob")) is False


def test_allowed_and_blocked_users_keep_their_jupyterhub_meaning(make_auth):
    """`allowed_users` narrows who may log in (admins are in it, as the hub merges them);
    `blocked_users` bars them; both also bar their tokens and end their sessions at the
    next refresh. An account is still needed either way."""
    auth = make_auth(allowed_users={"admin", "alice"}, blocked_users={"carol"})
    auth.check_allow_config()
    for name in ("alice", "bob", "carol"):
        run(auth.add_user(user(name)))
    auth.allowed_users.discard("bob")  # add_user let an existing hub user in, as the hub does
    assert run(auth.check_allowed("alice")) is True
    assert run(auth.check_allowed("bob")) is False  # an account, but not in the allow list
    assert run(auth.check_allowed("ghost")) is False  # in no list and no account
    tokens = {
        name: auth.core.tokens.create(Principal(name=name, admin=False), "t")[0]
        for name in ("alice", "bob", "carol")
    }
    assert auth.core.tokens.authenticate(tokens["alice"]).name == "alice"
    for name in ("bob", "carol"):
        with pytest.raises(Unauthenticated, match="may not use this hub"):
            auth.core.tokens.authenticate(tokens[name])
        assert run(auth.refresh_user(user(name))) is False
    assert run(auth.refresh_user(user("alice"))) == {"admin": False}
    # The lists are read live: the hub adding someone lets their token in at once.
    auth.allowed_users.add("bob")
    assert auth.core.tokens.authenticate(tokens["bob"]).name == "bob"


def test_with_no_allow_list_every_active_account_may_log_in(make_auth):
    auth = make_auth(allow_all=True)
    auth.check_allow_config()
    run(auth.add_user(user("bob")))
    assert run(auth.check_allowed("bob")) is True
    assert run(auth.check_allowed("ghost")) is False  # allow_all does not make accounts


def test_add_user_creates_a_password_less_account_once(auth):
    run(auth.add_user(user("bob")))
    first = auth.core.accounts.get("bob")
    assert first.password_hash is None and not first.admin
    run(auth.add_user(user("bob")))
    assert auth.core.accounts.get("bob").id == first.id


def test_add_user_keeps_an_existing_password_and_deactivation(auth):
    with_password(auth, "bob")
    auth.core.accounts.set_active("bob", False)
    run(auth.add_user(user("bob")))
    account = auth.core.accounts.get("bob")
    assert account.active is False
    assert passwords.verify_password(account.password_hash, BOB_PASSWORD)


def test_add_user_refuses_an_invalid_name_and_creates_nothing(auth):
    with pytest.raises(ValueError, match="Invalid username"):
        run(auth.add_user(user("svc:x")))
    assert auth.core.accounts.get("svc:x") is None


def test_deleting_the_hub_user_deactivates_the_account_and_keeps_its_credentials(auth):
    with_password(auth, "bob")
    token, _ = auth.core.tokens.create(Principal(name="bob", admin=False), "script")
    run(auth.delete_user(user("bob")))
    bob = auth.core.accounts.get("bob")
    assert bob.active is False  # no login, no token...
    with pytest.raises(Unauthenticated):
        auth.core.tokens.authenticate(token)
    run(auth.delete_user(user("bob")))  # deleted again (the hub user came back): no error
    auth.core.accounts.set_active("bob", True)  # ...until a hub admin reactivates it
    assert auth.core.tokens.authenticate(token).name == "bob"
    assert auth.core.accounts.login("bob", BOB_PASSWORD, "127.0.0.1").name == "bob"
    actions = [(e.action, e.details) for e in auth.core.audit.page(target="bob")[0]]
    assert ("user.update", {"active": False, "reason": "deleted from the hub"}) in actions


def test_with_hub_user_deletion_keep_the_account_stays_active(make_auth):
    auth = make_auth(hub_user_deletion="keep")
    auth.check_allow_config()
    with_password(auth, "bob")
    run(auth.delete_user(user("bob")))
    assert auth.core.accounts.get("bob").active is True
    with pytest.raises(TraitError):
        make_auth(hub_user_deletion="delete")


def test_deleting_the_last_admin_in_the_hub_keeps_them_active_without_an_error(auth, caplog):
    """A culler deletes idle users every cycle: a refusal would be a traceback each time."""
    auth.log.addHandler(caplog.handler)  # the hub's logger need not reach the root
    try:
        run(auth.delete_user(user("admin")))
    finally:
        auth.log.removeHandler(caplog.handler)
    assert auth.core.accounts.get("admin").active is True
    assert "stays active, as the last active hub admin" in caplog.text


def test_a_rename_in_the_hub_renames_the_account_and_its_annotations(auth):
    with_password(auth, "bob")
    auth.core.accounts.ensure("carol")
    auth.core.projects.create("birds", {}, creator="admin")
    auth.core.projects.set_member("birds", "bob", "annotator", granter_role="admin")
    auth.core.annotations.put("birds", "i1", "bob", {"label": "owl"}, writer="bob")
    hub = new_hub_db()
    bob = user("bob", hub).orm_user
    bob.name = "robert"  # what JupyterHub's PATCH /hub/api/users/bob does
    hub.commit()
    assert auth.core.accounts.get("bob") is None
    assert auth.core.accounts.login("robert", BOB_PASSWORD, "127.0.0.1").name == "robert"
    assert auth.core.projects.roles("robert") == {"robert": {"birds": "annotator"}}
    mine = auth.core.annotations.get("birds", "i1", "robert", "robert", "annotator")
    assert mine.data == '{"label":"owl"}'
    # A name an account holds already: refused, and the hub keeps the old name.
    with pytest.raises(web.HTTPError) as refused:
        bob.name = "carol"
    assert refused.value.status_code == 409
    assert "exists already" in refused.value.log_message
    assert orm.User.find(hub, "robert") is not None
    assert auth.core.accounts.get("robert") is not None


def test_hub_groups_mirror_memberships_and_leave_other_groups_alone(auth):
    with_password(auth, "bob")
    auth.core.projects.create("birds", {}, creator="admin")
    auth.core.projects.set_member("birds", "bob", "annotator", granter_role="admin")
    hub = new_hub_db()
    bob = user("bob", hub)
    bob.orm_user.groups.append(orm.Group(name="staff"))  # an operator's own group
    hub.commit()

    def groups() -> set[str]:
        return {g.name for g in bob.orm_user.groups}

    # At login (the hub user exists already) and at every refresh.
    login = {"username": "bob", "password": BOB_PASSWORD}
    assert run(auth.authenticate(handler(hub_db=hub), login))
    assert groups() == {"staff", "annotations-birds-annotator"}
    auth.core.projects.set_member("birds", "bob", "viewer", granter_role="admin")
    run(auth.refresh_user(bob))
    assert groups() == {"staff", "annotations-birds-viewer"}
    auth.core.projects.remove_member("birds", "bob")
    run(auth.refresh_user(bob))
    assert groups() == {"staff"}
    assert orm.Group.find(hub, "annotations-birds-viewer") is not None  # the project's


def test_hub_start_shows_every_allowed_account_in_the_hub(make_auth):
    """Accounts made while the hub was down (the command line) appear at its next start,
    except where JupyterHub's lists keep them out; groups of deleted projects go."""
    from jupyterhub.roles import get_default_roles
    from jupyterhub_annotations.handlers import hub_mirror

    auth = make_auth(allowed_users={"admin", "alice"})
    auth.check_allow_config()
    for name in ("alice", "bob", "svc:model"):
        auth.core.accounts.create(name)
    auth.core.projects.create("birds", {}, creator="alice")
    hub = new_hub_db()
    hub.add_all(orm.Role(**role) for role in get_default_roles())
    hub.add(orm.Group(name="annotations-gone-admin"))
    hub.commit()
    hub_mirror.show_all(hub, auth.core)
    hub.commit()
    assert {u.name for u in hub.query(orm.User)} == {"admin", "alice"}  # bob: not allowed
    assert orm.User.find(hub, "admin").admin is True
    assert [g.name for g in orm.User.find(hub, "alice").groups] == ["annotations-birds-admin"]
    assert orm.Group.find(hub, "annotations-gone-admin") is None


@pytest.mark.gen_test(timeout=30)
async def test_refresh_user_keeps_an_active_account(auth):
    await auth.add_user(user("bob"))
    assert await auth.refresh_user(user("bob")) == {"admin": False}


@pytest.mark.gen_test(timeout=30)
async def test_refresh_user_logs_out_a_deactivated_account(auth):
    await auth.add_user(user("bob"))
    auth.core.accounts.set_active("bob", False)
    assert await auth.refresh_user(user("bob")) is False


@pytest.mark.gen_test(timeout=30)
async def test_refresh_user_logs_out_a_deleted_account(auth):
    await auth.add_user(user("bob"))
    await auth.delete_user(user("bob"))
    assert await auth.refresh_user(user("bob")) is False


# -- spawned servers -------------------------------------------------------------

READ_WRITE = ["annotations:read", "annotations:write"]


def spawner(name: str = "", hub_connect_url: str | None = None) -> SimpleNamespace:
    hub = SimpleNamespace(url="http://127.0.0.1:8081/hub/")
    return SimpleNamespace(name=name, environment={}, hub=hub, hub_connect_url=hub_connect_url)


@pytest.mark.parametrize(
    ("connect", "expected"),
    [
        (None, "http://127.0.0.1:8081/hub/annotations/api/"),
        ("http://10.0.0.5:8081", "http://10.0.0.5:8081/hub/annotations/api/"),
        ("http://hub.internal:8081/", "http://hub.internal:8081/hub/annotations/api/"),
    ],
)
def test_the_api_url_follows_hub_connect_url(make_auth, connect, expected):
    auth = make_auth(inject_token_scopes=READ_WRITE)
    auth.check_allow_config()
    run(auth.add_user(user("bob")))
    server = spawner(hub_connect_url=connect)
    run(auth.pre_spawn_start(user("bob"), server))
    assert server.environment["ANNOTATIONS_API_URL"] == expected


def test_a_user_at_the_token_cap_can_still_start_their_server(make_auth):
    auth = make_auth(inject_token_scopes=READ_WRITE, token_max_live_per_user=2)
    auth.check_allow_config()
    run(auth.add_user(user("bob")))
    for name in ("laptop", "ci"):
        auth.core.tokens.create(Principal(name="bob", admin=False), name)
    server = spawner()
    run(auth.pre_spawn_start(user("bob"), server))
    principal = auth.core.tokens.authenticate(server.environment["ANNOTATIONS_TOKEN"])
    assert principal.name == "bob" and principal.scopes == set(READ_WRITE)
    api_url = server.environment["ANNOTATIONS_API_URL"]
    assert api_url == "http://127.0.0.1:8081/hub/annotations/api/"


def test_a_server_with_a_long_name_gets_a_token_that_dies_at_its_stop(make_auth):
    auth = make_auth(inject_token_scopes=READ_WRITE)
    auth.check_allow_config()
    run(auth.add_user(user("bob")))
    server = spawner("x" * 255)  # JupyterHub keeps names of up to 255 characters
    run(auth.pre_spawn_start(user("bob"), server))
    plaintext = server.environment["ANNOTATIONS_TOKEN"]
    auth.core.tokens.authenticate(plaintext)
    (listed,) = auth.core.tokens.listing("bob")[0]
    assert len(listed.name) <= 100 and listed.name.startswith("server:xxx")
    run(auth.post_spawn_stop(user("bob"), server))
    with pytest.raises(Unauthenticated, match="revoked"):
        auth.core.tokens.authenticate(plaintext)


@pytest.mark.parametrize("scopes", [["users:manage"], ["annotations:read", "users:manage"]])
def test_inject_token_scopes_refuses_users_manage_and_says_why(make_auth, scopes):
    with pytest.raises(TraitError) as e:
        make_auth(inject_token_scopes=scopes)
    assert "must not contain 'users:manage'" in str(e.value)
    assert "hub admin" in str(e.value) and "notebook" in str(e.value)


def test_inject_token_scopes_accepts_every_other_scope(make_auth):
    others = [s for s in SCOPES if s != "users:manage"]
    auth = make_auth(inject_token_scopes=others)
    auth.check_allow_config()
    run(auth.add_user(user("bob")))  # no hub admin: the spawn must not fail
    server = spawner()
    run(auth.pre_spawn_start(user("bob"), server))
    assert auth.core.tokens.authenticate(server.environment["ANNOTATIONS_TOKEN"]).scopes == set(
        others
    )
