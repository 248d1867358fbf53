"""End-to-end: personal access tokens (SPEC sections 6 and 8) on a real hub.

Each test starts one hub (SQLite and PostgreSQL) with the demo config: project ``demo``
declares admin=admin, alice=annotator, bob=viewer; `people` adds the outsider carol and
`runtime_project` the project ``birds`` whose admin dave is no hub admin. Every token a
test is handed is recorded, and the `issued` fixture greps the test's whole hub log for
each of them when the hub has stopped: a plaintext token must never be logged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
import time
from datetime import datetime, timedelta

import pytest
import requests
from jupyterhub_annotations.authenticator.models import Token, utcnow
from jupyterhub_annotations.authenticator.store import Store
from jupyterhub_annotations.authenticator.tokens import generate
from sqlalchemy import update
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.hub import Browser
from tests.test_e2e_accounts import give_password, logged_in_admin
from tests.test_e2e_projects import PASSWORDS, error, login, ok, people, runtime_project

pytestmark = pytest.mark.e2e

API = "/hub/annotations/api/"
TOKEN = re.compile(r"anno_[0-9A-Za-z]{49}")
TOKEN_FIELDS = {"id", "name", "scopes", "projects", "created_at", "expires_at", "last_used_at"}
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
READ, WRITE = "annotations:read", "annotations:write"
MANAGE, TOKENS, USERS = "projects:manage", "tokens:manage", "users:manage"


@pytest.fixture(autouse=True)
def issued(tmp_path):
    """Every plaintext token of this test; at the end (after the hubs stopped and their
    logs are complete) none of them, nor its secret part, may be in any hub log."""
    plaintexts: list[str] = []
    yield plaintexts
    logs = {path: path.read_text() for path in sorted(tmp_path.glob("hub*/hub.log"))}
    assert logs or not plaintexts, "tokens were issued but no hub log was found"
    leaked = [
        (path.parent.name, plaintext[:9] + "...")
        for path, text in logs.items()
        for plaintext in plaintexts
        if plaintext in text or plaintext[5:21] in text
    ]
    assert not leaked, f"plaintext tokens in the hub log: {leaked}"


def call(hub, token: str, method: str, path: str, body=None, scheme: str = "Bearer"):
    """Our API with ``Authorization: <scheme> <token>`` and no cookie."""
    return requests.request(
        method,
        f"{hub.url}{API}{path}",
        json=body,
        headers={"Authorization": f"{scheme} {token}"},
        timeout=30,
    )


def post_token(issued: list, hub, caller: Browser | str, body: dict) -> requests.Response:
    """POST tokens as a browser session or with a token; a plaintext answered is recorded."""
    if isinstance(caller, Browser):
        answer = caller.api("POST", "tokens", body)
    else:
        answer = call(hub, caller, "POST", "tokens", body)
    if answer.status_code == 201:
        issued.append(answer.json()["token"])
        assert answer.headers["Cache-Control"] == "no-store"  # the plaintext, shown once
    return answer


def mint(issued: list, hub, caller: Browser | str, **body) -> dict:
    made = ok(post_token(issued, hub, caller, body), 201)
    assert set(made) >= TOKEN_FIELDS | {"token"}
    assert TOKEN.fullmatch(made["token"]), made["token"][:9]
    return made


def tokens_of(browser: Browser, query: str = "") -> list[dict]:
    listing = ok(browser.api("GET", f"tokens{query}"))
    assert set(listing) >= {"items", "next"}
    for item in listing["items"]:
        assert TOKEN_FIELDS <= set(item)
        assert "token" not in item and "digest" not in item
    return listing["items"]


def changed(token: str, position: int) -> str:
    other = BASE62[(BASE62.index(token[position]) + 1) % 62]
    return token[:position] + other + token[position + 1 :]


def expire_now(db_url: str, token_id: int) -> None:
    """Let a token run out without waiting days: move its expiry into the past."""
    store = Store(db_url)
    try:
        with store.transaction() as s:
            s.execute(
                update(Token)
                .where(Token.id == token_id)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
    finally:
        store.dispose()


def hub_api_token(browser: Browser, name: str) -> str:
    """A JupyterHub API token of the browser's user, made through JupyterHub's REST API."""
    browser.api("GET", "me")  # fetches the XSRF token
    made = browser.http.post(
        f"{browser.hub.url}/hub/api/users/{name}/tokens",
        json={"note": "not an annotation token", "expires_in": 600},
        headers={"X-XSRFToken": browser._xsrf},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    return made.json()["token"]


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


# -- authentication -----------------------------------------------------------------------


# The expiry below is moved in the database by this test process, not through the hub: an
# out-of-process change, which the hub's access cache may miss for up to
# `access_cache_seconds`. This hub keeps that short and the test waits it out (rather
# than switching the cache off), so every other change here (revoke, deactivate,
# delete) is still checked against a warm cache: those apply at the very next request.
CACHE_SECONDS = 1.0


def test_bearer_and_token_schemes_work_and_bad_tokens_get_401(make_hub, issued, db_url):
    hub = make_hub(f"c.AnnotationAuthenticator.access_cache_seconds = {CACHE_SECONDS}")
    p = people(hub)
    made = mint(issued, hub, p.alice, name="laptop")
    assert made["name"] == "laptop" and made["scopes"] == [READ] and made["projects"] is None
    assert made["last_used_at"] is None
    lifetime = when(made["expires_at"]) - when(made["created_at"])
    assert lifetime == timedelta(days=90)  # the default: the maximum
    listed = tokens_of(p.alice)
    assert [(t["id"], t["name"], t["last_used_at"]) for t in listed] == [
        (made["id"], "laptop", None)
    ]
    token = made["token"]
    for scheme in ("Bearer", "token", "bearer", "Token"):
        me = ok(call(hub, token, "GET", "me", scheme=scheme))
        assert (me["name"], me["admin"], me["kind"], me["auth"]) == (
            "alice",
            False,
            "user",
            "token",
        )
        assert me["scopes"] == [READ]
        assert me["projects"] == [{"slug": "demo", "role": "annotator"}]
    # The use shows in the list (without a database write per request).
    (used,) = tokens_of(p.alice)
    assert used["last_used_at"] is not None
    assert when(used["last_used_at"]) >= when(made["created_at"])

    error(call(hub, "anno_short", "GET", "me"), 401, "malformed")
    error(call(hub, token[:-1], "GET", "me"), 401, "malformed")  # truncated
    error(call(hub, token + "x", "GET", "me"), 401, "malformed")
    for position in (5, 30, len(token) - 1):  # secret start, middle, checksum
        error(call(hub, changed(token, position), "GET", "me"), 401, "checksum")
    error(call(hub, generate(), "GET", "me"), 401, "revoked or unknown")  # never issued
    error(call(hub, "", "GET", "me"), 401, "Bearer")
    error(call(hub, token, "GET", "me", scheme="Basic"), 401, "Bearer")
    # JupyterHub's own API tokens are refused here, though the hub takes them.
    hub_token = hub_api_token(p.alice, "alice")
    hub_user = requests.get(
        f"{hub.url}/hub/api/user", headers={"Authorization": f"token {hub_token}"}, timeout=30
    )
    assert hub_user.json()["name"] == "alice"
    for scheme in ("token", "Bearer"):
        error(call(hub, hub_token, "GET", "me", scheme=scheme), 401, "JupyterHub")

    # Expired (its expiry moved into the past in the database).
    short = mint(issued, hub, p.alice, name="short", expires_in_days=1)
    assert when(short["expires_at"]) - when(short["created_at"]) == timedelta(days=1)
    ok(call(hub, short["token"], "GET", "me"))
    expire_now(db_url, short["id"])
    time.sleep(CACHE_SECONDS + 0.2)  # the bound on seeing another process's change
    error(call(hub, short["token"], "GET", "me"), 401, "expired")
    # Revoked by its owner.
    ok(p.alice.api("DELETE", f"tokens/{made['id']}"), 204)
    error(call(hub, token, "GET", "me"), 401, "revoked")
    assert [t["name"] for t in tokens_of(p.alice)] == ["short"]  # revoked ones are gone
    # A deactivated user's token fails at the next request; a deleted one's too.
    bobs = mint(issued, hub, p.bob, name="bobs")["token"]
    carols = mint(issued, hub, p.carol, name="carols")["token"]
    ok(call(hub, bobs, "GET", "projects/demo"))
    ok(call(hub, carols, "GET", "me"))
    assert ok(p.admin.api("PATCH", "users/bob", {"active": False}))["active"] is False
    error(call(hub, bobs, "GET", "me"), 401, "deactivated")
    error(call(hub, bobs, "GET", "projects/demo"), 401, "deactivated")
    ok(p.admin.api("DELETE", "users/carol"), 204)
    error(call(hub, carols, "GET", "me"), 401, "revoked or unknown")


# -- effective rights ---------------------------------------------------------------------


def test_effective_rights_are_scopes_roles_projects_and_api_access_now(hub, issued):
    p = people(hub)
    dave = runtime_project(hub, p)  # birds: admin, dave admin; alice annotator; bob viewer
    full = mint(issued, hub, dave, name="full", scopes=[READ, WRITE, MANAGE, TOKENS])["token"]
    ok(call(hub, full, "PATCH", "projects/birds", {"description": "Bird calls 2"}))
    ok(call(hub, full, "PUT", "projects/birds/members/carol", {"role": "viewer"}), 201)
    assert ok(call(hub, full, "GET", "me"))["projects"] == [{"slug": "birds", "role": "admin"}]

    # A role change takes effect at the token's next request.
    ok(p.admin.api("PUT", "projects/birds/members/dave", {"role": "annotator"}))
    error(call(hub, full, "PATCH", "projects/birds", {"description": "x"}), 403, "annotator")
    assert ok(call(hub, full, "GET", "projects/birds"))["role"] == "annotator"
    ok(p.admin.api("DELETE", "projects/birds/members/dave"), 204)
    error(call(hub, full, "GET", "projects/birds"), 404, "'birds'")
    assert ok(call(hub, full, "GET", "me"))["projects"] == []
    ok(p.admin.api("PUT", "projects/birds/members/dave", {"role": "admin"}), 201)
    ok(call(hub, full, "PATCH", "projects/birds", {"description": "Bird calls 3"}))

    # api_access off: tokens are refused at their next request, sessions are not.
    alices = mint(issued, hub, p.alice, name="alices", scopes=[READ, WRITE])["token"]
    ok(call(hub, alices, "GET", "projects/birds"))
    assert ok(dave.api("PATCH", "projects/birds", {"api_access": False}))["api_access"] is False
    for token, method, path, body in (
        (full, "GET", "projects/birds", None),
        (full, "GET", "projects/birds/members", None),
        (full, "PATCH", "projects/birds", {"api_access": True}),
        (full, "PUT", "projects/birds/members/carol", {"role": "annotator"}),
        (alices, "GET", "projects/birds", None),
    ):
        error(call(hub, token, method, path, body), 403, "API access")
    ok(dave.api("GET", "projects/birds"))
    ok(p.alice.api("GET", "projects/birds/members"))
    ok(call(hub, alices, "GET", "projects/demo"))  # other projects are untouched
    ok(dave.api("PATCH", "projects/birds", {"api_access": True}))
    ok(call(hub, alices, "GET", "projects/birds"))
    assert ok(call(hub, full, "GET", "projects/birds"))["description"] == "Bird calls 3"

    # A read-only (or write) token of a project admin cannot manage the project.
    for scopes in ([READ], [WRITE], [READ, WRITE]):
        weak = mint(issued, hub, dave, name=f"weak {scopes}", scopes=scopes)["token"]
        ok(call(hub, weak, "GET", "projects/birds/members"))
        for method, path, body in (
            ("PUT", "projects/birds/members/carol", {"role": "annotator"}),
            ("PUT", "projects/birds/members/bob", {"role": "annotator"}),
            ("DELETE", "projects/birds/members/carol", None),
            ("PATCH", "projects/birds", {"description": "changed"}),
        ):
            error(call(hub, weak, method, path, body), 403, "projects:manage")
        error(call(hub, weak, "GET", "tokens"), 403, "tokens:manage")
        error(call(hub, weak, "POST", "tokens", {"name": "x"}), 403, "tokens:manage")
        error(call(hub, weak, "DELETE", "projects/birds"), 403)
    listing = ok(dave.api("GET", "projects/birds/members"))["items"]
    assert {m["name"]: m["role"] for m in listing} == {
        "admin": "admin",
        "alice": "annotator",
        "bob": "viewer",
        "carol": "viewer",
        "dave": "admin",
    }
    assert ok(dave.api("GET", "projects/birds"))["description"] == "Bird calls 3"

    # A token restricted to projects sees only those.
    demo_only = mint(issued, hub, p.alice, name="demo only", projects=["demo"])["token"]
    ok(call(hub, demo_only, "GET", "projects/demo"))
    error(call(hub, demo_only, "GET", "projects/birds"), 404, "'birds'")
    error(call(hub, demo_only, "GET", "projects/birds/members"), 404)
    me = ok(call(hub, demo_only, "GET", "me"))
    assert me["projects"] == [{"slug": "demo", "role": "annotator"}]
    listed = ok(call(hub, demo_only, "GET", "projects"))["items"]
    assert [x["slug"] for x in listed] == ["demo"]

    # Hub admin rights follow the account's admin flag at every request.
    ok(p.admin.api("PATCH", "users/alice", {"admin": True}))
    users = mint(issued, hub, p.alice, name="users", scopes=[USERS])["token"]
    assert "carol" in [u["name"] for u in ok(call(hub, users, "GET", "users"))["items"]]
    error(call(hub, users, "GET", "projects/birds"), 403)  # no annotations scope
    ok(p.admin.api("PATCH", "users/alice", {"admin": False}))
    error(call(hub, users, "GET", "users"), 403, "hub admin")
    error(call(hub, users, "POST", "users", {"name": "mallory"}), 403)
    assert "mallory" not in [u["name"] for u in ok(p.admin.api("GET", "users"))["items"]]
    # The hub admin's own token without users:manage cannot manage users.
    reader = mint(issued, hub, p.admin, name="reader")["token"]
    error(call(hub, reader, "GET", "users"), 403, "users:manage")
    error(call(hub, reader, "POST", "projects", {"slug": "fish"}), 403, "projects:manage")
    ok(call(hub, reader, "GET", "projects/birds"))  # an implicit admin of every project


# -- issuing, listing, revoking ------------------------------------------------------------


def test_a_token_cannot_mint_a_broader_token(hub, issued):
    p = people(hub)
    runtime_project(hub, p)  # alice is an annotator in demo and birds
    parent = mint(
        issued,
        hub,
        p.alice,
        name="parent",
        scopes=[READ, TOKENS],
        projects=["demo"],
        expires_in_days=10,
    )
    token = parent["token"]
    for body, words in (
        ({"scopes": [READ, WRITE], "projects": ["demo"]}, "more scopes"),
        ({"scopes": [MANAGE], "projects": ["demo"]}, "more scopes"),
        ({}, "restricted to projects"),  # no projects: all of alice's
        ({"projects": None}, "restricted to projects"),
        ({"projects": ["demo", "birds"]}, "restricted to projects"),
        ({"projects": ["birds"]}, "restricted to projects"),
        ({"projects": ["demo"], "expires_in_days": 11}, "outlives"),
        ({"projects": ["demo"], "expires_in_days": 10}, "outlives"),  # 10 days from now
    ):
        error(post_token(issued, hub, token, {"name": "child", **body}), 403, words)
    child = mint(issued, hub, token, name="child", projects=["demo"])
    assert child["scopes"] == [READ] and child["projects"] == ["demo"]
    assert child["expires_at"] == parent["expires_at"]  # by default it ends with its parent
    shorter = mint(
        issued,
        hub,
        token,
        name="shorter",
        scopes=[READ, TOKENS],
        projects=["demo"],
        expires_in_days=9,
    )
    assert when(shorter["expires_at"]) < when(parent["expires_at"])
    # Without tokens:manage a token mints nothing.
    refused = post_token(issued, hub, child["token"], {"name": "grand", "projects": ["demo"]})
    error(refused, 403, "tokens:manage")
    assert sorted(t["name"] for t in tokens_of(p.alice)) == ["child", "parent", "shorter"]
    me = ok(call(hub, child["token"], "GET", "me"))
    assert me["scopes"] == [READ] and me["projects"] == [{"slug": "demo", "role": "annotator"}]


def test_bad_token_requests_are_400_and_create_nothing(hub, issued):
    admin = logged_in_admin(hub)
    give_password(hub, admin, "alice", PASSWORDS["alice"])
    alice = login(hub, "alice")
    for body, words in (
        ({"name": "x", "scopes": [USERS]}, "users:manage"),  # alice can never hold it
        ({"name": "x", "scopes": [READ, USERS]}, "users:manage"),
        ({"name": "x", "scopes": ["annotations:delete"]}, "'scopes[0]' must be one of"),
        ({"name": "x", "scopes": ["*"]}, "'scopes[0]' must be one of"),
        ({"name": "x", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "x", "expires_in_days": 91}, "1 to 90"),
        ({"name": "x", "expires_in_days": -5}, "expires_in_days"),
        ({"name": "x", "expires_in_days": 1.5}, "expires_in_days"),
        ({"name": "x", "expires_in_days": "7"}, "expires_in_days"),
        ({"name": "x", "expires_in_days": True}, "expires_in_days"),
        ({"scopes": [READ]}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 7}, "name"),
        ({"name": "x", "projects": []}, "empty"),
        ({"name": "x", "projects": ["nowhere"]}, "'nowhere'"),
        ({"name": "x", "scopes": READ}, "scopes"),
        ({"name": "x", "scopes": [1]}, "'scopes[0]' must be a string"),
        ({"name": "x", "token": "anno_x"}, "Unknown fields"),
        # Reserved: the hub names the tokens of servers so and revokes them by name.
        ({"name": "server:default"}, "'server:' are reserved"),
        ({"name": "Server:gpu"}, "'server:' are reserved"),
    ):
        error(post_token(issued, hub, alice, body), 400, words)
    assert tokens_of(alice) == []
    # The bounds themselves are fine, and a hub admin may hold users:manage.
    one = mint(issued, hub, alice, name="one day", expires_in_days=1)
    assert when(one["expires_at"]) - when(one["created_at"]) == timedelta(days=1)
    mint(issued, hub, alice, name="max", expires_in_days=90)
    mint(issued, hub, admin, name="users", scopes=[USERS, READ])
    # Malformed bodies.
    for raw_body in (b"not json", b"[]", b'"x"'):
        answer = alice.http.post(
            f"{hub.url}{API}tokens",
            data=raw_body,
            headers={"X-XSRFToken": alice._xsrf, "Content-Type": "application/json"},
            timeout=30,
        )
        error(answer, 400)
    assert sorted(t["name"] for t in tokens_of(alice)) == ["max", "one day"]


def test_revoking_and_listing_own_and_everyones_tokens(hub, issued):
    p = people(hub)
    alices = mint(issued, hub, p.alice, name="a", scopes=[READ, TOKENS])
    bobs = mint(issued, hub, p.bob, name="b", scopes=[READ, TOKENS])
    admins = mint(issued, hub, p.admin, name="adm", scopes=[READ, TOKENS, USERS])
    # Somebody else's token is not found, so its existence does not leak.
    error(p.bob.api("DELETE", f"tokens/{alices['id']}"), 404)
    error(p.carol.api("DELETE", f"tokens/{alices['id']}"), 404)
    error(call(hub, bobs["token"], "DELETE", f"tokens/{alices['id']}"), 404)
    error(p.alice.api("DELETE", "tokens/999999999"), 404)
    ok(call(hub, alices["token"], "GET", "me"))  # still live
    # Own lists, by session and by token; everyone's for hub admins only.
    assert [t["id"] for t in tokens_of(p.alice)] == [alices["id"]]
    own = ok(call(hub, alices["token"], "GET", "tokens"))["items"]
    assert [t["id"] for t in own] == [alices["id"]]
    assert [t["name"] for t in tokens_of(p.admin)] == ["adm"]
    error(p.alice.api("GET", "tokens?all=1"), 403, "hub admin")
    error(call(hub, alices["token"], "GET", "tokens?all=1"), 403)
    everyone = {(t.get("owner"), t["name"]) for t in tokens_of(p.admin, "?all=1")}
    assert everyone == {("alice", "a"), ("bob", "b"), ("admin", "adm")}
    by_token = ok(call(hub, admins["token"], "GET", "tokens?all=1"))["items"]
    assert {t["id"] for t in by_token} == {alices["id"], bobs["id"], admins["id"]}
    without_users = mint(issued, hub, p.admin, name="tm", scopes=[TOKENS])
    error(call(hub, without_users["token"], "GET", "tokens?all=1"), 403, "users:manage")
    # Revoking somebody else's needs what listing everyone's does; one's own does not.
    error(
        call(hub, without_users["token"], "DELETE", f"tokens/{alices['id']}"), 403, "users:manage"
    )
    ok(call(hub, alices["token"], "GET", "me"))  # still live
    own = mint(issued, hub, p.admin, name="own", scopes=[READ])
    ok(call(hub, without_users["token"], "DELETE", f"tokens/{own['id']}"), 204)
    ok(call(hub, without_users["token"], "DELETE", f"tokens/{without_users['id']}"), 204)
    # A hub admin revokes anyone's, by session or by token.
    ok(p.admin.api("DELETE", f"tokens/{alices['id']}"), 204)
    error(call(hub, alices["token"], "GET", "me"), 401, "revoked")
    ok(call(hub, admins["token"], "DELETE", f"tokens/{bobs['id']}"), 204)
    error(call(hub, bobs["token"], "GET", "me"), 401, "revoked")
    error(p.admin.api("DELETE", f"tokens/{alices['id']}"), 404)  # gone already
    assert tokens_of(p.alice) == [] and tokens_of(p.bob) == []
    # DELETE tokens/current: a token revokes itself, even without tokens:manage.
    current = mint(issued, hub, p.alice, name="current", scopes=[READ])
    other = mint(issued, hub, p.alice, name="other", scopes=[READ])
    ok(call(hub, current["token"], "DELETE", "tokens/current"), 204)
    error(call(hub, current["token"], "GET", "me"), 401, "revoked")
    error(call(hub, current["token"], "DELETE", "tokens/current"), 401)
    ok(call(hub, other["token"], "GET", "me"))  # only itself
    error(p.alice.api("DELETE", "tokens/current"), 400, "session")
    assert [t["name"] for t in tokens_of(p.alice)] == ["other"]


TOKENS_PAGE = "/hub/annotations/tokens"


def revokes(admin: Browser) -> list[tuple]:
    """The ``token.revoke`` events of the audit log, oldest first: (actor, target, id)."""
    events = ok(admin.api("GET", "audit?action=token.revoke"))["items"]
    return [(e["actor"], e["target"], e["details"]["id"]) for e in reversed(events)]


def test_tokens_page_revokes_anyones_token_for_hub_admins_only(hub, issued):
    p = people(hub)
    alices = mint(issued, hub, p.alice, name="alices notebook", scopes=[READ])
    bobs = mint(issued, hub, p.bob, name="bobs script", scopes=[READ])

    # A non-admin's page has no "Everyone's tokens" and names nobody else's token.
    for person in (p.bob, p.carol):
        page = person.get(TOKENS_PAGE)
        assert page.status_code == 200, page.text
        assert 'id="everyones-tokens"' not in page.text
        assert "Everyone's tokens" not in page.text
        assert "alices notebook" not in page.text and "data-revoke-any" not in page.text

    # A forged post of the page's revoke form for alice's token: 404 as in the API, the
    # same answer as for an id that does not exist, and nothing is revoked or audited.
    forged = p.bob.post_form(TOKENS_PAGE, {"action": "revoke", "id": str(alices["id"])})
    assert forged.status_code == 404, forged.text
    assert f"You have no token with id {alices['id']}." in forged.text
    assert "alices notebook" not in forged.text
    unknown = p.bob.post_form(TOKENS_PAGE, {"action": "revoke", "id": "999999"})
    assert unknown.status_code == 404 and "You have no token with id 999999." in unknown.text
    assert (
        p.carol.post_form(TOKENS_PAGE, {"action": "revoke", "id": alices["id"]}).status_code == 404
    )
    ok(call(hub, alices["token"], "GET", "me"))  # still live
    assert [t["id"] for t in tokens_of(p.alice)] == [alices["id"]]
    assert revokes(p.admin) == []

    # The hub admin's page lists everyone's live tokens, each with its owner.
    page = p.admin.get(TOKENS_PAGE)
    assert page.status_code == 200, page.text
    assert 'id="everyones-tokens"' in page.text and "Everyone's tokens" in page.text
    for token, owner in ((alices, "alice"), (bobs, "bob")):
        row = f'data-any-token-id="{token["id"]}" data-owner="{owner}"'
        assert row in page.text
        assert f'data-revoke-any="{token["id"]}"' in page.text
    # Its Revoke button posts the same form: alice's token is revoked and audited.
    revoked = p.admin.post_form(TOKENS_PAGE, {"action": "revoke", "id": str(alices["id"])})
    assert revoked.status_code == 200, revoked.text
    assert "Token &#39;alices notebook&#39; of alice revoked" in revoked.text
    assert f'data-any-token-id="{alices["id"]}"' not in revoked.text
    assert f'data-any-token-id="{bobs["id"]}"' in revoked.text
    error(call(hub, alices["token"], "GET", "me"), 401, "revoked")
    ok(call(hub, bobs["token"], "GET", "me"))  # only that one
    assert tokens_of(p.alice) == []
    assert revokes(p.admin) == [("admin", "alice", alices["id"])]
    # Once revoked, it is gone for the admin too.
    again = p.admin.post_form(TOKENS_PAGE, {"action": "revoke", "id": str(alices["id"])})
    assert again.status_code == 404, again.text
    assert revokes(p.admin) == [("admin", "alice", alices["id"])]


def test_live_tokens_are_capped_and_names_unique_per_user(make_hub, issued):
    hub = make_hub("c.AnnotationAuthenticator.token_max_live_per_user = 3")
    admin = logged_in_admin(hub)
    give_password(hub, admin, "alice", PASSWORDS["alice"])
    alice = login(hub, "alice")
    first = mint(issued, hub, alice, name="a")
    error(post_token(issued, hub, alice, {"name": "a"}), 409, "'a'")
    error(post_token(issued, hub, alice, {"name": "a", "scopes": [WRITE]}), 409, "'a'")
    mint(issued, hub, alice, name="b")
    mint(issued, hub, alice, name="c")
    error(post_token(issued, hub, alice, {"name": "d"}), 409, "3 live tokens")
    mint(issued, hub, admin, name="a")  # another user: own names, own cap
    ok(alice.api("DELETE", f"tokens/{first['id']}"), 204)
    again = mint(issued, hub, alice, name="a")  # the name is free after revocation
    assert again["id"] != first["id"]
    error(call(hub, first["token"], "GET", "me"), 401, "revoked")
    ok(call(hub, again["token"], "GET", "me"))
    error(post_token(issued, hub, alice, {"name": "d"}), 409, "live tokens")
    assert sorted(t["name"] for t in tokens_of(alice)) == ["a", "b", "c"]


# -- secrets stay out of the log -----------------------------------------------------------


def test_no_plaintext_token_reaches_the_hub_log(hub, issued):
    admin = logged_in_admin(hub)
    minter = mint(issued, hub, admin, name="minter", scopes=[READ, TOKENS, USERS, MANAGE])
    child = mint(issued, hub, minter["token"], name="child")
    for token in (minter["token"], child["token"]):
        for method, path, body in (
            ("GET", "me", None),
            ("GET", "nothing-here", None),  # 404 route
            ("PUT", "me", None),  # 405
            ("GET", "projects/nowhere", None),  # 404
            ("POST", "tokens", {"name": ""}),  # 400
            ("POST", "tokens", {"name": "child"}),  # 409 or 403
            ("POST", "users", {"name": "Not Valid!"}),  # 400 or 403
            ("GET", "tokens?all=1", None),
        ):
            call(hub, token, method, path, body)
        for bad in (token[:-1], changed(token, 12), token + "0"):
            error(call(hub, bad, "GET", "me"), 401)
        # At the hub's own routes and pages, where it means nothing.
        for path in ("/hub/api/user", "/hub/home", "/hub/annotations/tokens", "/user/admin/"):
            requests.get(
                f"{hub.url}{path}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
                allow_redirects=False,
            )
    # A token in the query string is not accepted, and not logged either.
    error(requests.get(f"{hub.url}{API}me?token={minter['token']}", timeout=30), 401)
    ok(call(hub, child["token"], "DELETE", "tokens/current"), 204)
    error(call(hub, child["token"], "GET", "me"), 401)
    ok(admin.api("DELETE", f"tokens/{minter['id']}"), 204)
    error(call(hub, minter["token"], "GET", "me"), 401)
    log = hub.log()
    # The events are logged (as audit lines)...
    assert "token.create" in log and "token.revoke" in log
    for plaintext in issued:
        assert plaintext not in log and plaintext[5:21] not in log  # ...never the secrets


# -- a spawned single-user server calls the API with its injected token --------------------

# Run inside the server (through its terminal): call ``me`` with the injected token and
# print the result between markers. Sent base64-encoded so the terminal's echo of the
# command line cannot be mistaken for the answer.
PROBE = """
import json, os, urllib.error, urllib.request
url, token = os.environ.get("ANNOTATIONS_API_URL", ""), os.environ.get("ANNOTATIONS_TOKEN", "")
result = {"url": url, "token": token}
try:
    request = urllib.request.Request(url + "me", headers={"Authorization": "Bearer " + token})
    try:
        answer = urllib.request.urlopen(request, timeout=20)
    except urllib.error.HTTPError as e:
        answer = e
    result.update(status=answer.status, body=answer.read().decode())
