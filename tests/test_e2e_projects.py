"""End-to-end: roles and permissions of every API route family and page, on a real hub.

Each test starts one hub (SQLite and PostgreSQL) with the demo config: project ``demo``
declares admin=admin, alice=annotator, bob=viewer. `people` adds the outsider carol, and
`runtime_project` the project ``birds`` created through the API, whose admin dave is not
a hub admin. Every refused change is followed by a read that shows nothing changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

from tests.hub import Browser
from tests.test_e2e_accounts import PASSWORD, give_password, logged_in_admin

pytestmark = pytest.mark.e2e

PASSWORDS = {
    "admin": PASSWORD,
    "alice": "alices passphrase 1",
    "bob": "bobs passphrase 22",
    "carol": "carols passphrase 333",
    "dave": "daves passphrase 4444",
}
CONFIG = "jupyterhub_config.py"
USER_FIELDS = {"name", "admin", "active", "kind"}
PROJECT_FIELDS = {"slug", "description", "share_annotations", "api_access", "role"}
MEMBER_FIELDS = {"name", "role", "source"}
DEMO_MEMBERS = [
    {"name": "admin", "role": "admin", "source": "config"},
    {"name": "alice", "role": "annotator", "source": "config"},
    {"name": "bob", "role": "viewer", "source": "config"},
]
DEMO = {
    "slug": "demo",
    "description": "A first project to try things out",
    "share_annotations": False,
    "api_access": True,
}


@dataclass
class People:
    admin: Browser  # the only hub admin
    alice: Browser  # demo annotator
    bob: Browser  # demo viewer
    carol: Browser  # in no project


def login(hub, name: str) -> Browser:
    browser = Browser(hub)
    home = browser.login(name, PASSWORDS[name])
    assert home.status_code == 200, home.text
    assert "/hub/login" not in home.url
    return browser


def people(hub) -> People:
    """The demo's users with passwords, logged in, and the outsider carol (via the API)."""
    admin = logged_in_admin(hub)
    give_password(hub, admin, "alice", PASSWORDS["alice"])
    give_password(hub, admin, "bob", PASSWORDS["bob"])
    created = admin.api("POST", "users", {"name": "carol"})
    assert created.status_code == 201, created.text
    assert created.headers["Cache-Control"] == "no-store"  # it holds an invitation link
    assert Browser(hub).set_password(created.json()["link"], PASSWORDS["carol"]).status_code == 200
    return People(admin, login(hub, "alice"), login(hub, "bob"), login(hub, "carol"))


def runtime_project(hub, p: People) -> Browser:
    """Project ``birds`` made through the API: dave admin (not hub admin), alice annotator,
    bob viewer, and the creator (admin) an admin member. Returns dave, logged in."""
    created = p.admin.api("POST", "users", {"name": "dave"})
    assert created.status_code == 201, created.text
    assert Browser(hub).set_password(created.json()["link"], PASSWORDS["dave"]).status_code == 200
    made = p.admin.api("POST", "projects", {"slug": "birds", "description": "Bird calls"})
    assert made.status_code == 201, made.text
    for name, role in (("dave", "admin"), ("alice", "annotator"), ("bob", "viewer")):
        put = p.admin.api("PUT", f"projects/birds/members/{name}", {"role": role})
        assert put.status_code == 201, put.text
    return login(hub, "dave")


def error(answer: requests.Response, status: int, *words: str) -> str:
    """Assert a JSON error of SPEC section 8 with ``status``; return its message."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert set(body["error"]) >= {"status", "message"}
    assert body["error"]["status"] == status
    message = body["error"]["message"]
    assert isinstance(message, str) and message
    for word in words:
        assert word in message, message
    return message


def ok(answer: requests.Response, status: int = 200) -> dict:
    assert answer.status_code == status, (answer.status_code, answer.text)
    return answer.json() if answer.content else {}


def raw(browser: Browser, method: str, path: str, body: bytes) -> requests.Response:
    """Our API with a body that is not what `Browser.api` would encode (XSRF included)."""
    browser.api("GET", "me")  # fetches the XSRF token once
    return browser.http.request(
        method,
        f"{browser.hub.url}/hub/annotations/api/{path}",
        data=body,
        headers={"X-XSRFToken": browser._xsrf, "Content-Type": "application/json"},
        timeout=30,
    )


def names(listing: dict) -> list[str]:
    assert set(listing) == {"items", "next"}
    return [item["name"] for item in listing["items"]]


def slugs_and_roles(browser: Browser) -> list[tuple[str, str]]:
    listing = ok(browser.api("GET", "projects"))
    assert set(listing) >= {"items", "next"} and listing["next"] is None
    for item in listing["items"]:
        assert PROJECT_FIELDS <= set(item)
    return [(item["slug"], item["role"]) for item in listing["items"]]


def members(browser: Browser, slug: str) -> list[dict]:
    listing = ok(browser.api("GET", f"projects/{slug}/members"))
    assert set(listing) >= {"items", "next"} and listing["next"] is None
    return [{k: m[k] for k in MEMBER_FIELDS} for m in listing["items"]]


# -- me ---------------------------------------------------------------------------------


def test_me_names_the_caller_and_their_projects_with_roles(hub):
    p = people(hub)
    dave = runtime_project(hub, p)
    expected = {
        "admin": (p.admin, True, [("birds", "admin"), ("demo", "admin")]),
        "alice": (p.alice, False, [("birds", "annotator"), ("demo", "annotator")]),
        "bob": (p.bob, False, [("birds", "viewer"), ("demo", "viewer")]),
        "carol": (p.carol, False, []),
        "dave": (dave, False, [("birds", "admin")]),
    }
    for name, (browser, admin, projects) in expected.items():
        me = ok(browser.api("GET", "me"))
        assert {"name", "admin", "kind", "auth", "scopes", "projects"} <= set(me)
        assert me["name"] == name and me["admin"] is admin
        assert me["kind"] == "user" and me["auth"] == "session"
        assert isinstance(me["scopes"], list) and all(isinstance(s, str) for s in me["scopes"])
        assert all(set(project) >= {"slug", "role"} for project in me["projects"])
        assert sorted((x["slug"], x["role"]) for x in me["projects"]) == projects, name


# -- users --------------------------------------------------------------------------------


def test_users_routes_are_for_hub_admins_only(hub):
    p = people(hub)
    dave = runtime_project(hub, p)  # a project admin is no hub admin
    before = ok(p.admin.api("GET", "users"))
    assert names(before) == ["admin", "alice", "bob", "carol", "dave"]
    for item in before["items"]:
        assert USER_FIELDS <= set(item)
    assert [u["name"] for u in before["items"] if u["admin"]] == ["admin"]
    alice = ok(p.admin.api("GET", "users/alice"))
    assert {k: alice[k] for k in USER_FIELDS} == {
        "name": "alice",
        "admin": False,
        "active": True,
        "kind": "user",
    }
    for who, browser in (("alice", p.alice), ("bob", p.bob), ("carol", p.carol), ("dave", dave)):
        for method, path, body in (
            ("GET", "users", None),
            ("POST", "users", {"name": "mallory"}),
            ("GET", "users/alice", None),
            ("PATCH", "users/bob", {"active": False}),
            ("PATCH", f"users/{who}", {"admin": True}),
            ("DELETE", "users/carol", None),
            ("POST", "users/bob/link", None),
            ("GET", "users/nobody", None),
        ):
            error(browser.api(method, path, body), 403, "hub admin")
    after = ok(p.admin.api("GET", "users"))
    assert after["items"] == before["items"]
    assert p.admin.api("GET", "users/mallory").status_code == 404
    # bob's password was not reset by any of those links: he still logs in.
    login(hub, "bob")


def test_create_users_and_service_accounts_with_bad_input_refused(hub):
    p = people(hub)
    # carol's creation (in `people`) answered with a user and a one-time link.
    carol = ok(p.admin.api("GET", "users/carol"))
    assert carol["kind"] == "user" and carol["active"] is True and carol["admin"] is False
    erin = ok(p.admin.api("POST", "users", {"name": "Erin"}), 201)
    assert {k: erin[k] for k in USER_FIELDS} == {
        "name": "erin",
        "admin": False,
        "active": True,
        "kind": "user",
    }
    assert erin["link"].startswith(f"{hub.url}/hub/annotations/set-password?token=")
    svc = ok(p.admin.api("POST", "users", {"name": "svc:model-x"}), 201)
    assert svc["name"] == "svc:model-x" and svc["kind"] == "service" and svc["admin"] is False
    assert svc.get("link") is None  # no password, so nothing to set
    assert ok(p.admin.api("GET", "users/svc:model-x"))["kind"] == "service"
    # Names in URLs are normalised as JupyterHub does (lower case).
    assert ok(p.admin.api("GET", "users/ALICE"))["name"] == "alice"
    error(p.admin.api("POST", "users/svc:model-x/link"), 400, "service account")
    error(p.admin.api("POST", "users/nobody/link"), 404)
    before = names(ok(p.admin.api("GET", "users")))
    assert before == ["admin", "alice", "bob", "carol", "erin", "svc:model-x"]
    # A page at a time: the cursors walk the same list.
    walked, query = [], "users?limit=4"
    while query is not None:
        page = ok(p.admin.api("GET", query))
        walked += names(page)
        query = page["next"] and f"users?limit=4&cursor={page['next']}"
    assert walked == before
    error(p.admin.api("GET", "users?limit=0"), 400, "'limit' must be 1 to 1000")
    error(p.admin.api("GET", "users?cursor=nope"), 400, "start again")

    error(p.admin.api("POST", "users", {"name": "carol"}), 409, "exists already")
    error(p.admin.api("POST", "users", {"name": "CAROL"}), 409, "exists already")
    error(p.admin.api("POST", "users", {"name": "svc:model-x"}), 409, "exists already")
    for bad in ("bad name!", "__system", "a:b", "svc:", "", "-dash", "x" * 129):
        error(p.admin.api("POST", "users", {"name": bad}), 400)
    error(p.admin.api("POST", "users", {"name": "frank", "role": "admin"}), 400, "role")
    error(p.admin.api("POST", "users", {"name": 5}), 400, "name")
    error(p.admin.api("POST", "users", {"name": "frank", "admin": "yes"}), 400, "admin")
    error(p.admin.api("POST", "users", {}), 400, "name")
    error(p.admin.api("POST", "users", ["frank"]), 400, "JSON object")
    error(p.admin.api("POST", "users", {"name": "svc:boss", "admin": True}), 400, "service")
    error(raw(p.admin, "POST", "users", b"name=frank"), 400, "not valid JSON")
    error(raw(p.admin, "POST", "users", b'{"name": "frank"'), 400, "not valid JSON")
    assert names(ok(p.admin.api("GET", "users"))) == before

    # The invitation works, once, and the new user has no role anywhere yet.
    assert Browser(hub).set_password(erin["link"], "erins passphrase 55").status_code == 200
    assert Browser(hub).get(erin["link"]).status_code == 400  # used up
    browser = Browser(hub)
    assert browser.login("erin", "erins passphrase 55").status_code == 200
    assert ok(browser.api("GET", "me"))["projects"] == []
    erin_now = ok(p.admin.api("GET", "users/erin"))
    assert erin_now["password_set"] is True
    assert erin_now["password_changed_at"] >= erin_now["created_at"]


def test_deactivate_reactivate_and_the_last_hub_admin_stays(hub):
    p = people(hub)
    off = ok(p.admin.api("PATCH", "users/carol", {"active": False}))
    assert off["name"] == "carol" and off["active"] is False
    error(p.carol.api("GET", "me"), 401)
    assert ok(p.admin.api("GET", "users/carol"))["active"] is False
    assert Browser(hub).login("carol", PASSWORDS["carol"]).status_code == 403
    on = ok(p.admin.api("PATCH", "users/carol", {"active": True}))
    assert on["active"] is True
    assert ok(p.carol.api("GET", "me"))["name"] == "carol"

    # admin is the only hub admin: neither deactivation nor demotion of themselves.
    error(p.admin.api("PATCH", "users/admin", {"active": False}), 409, "last active hub admin")
    error(p.admin.api("PATCH", "users/admin", {"admin": False}), 409, "last active hub admin")
    admin = ok(p.admin.api("GET", "users/admin"))
    assert admin["admin"] is True and admin["active"] is True
    assert ok(p.admin.api("GET", "me"))["admin"] is True

    error(p.admin.api("PATCH", "users/alice", {"name": "eve"}), 400, "name")
    error(p.admin.api("PATCH", "users/alice", {"active": "no"}), 400, "active")
    error(p.admin.api("PATCH", "users/nobody", {"active": False}), 404)
    error(raw(p.admin, "PATCH", "users/alice", b"active"), 400, "not valid JSON")
    alice = ok(p.admin.api("GET", "users/alice"))
    assert alice["active"] is True and alice["admin"] is False
    # A service account cannot become hub admin; nothing of the request is applied.
    ok(p.admin.api("POST", "users", {"name": "svc:model-x"}), 201)
    error(p.admin.api("PATCH", "users/svc:model-x", {"admin": True}), 400, "service")
    assert ok(p.admin.api("GET", "users/svc:model-x"))["admin"] is False
    refused = p.admin.api("PATCH", "users/svc:model-x", {"active": False, "admin": True})
    error(refused, 400, "service")
    assert ok(p.admin.api("GET", "users/svc:model-x"))["active"] is True  # nothing half-written

    # With a second hub admin, the first can step down; the rights follow at once.
    assert ok(p.admin.api("PATCH", "users/alice", {"admin": True}))["admin"] is True
    assert ok(p.alice.api("GET", "me"))["admin"] is True
    assert names(ok(p.alice.api("GET", "users")))[0] == "admin"
    assert ok(p.alice.api("PATCH", "users/admin", {"admin": False}))["admin"] is False
    error(p.admin.api("GET", "users"), 403)
    assert ok(p.admin.api("GET", "me"))["admin"] is False
    assert ok(p.admin.api("GET", "me"))["projects"] == [{"slug": "demo", "role": "admin"}]
    error(p.alice.api("PATCH", "users/alice", {"admin": False}), 409, "last active hub admin")
    error(p.alice.api("PATCH", "users/alice", {"active": False}), 409, "last active hub admin")
    assert [u["name"] for u in ok(p.alice.api("GET", "users"))["items"] if u["admin"]] == ["alice"]


def test_deleted_user_is_gone_for_good_and_the_last_admin_cannot_be_deleted(hub):
    p = people(hub)  # carol has logged in once: the hub has a user for her too
    ok(p.admin.api("PUT", "projects/demo/members/carol", {"role": "viewer"}), 201)
    error(p.admin.api("DELETE", "users/admin"), 409, "last active hub admin")
    assert ok(p.admin.api("GET", "users/admin"))["admin"] is True
    assert ok(p.admin.api("DELETE", "users/carol"), 204) == {}
    error(p.admin.api("GET", "users/carol"), 404)
    error(p.admin.api("DELETE", "users/carol"), 404)
    error(p.carol.api("GET", "me"), 401)
    assert Browser(hub).login("carol", PASSWORDS["carol"]).status_code == 403
    assert members(p.admin, "demo") == DEMO_MEMBERS  # her membership went with her
    hub_user = p.admin.get("/hub/api/users/carol", headers={"X-XSRFToken": p.admin._xsrf})
    assert hub_user.status_code == 404, hub_user.text
    # An account that never logged in (no hub user) is deleted too.
    ok(p.admin.api("POST", "users", {"name": "svc:model-x"}), 201)
    ok(p.admin.api("DELETE", "users/svc:model-x"), 204)

    hub.restart()
    admin = login(hub, "admin")
    assert names(ok(admin.api("GET", "users"))) == ["admin", "alice", "bob"]
    error(admin.api("GET", "users/carol"), 404)
    assert Browser(hub).login("carol", PASSWORDS["carol"]).status_code == 403
    assert members(admin, "demo") == DEMO_MEMBERS


# -- projects -----------------------------------------------------------------------------


def test_projects_list_only_yours_and_only_hub_admins_create(hub):
    p = people(hub)
    dave = runtime_project(hub, p)
    assert slugs_and_roles(p.admin) == [("birds", "admin"), ("demo", "admin")]
    assert slugs_and_roles(p.alice) == [("birds", "annotator"), ("demo", "annotator")]
    assert slugs_and_roles(p.bob) == [("birds", "viewer"), ("demo", "viewer")]
    assert slugs_and_roles(dave) == [("birds", "admin")]
    assert slugs_and_roles(p.carol) == []
    demo = next(x for x in ok(p.bob.api("GET", "projects"))["items"] if x["slug"] == "demo")
    assert {k: demo[k] for k in PROJECT_FIELDS} == {**DEMO, "role": "viewer"}

    for browser in (p.alice, p.bob, p.carol, dave):
        error(browser.api("POST", "projects", {"slug": "fish"}), 403, "hub admin")
    assert slugs_and_roles(p.admin) == [("birds", "admin"), ("demo", "admin")]

    fish = ok(
        p.admin.api(
            "POST",
            "projects",
            {"slug": "fish", "description": "Fish", "share_annotations": True, "api_access": False},
        ),
        201,
    )
    assert {k: fish[k] for k in PROJECT_FIELDS} == {
        "slug": "fish",
        "description": "Fish",
        "share_annotations": True,
        "api_access": False,
        "role": "admin",
    }
    assert members(p.admin, "fish") == [{"name": "admin", "role": "admin", "source": "api"}]
    plain = ok(p.admin.api("POST", "projects", {"slug": "plain-2"}), 201)
    assert plain["description"] == "" and plain["share_annotations"] is False
    assert plain["api_access"] is True

    error(p.admin.api("POST", "projects", {"slug": "demo"}), 409, "exists already")
    error(p.admin.api("POST", "projects", {"slug": "fish"}), 409, "exists already")
    for bad in ("Bad Slug", "UPPER", "-lead", "", "a/b", "x" * 65, "dot.ted"):
        error(p.admin.api("POST", "projects", {"slug": bad}), 400)
    error(p.admin.api("POST", "projects", {"slug": "x", "members": {}}), 400, "members")
    error(p.admin.api("POST", "projects", {"slug": "x", "api_access": "yes"}), 400, "api_access")
    error(p.admin.api("POST", "projects", {"slug": 7}), 400, "slug")
    error(p.admin.api("POST", "projects", {"description": "no slug"}), 400, "slug")
    error(raw(p.admin, "POST", "projects", b"slug=x"), 400, "not valid JSON")
    assert [s for s, _ in slugs_and_roles(p.admin)] == ["birds", "demo", "fish", "plain-2"]
    assert slugs_and_roles(p.alice) == [("birds", "annotator"), ("demo", "annotator")]


def test_a_project_is_read_by_members_and_invisible_to_others(hub):
    p = people(hub)
    dave = runtime_project(hub, p)
    for browser, role in ((p.admin, "admin"), (p.alice, "annotator"), (p.bob, "viewer")):
        demo = ok(browser.api("GET", "projects/demo"))
        assert {k: demo[k] for k in PROJECT_FIELDS} == {**DEMO, "role": role}
    assert ok(dave.api("GET", "projects/birds"))["role"] == "admin"
    # Not a member: the same 404 as for a project that does not exist.
    for browser in (p.carol, dave):
        hidden = error(browser.api("GET", "projects/demo"), 404)
        missing = error(browser.api("GET", "projects/no-such"), 404)
        assert hidden == missing.replace("no-such", "demo")
        hidden = error(browser.api("GET", "projects/demo/members"), 404)
        missing = error(browser.api("GET", "projects/no-such/members"), 404)
        assert hidden == missing.replace("no-such", "demo")
    error(p.carol.api("GET", "projects/birds"), 404)
    error(p.admin.api("GET", "projects/no-such"), 404)
    error(p.admin.api("GET", "projects/no-such/members"), 404)


def test_declared_settings_are_read_only_and_runtime_ones_belong_to_project_admins(hub):
    p = people(hub)
    dave = runtime_project(hub, p)
    for key, value in (
        ("description", "changed"),
        ("share_annotations", True),
        ("api_access", False),
    ):
        error(p.admin.api("PATCH", "projects/demo", {key: value}), 409, CONFIG, key)
    error(p.alice.api("PATCH", "projects/demo", {"description": "x"}), 403, "demo")
    error(p.bob.api("PATCH", "projects/demo", {"description": "x"}), 403, "demo")
    error(p.carol.api("PATCH", "projects/demo", {"description": "x"}), 404)
    error(dave.api("PATCH", "projects/demo", {"description": "x"}), 404)
    for browser in (p.admin, p.alice, p.bob):
        demo = ok(browser.api("GET", "projects/demo"))
        assert {k: demo[k] for k in DEMO} == DEMO

    changed = ok(
        dave.api("PATCH", "projects/birds", {"description": "Calls", "share_annotations": True})
    )
    assert {k: changed[k] for k in PROJECT_FIELDS} == {
        "slug": "birds",
        "description": "Calls",
        "share_annotations": True,
        "api_access": True,
        "role": "admin",
    }
    error(p.alice.api("PATCH", "projects/birds", {"description": "mine"}), 403, "birds")
    error(p.bob.api("PATCH", "projects/birds", {"api_access": False}), 403, "birds")
    error(p.carol.api("PATCH", "projects/birds", {"api_access": False}), 404)
    error(dave.api("PATCH", "projects/birds", {"share_annotations": "yes"}), 400)
    error(dave.api("PATCH", "projects/birds", {"slug": "owls"}), 400, "slug")
    error(dave.api("PATCH", "projects/birds", {"description": "x", "color": "red"}), 400)
    error(raw(dave, "PATCH", "projects/birds", b"description=x"), 400, "not valid JSON")
    seen = ok(p.alice.api("GET", "projects/birds"))
    assert (seen["description"], seen["share_annotations"], seen["api_access"]) == (
        "Calls",
        True,
        True,
    )
    assert seen["role"] == "annotator"
    assert ok(p.admin.api("PATCH", "projects/birds", {"api_access": False}))["api_access"] is False


def test_only_hub_admins_delete_projects_and_never_declared_ones(hub):
    p = people(hub)
    dave = runtime_project(hub, p)
    error(dave.api("DELETE", "projects/birds"), 403, "hub admins")
    error(p.alice.api("DELETE", "projects/birds"), 403)
    error(p.bob.api("DELETE", "projects/demo"), 403)
    error(p.carol.api("DELETE", "projects/birds"), 404)
    error(p.admin.api("DELETE", "projects/demo"), 409, CONFIG)
    assert slugs_and_roles(p.admin) == [("birds", "admin"), ("demo", "admin")]
    assert len(members(dave, "birds")) == 4

    assert ok(p.admin.api("DELETE", "projects/birds"), 204) == {}
    error(p.admin.api("GET", "projects/birds"), 404)
    error(dave.api("GET", "projects/birds"), 404)
    error(p.admin.api("DELETE", "projects/birds"), 404)
    assert slugs_and_roles(dave) == []
    assert slugs_and_roles(p.alice) == [("demo", "annotator")]
    # A new project of the same name starts with no members from the old one.
    ok(p.admin.api("POST", "projects", {"slug": "birds"}), 201)
    assert members(p.admin, "birds") == [{"name": "admin", "role": "admin", "source": "api"}]
    error(dave.api("GET", "projects/birds"), 404)


# -- members ------------------------------------------------------------------------------


def test_members_are_read_by_members(hub):
    p = people(hub)
    dave = runtime_project(hub, p)
    for browser in (p.admin, p.alice, p.bob):
        assert members(browser, "demo") == DEMO_MEMBERS
    birds = [
        {"name": "admin", "role": "admin", "source": "api"},
        {"name": "alice", "role": "annotator", "source": "api"},
        {"name": "bob", "role": "viewer", "source": "api"},
        {"name": "dave", "role": "admin", "source": "api"},
    ]
    for browser in (p.admin, p.alice, p.bob, dave):
        assert members(browser, "birds") == birds
    error(p.carol.api("GET", "projects/demo/members"), 404)
    error(p.carol.api("GET", "projects/birds/members"), 404)


def test_project_admins_manage_members_and_roles_apply_at_the_next_request(hub):
    p = people(hub)
    dave = runtime_project(hub, p)
    before = members(dave, "birds")
    error(p.alice.api("PUT", "projects/birds/members/carol", {"role": "viewer"}), 403)
    error(p.bob.api("PUT", "projects/birds/members/carol", {"role": "viewer"}), 403)
    error(p.carol.api("PUT", "projects/birds/members/carol", {"role": "viewer"}), 404)
    error(p.alice.api("PUT", "projects/birds/members/alice", {"role": "admin"}), 403)
    error(p.bob.api("DELETE", "projects/birds/members/alice"), 403)
    error(p.alice.api("DELETE", "projects/birds/members/bob"), 403)
    error(p.carol.api("DELETE", "projects/birds/members/bob"), 404)
    assert members(dave, "birds") == before
    error(p.carol.api("GET", "projects/birds"), 404)

    added = ok(dave.api("PUT", "projects/birds/members/carol", {"role": "viewer"}), 201)
    assert added == {"name": "carol", "role": "viewer", "source": "api", "show_others": True}
    assert ok(p.carol.api("GET", "projects/birds"))["role"] == "viewer"
    assert [m["name"] for m in members(p.carol, "birds")] == [
        "admin",
        "alice",
        "bob",
        "carol",
        "dave",
    ]
    error(p.carol.api("PATCH", "projects/birds", {"description": "x"}), 403)
    changed = ok(dave.api("PUT", "projects/birds/members/carol", {"role": "annotator"}))
    assert changed == {"name": "carol", "role": "annotator", "source": "api", "show_others": True}
    assert ok(p.carol.api("GET", "me"))["projects"] == [{"slug": "birds", "role": "annotator"}]
    assert ok(dave.api("PUT", "projects/birds/members/carol", {"role": "admin"}))["role"] == "admin"
    assert ok(p.carol.api("PATCH", "projects/birds", {"description": "by carol"}))["role"] == (
        "admin"
    )
    ok(p.carol.api("PUT", "projects/birds/members/carol", {"role": "viewer"}))
    error(p.carol.api("PATCH", "projects/birds", {"description": "again"}), 403)
    assert ok(dave.api("DELETE", "projects/birds/members/carol"), 204) == {}
    error(p.carol.api("GET", "projects/birds"), 404)
    assert ok(p.carol.api("GET", "me"))["projects"] == []
    error(dave.api("DELETE", "projects/birds/members/carol"), 404)
    assert members(dave, "birds") == before
    assert ok(dave.api("GET", "projects/birds"))["description"] == "by carol"

    # Service accounts can be members; the hub admin manages any project's members.
    ok(p.admin.api("POST", "users", {"name": "svc:model-x"}), 201)
    svc = ok(dave.api("PUT", "projects/birds/members/svc:model-x", {"role": "annotator"}), 201)
    assert svc == {"name": "svc:model-x", "role": "annotator", "source": "api", "show_others": True}
    ok(p.admin.api("DELETE", "projects/birds/members/svc:model-x"), 204)
    assert members(dave, "birds") == before


def test_member_rules_config_last_admin_and_bad_input(hub):
    p = people(hub)
    dave = runtime_project(hub, p)
    # Memberships from the config are read-only, even for the hub admin.
    error(p.admin.api("PUT", "projects/demo/members/alice", {"role": "viewer"}), 409, CONFIG)
    error(p.admin.api("PUT", "projects/demo/members/admin", {"role": "viewer"}), 409, CONFIG)
    error(p.admin.api("DELETE", "projects/demo/members/alice"), 409, CONFIG)
    error(p.alice.api("DELETE", "projects/demo/members/alice"), 403)
    assert members(p.bob, "demo") == DEMO_MEMBERS
    assert ok(p.alice.api("GET", "projects/demo"))["role"] == "annotator"
    # A runtime membership in a declared project is the API's to change.
    ok(p.admin.api("PUT", "projects/demo/members/carol", {"role": "viewer"}), 201)
    assert members(p.bob, "demo")[-1] == {"name": "carol", "role": "viewer", "source": "api"}
    ok(p.admin.api("DELETE", "projects/demo/members/carol"), 204)
    assert members(p.bob, "demo") == DEMO_MEMBERS

    # A project keeps at least one admin: dave demotes the creator, then is the last.
    ok(dave.api("PUT", "projects/birds/members/admin", {"role": "viewer"}))
    error(dave.api("PUT", "projects/birds/members/dave", {"role": "viewer"}), 409, "one admin")
    error(dave.api("DELETE", "projects/birds/members/dave"), 409, "one admin")
    error(p.admin.api("DELETE", "projects/birds/members/dave"), 409, "one admin")
    birds = {m["name"]: m["role"] for m in members(dave, "birds")}
    assert birds == {"admin": "viewer", "alice": "annotator", "bob": "viewer", "dave": "admin"}
    assert ok(dave.api("GET", "projects/birds"))["role"] == "admin"
    # The hub admin is still an implicit admin of birds.
    assert ok(p.admin.api("GET", "projects/birds"))["role"] == "admin"

    error(
        dave.api("PUT", "projects/birds/members/carol", {"role": "owner"}),
        400,
        "'role' must be one of viewer, annotator, admin",
    )
    error(dave.api("PUT", "projects/birds/members/carol", {"role": 1}), 400, "role")
    error(dave.api("PUT", "projects/birds/members/carol", {}), 400, "role")
    error(dave.api("PUT", "projects/birds/members/carol", {"role": "viewer", "x": 1}), 400)
    error(raw(dave, "PUT", "projects/birds/members/carol", b"viewer"), 400, "not valid JSON")
    error(dave.api("PUT", "projects/birds/members/nobody", {"role": "viewer"}), 404, "nobody")
    error(dave.api("DELETE", "projects/birds/members/nobody"), 404)
    error(p.admin.api("PUT", "projects/no-such/members/carol", {"role": "viewer"}), 404)
    assert {m["name"]: m["role"] for m in members(dave, "birds")} == birds
    error(p.carol.api("GET", "projects/birds"), 404)


# -- pages --------------------------------------------------------------------------------


def test_pages_follow_the_same_roles(hub):
    p = people(hub)
    users = p.admin.get("/hub/annotations/users")
    assert users.status_code == 200 and "carol" in users.text
    assert p.alice.get("/hub/annotations/users").status_code == 403
    assert p.carol.get("/hub/annotations/users").status_code == 403
    projects = p.alice.get("/hub/annotations/projects")
    assert projects.status_code == 200
    assert 'data-project="demo"' in projects.text
    outsider = p.carol.get("/hub/annotations/projects")
    assert outsider.status_code == 200 and 'data-project="demo"' not in outsider.text
    demo = p.bob.get("/hub/annotations/projects/demo")
    assert demo.status_code == 200 and "alice" in demo.text
    assert p.carol.get("/hub/annotations/projects/demo").status_code == 404
    assert p.carol.get("/hub/annotations/projects/no-such").status_code == 404
    assert p.admin.get("/hub/annotations/projects/no-such").status_code == 404
    anonymous = Browser(hub).get("/hub/annotations/projects", allow_redirects=False)
    assert anonymous.status_code == 302 and "/hub/login" in anonymous.headers["Location"]


# -- XSRF and anonymous -------------------------------------------------------------------


def test_session_writes_without_the_xsrf_header_are_refused(hub):
    p = people(hub)
    dave = runtime_project(hub, p)
    before_users = ok(p.admin.api("GET", "users"))["items"]
    before_birds = members(p.admin, "birds")
    for browser, method, path, body in (
        (p.admin, "POST", "users", {"name": "mallory"}),
        (p.admin, "PATCH", "users/alice", {"active": False}),
        (p.admin, "DELETE", "users/carol", None),
        (p.admin, "POST", "users/bob/link", None),
        (p.admin, "POST", "projects", {"slug": "fish"}),
        (p.admin, "DELETE", "projects/birds", None),
        (dave, "PATCH", "projects/birds", {"description": "forged"}),
        (dave, "PUT", "projects/birds/members/carol", {"role": "admin"}),
        (dave, "DELETE", "projects/birds/members/bob", None),
    ):
        url = f"{hub.url}/hub/annotations/api/{path}"
        for headers in ({}, {"X-XSRFToken": "not-the-token"}):
            answer = browser.http.request(method, url, json=body, headers=headers, timeout=30)
            error(answer, 403)
    assert ok(p.admin.api("GET", "users"))["items"] == before_users
    assert members(p.admin, "birds") == before_birds
    assert slugs_and_roles(p.admin) == [("birds", "admin"), ("demo", "admin")]
    assert ok(p.admin.api("GET", "projects/birds"))["description"] == "Bird calls"
    login(hub, "bob")  # no link was issued and used behind his back
    # The same requests with the header work (the session itself is fine).
    ok(dave.api("PATCH", "projects/birds", {"description": "real"}))


ANONYMOUS_ROUTES = [
    ("GET", "me"),
    ("GET", "users"),
    ("POST", "users"),
    ("GET", "users/alice"),
    ("PATCH", "users/alice"),
    ("DELETE", "users/alice"),
    ("POST", "users/alice/link"),
    ("GET", "projects"),
    ("POST", "projects"),
    ("GET", "projects/demo"),
    ("PATCH", "projects/demo"),
    ("DELETE", "projects/demo"),
    ("GET", "projects/no-such"),
    ("GET", "projects/demo/members"),
    ("PUT", "projects/demo/members/alice"),
    ("DELETE", "projects/demo/members/alice"),
]


def test_anonymous_requests_get_401_json_on_every_route(hub):
    anonymous = requests.Session()
    for method, path in ANONYMOUS_ROUTES:
        body = {"role": "viewer"} if method == "PUT" else {"name": "x"}
        answer = anonymous.request(
            method,
            f"{hub.url}/hub/annotations/api/{path}",
            json=body if method in ("POST", "PUT", "PATCH") else None,
            allow_redirects=False,
            timeout=30,
        )
        assert "Location" not in answer.headers, (method, path)
        error(answer, 401)
    # Nothing happened: the demo and its members are as declared.
    admin = logged_in_admin(hub)
    assert names(ok(admin.api("GET", "users"))) == ["admin", "alice", "bob"]
    assert members(admin, "demo") == DEMO_MEMBERS