except Exception as e:
    result.update(error=repr(e))
print("RESULT", json.dumps(result), "END")
"""
RESULT = re.compile(r"RESULT (\{.*?\}) END")


def run_in_terminal(server: str, hub_token: str, command: str, timeout: float = 60) -> str:
    """Type ``command`` into a new terminal of ``server`` (a single-user server URL) and
    return what it printed once RESULT appears (or whatever it printed in ``timeout``)."""
    headers = {"Authorization": f"token {hub_token}"}
    made = requests.post(f"{server}/api/terminals", headers=headers, timeout=30)
    assert made.status_code == 200, made.text
    url = f"{server.replace('http', 'ws', 1)}/terminals/websocket/{made.json()['name']}"
    output: list[str] = []

    async def talk() -> None:
        ws = await websocket_connect(HTTPRequest(url, headers=headers))
        ws.write_message(json.dumps(["stdin", command + "\r"]))
        while not RESULT.search("".join(output)):
            message = await ws.read_message()
            if message is None:
                break
            kind, *data = json.loads(message)
            if kind == "stdout":
                output.append(data[0])
        ws.close()

    try:
        asyncio.run(asyncio.wait_for(talk(), timeout))
    except TimeoutError:
        pass
    return "".join(output)


def wait_for(predicate, what: str, hub, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}:\n{hub.log()[-3000:]}")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_spawned_server_uses_its_injected_token_until_it_stops(make_hub, issued):
    hub = make_hub(
        'c.AnnotationAuthenticator.inject_token_scopes = ["annotations:read", "annotations:write"]'
    )
    admin = logged_in_admin(hub)
    xsrf = re.search(r'xsrf_token: "([^"]+)"', admin.get("/hub/home").text).group(1)

    def hub_api(method: str, path: str, **kw) -> requests.Response:
        return admin.http.request(
            method, f"{hub.url}/hub/api/{path}", headers={"X-XSRFToken": xsrf}, timeout=60, **kw
        )

    def servers() -> dict:
        return hub_api("GET", "users/admin").json()["servers"]

    started = hub_api("POST", "users/admin/server")
    assert started.status_code in (201, 202), started.text
    wait_for(lambda: servers().get("", {}).get("ready"), "the server to be ready", hub)
    # The server's token is listed like any other, by name and without its plaintext.
    (listed,) = tokens_of(admin)
    assert listed["name"] == "server:default" and listed["scopes"] == [READ, WRITE]

    hub_token = hub_api("POST", "users/admin/tokens", json={"expires_in": 600}).json()["token"]
    encoded = base64.b64encode(PROBE.encode()).decode()
    command = f"{sys.executable} -c \"import base64; exec(base64.b64decode('{encoded}'))\""
    output = run_in_terminal(f"{hub.url}/user/admin", hub_token, command)
    found = RESULT.search(output)
    assert found, f"no result from the terminal:\n{output[-3000:]}"
    result = json.loads(found.group(1))
    token = result["token"]
    issued.append(token)
    assert TOKEN.fullmatch(token), result
    assert result["url"].startswith("http") and result["url"].endswith("/hub/annotations/api/")
    assert result.get("status") == 200, result
    me = json.loads(result["body"])
    assert (me["name"], me["auth"], me["scopes"]) == ("admin", "token", [READ, WRITE])
    assert me["projects"] == [{"slug": "demo", "role": "admin"}]
    # The same token from outside: it can read but not manage (read+write only).
    ok(call(hub, token, "GET", "projects/demo"))
    error(call(hub, token, "PATCH", "projects/demo", {"description": "x"}), 403)
    error(call(hub, token, "GET", "users"), 403)

    stopped = hub_api("DELETE", "users/admin/server")
    assert stopped.status_code in (202, 204), stopped.text
    wait_for(lambda: not servers(), "the server to stop", hub)
    # Revoked at post_spawn_stop: the token dies with its server.
    wait_for(
        lambda: call(hub, token, "GET", "me").status_code == 401, "the token's revocation", hub
    )
    error(call(hub, token, "GET", "me"), 401, "revoked")
    assert tokens_of(admin) == []
    assert token not in hub.log() and token[5:21] not in hub.log()
