"""End-to-end: annotations (SPEC sections 7, 8 and 10; issue 5) on a real hub.

One hub per backend (SQLite, PostgreSQL) serves the whole module, to keep its runtime
reasonable: starting a hub and logging people in costs seconds, and these tests need
many people. Every test works in projects of its own (made through the API), so the
tests do not see each other's annotations; the hub is the demo config (project ``demo``:
admin=admin, alice=annotator, bob=viewer) with a small ``annotation_max_bytes``. The
crash test kills and restarts that hub: only tests that need no more than a healthy hub
come after it.

As in `test_e2e_tokens`, every plaintext token a test is handed is recorded, and the
module's hub log is searched for each of them once the hub has stopped.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.conftest import PROXY, require
from tests.hub import Browser, Hub
from tests.test_e2e_projects import People, error, ok, people, runtime_project
from tests.test_e2e_tokens import TOKEN

pytestmark = pytest.mark.e2e

API = "/hub/annotations/api/"
READ, WRITE = "annotations:read", "annotations:write"
ANNOTATION_FIELDS = {"project", "item", "owner", "data", "version", "created_at", "updated_at"}
MAX_BYTES = 1000  # c.AnnotationAuthenticator.annotation_max_bytes of this module's hub
EXTRA_CONFIG = f"c.AnnotationAuthenticator.annotation_max_bytes = {MAX_BYTES}\n"
NOTHING = object()


# -- the module's hub and its people ------------------------------------------------------


class Client:
    """A script with a PAT: its own connection pool, no cookie, no XSRF."""

    def __init__(self, hub: Hub, token: str) -> None:
        self.hub = hub
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def __call__(
        self,
        method: str,
        path: str,
        body: object = NOTHING,
        headers: dict | None = None,
        raw: bytes | None = None,
        timeout: float = 60,
    ) -> requests.Response:
        kw: dict = {"headers": headers or {}, "timeout": timeout}
        if raw is not None:
            kw["data"] = raw
            kw["headers"] = {"Content-Type": "application/json", **kw["headers"]}
        elif body is not NOTHING:
            kw["json"] = body
        return self.http.request(method, f"{self.hub.url}{API}{path}", **kw)


@dataclass
class World:
    hub: Hub
    db_url: str
    issued: list[str]  # every plaintext token handed out (none may reach the log)
    p: People
    dave: Browser  # admin of the runtime project birds, no hub admin
    browsers: dict[str, Browser] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)

    def browser(self, name: str) -> Browser:
        if name not in self.browsers:
            self.browsers[name] = self.person(name)
        return self.browsers[name]

    def person(self, name: str) -> Browser:
        """A new account with a password (created by the hub admin), logged in."""
        made = ok(self.p.admin.api("POST", "users", {"name": name}), 201)
        password = f"{name}s passphrase 12345"
        assert Browser(self.hub).set_password(made["link"], password).status_code == 200
        browser = Browser(self.hub)
        home = browser.login(name, password)
        assert home.status_code == 200 and "/hub/login" not in home.url, home.text
        return browser

    def token(self, name: str, scopes=(READ, WRITE), label: str | None = None) -> str:
        """A new PAT of ``name``, made through the API with their session."""
        body = {"name": label or f"t-{uuid.uuid4().hex[:10]}", "scopes": list(scopes)}
        made = ok(self.browser(name).api("POST", "tokens", body), 201)
        self.issued.append(made["token"])
        assert TOKEN.fullmatch(made["token"])
        return made["token"]

    def client(self, name: str, scopes=(READ, WRITE)) -> Client:
        """``name``'s script (one per name and scopes, made on first use)."""
        key = f"{name} {sorted(scopes)}"
        if key not in self.clients:
            self.clients[key] = Client(self.hub, self.token(name, scopes))
        return self.clients[key]

    def forget(self, name: str) -> None:
        """Drop ``name``'s browser and scripts (their account is gone)."""
        self.browsers.pop(name, None)
        for key in [k for k in self.clients if k.split(" ")[0] == name]:
            del self.clients[key]

    def project(self, slug: str, members: dict[str, str]) -> str:
        """A runtime project made by the hub admin (its creator: an admin member)."""
        made = ok(self.p.admin.api("POST", "projects", {"slug": slug}), 201)
        assert made["share_annotations"] is False
        for name, role in members.items():
            if ":" not in name:  # a person: their account, made on first use
                self.browser(name)
            ok(self.p.admin.api("PUT", f"projects/{slug}/members/{name}", {"role": role}), 201)
        return slug


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory) -> str:
    """This module's database (a module-scoped take on conftest's ``db_url``)."""
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("annotations-sqlite")
        return f"sqlite:///{folder / 'annotations.sqlite'}"
    return request.getfixturevalue("pg_admin").create()


@pytest.fixture(scope="module")
def world(request, db_url, tmp_path_factory) -> World:
    require(PROXY.exists(), f"configurable-http-proxy is not installed at {PROXY} (npm ci)")
    backend = db_url.split(":")[0].split("+")[0]
    folder = tmp_path_factory.mktemp(f"annotations-hub-{backend}")
    hub = Hub(folder, db_url, EXTRA_CONFIG)
    issued: list[str] = []
    try:
        hub.start()
        p = people(hub)
        dave = runtime_project(hub, p)
        browsers = {"admin": p.admin, "alice": p.alice, "bob": p.bob, "carol": p.carol}
        yield World(hub, db_url, issued, p, dave, {**browsers, "dave": dave})
    finally:
        hub.stop()
        hub.keep_log(f"test_e2e_annotations[{backend}]-0")
    log = hub.log()
    leaked = [t[:9] + "..." for t in issued if t in log or t[5:21] in log]
    leaked += hub.tokens_in_log()
    assert not leaked, f"plaintext tokens in the hub log: {leaked}"
    assert not hub.tracebacks(), f"tracebacks in the hub log: {hub.tracebacks()}"


def at(slug: str, item: str, owner: str | None = None) -> str:
    path = f"projects/{slug}/items/{item}/annotations"
    return path if owner is None else f"{path}/{owner}"


def etag(version: int) -> str:
    return f'"{version}"'


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def annotation(answer: requests.Response, status: int = 200) -> dict:
    """Assert an annotation answer (status, shape, ETag = its version); return it."""
    body = ok(answer, status)
    assert set(body) == ANNOTATION_FIELDS, body
    assert answer.headers.get("ETag") == etag(body["version"]), answer.headers
    assert answer.headers["Content-Type"].startswith("application/json")
    return body


def refused_412(answer: requests.Response, *words: str) -> dict | None:
    """Assert a 412 with the current annotation (or null) in the body; return it."""
    error(answer, 412, *words)
    body = answer.json()
    assert "current" in body, body
    if body["current"] is not None:
        assert set(body["current"]) == ANNOTATION_FIELDS
        # The version to retry with travels as the ETag, as on every other answer.
        assert answer.headers.get("ETag") == etag(body["current"]["version"]), answer.headers
    return body["current"]


def everything(client, path: str, limit: int | None = None) -> list[dict]:
    """Every row of a paged listing, following the cursors; checks each page's shape."""
    rows: list[dict] = []
    cursor = None
    while True:
        query = {}
        if limit is not None:
            query["limit"] = str(limit)
        if cursor is not None:
            query["cursor"] = cursor
        sep = "&" if "?" in path else "?"
        url = path + (sep + "&".join(f"{k}={quote(v)}" for k, v in query.items()) if query else "")
        page = ok(client("GET", url) if isinstance(client, Client) else client.api("GET", url))
        assert set(page) == {"items", "next"}, page
        if limit is not None:
            assert len(page["items"]) <= limit
        for row in page["items"]:
            assert set(row) == ANNOTATION_FIELDS, row
        rows += page["items"]
        cursor = page["next"]
        if cursor is None:
            return rows
        assert page["items"], "a page with a cursor after it must not be empty"


def keys(rows: list[dict]) -> list[tuple[str, str]]:
    return [(row["item"], row["owner"]) for row in rows]


def state(world: World, slug: str) -> list[tuple]:
    """A project's annotations as the hub admin sees them: (item, owner, version, data,
    updated_at) in listing order."""
    rows = everything(world.p.admin, f"projects/{slug}/annotations")
    return [(r["item"], r["owner"], r["version"], r["data"], r["updated_at"]) for r in rows]


# -- 1. own annotations, ETags and conditions ---------------------------------------------


def test_own_annotation_round_trips_with_etag_and_conditional_writes(world):
    slug = world.project("etags", {"alice": "annotator", "bob": "viewer"})
    alice = world.client("alice")
    path = at(slug, "img-1", "alice")

    made = annotation(alice("PUT", path, {"data": {"label": "cat", "box": [1, 2, 3, 4]}}), 201)
    assert (made["project"], made["item"], made["owner"], made["version"]) == (
        slug,
        "img-1",
        "alice",
        1,
    )
    assert made["data"] == {"label": "cat", "box": [1, 2, 3, 4]}
    assert made["created_at"] == made["updated_at"]
    read = annotation(alice("GET", path))
    assert read == made
    # The browser session reads the same, and a GET with the current ETag is a 304.
    assert annotation(world.p.alice.api("GET", path)) == made
    fresh = alice("GET", path, headers={"If-None-Match": etag(1)})
    assert fresh.status_code == 304 and fresh.content == b""
    assert annotation(alice("GET", path, headers={"If-None-Match": etag(7)})) == made

    # If-Match with the current version writes the next one.
    second = annotation(
        alice("PUT", path, {"data": {"label": "dog"}}, headers={"If-Match": etag(1)})
    )
    assert second["version"] == 2 and second["data"] == {"label": "dog"}
    assert second["created_at"] == made["created_at"]
    assert when(second["updated_at"]) > when(made["updated_at"])
    # A stale If-Match is a 412 with the current annotation; nothing is written.
    stale = alice("PUT", path, {"data": {"label": "stale"}}, headers={"If-Match": etag(1)})
    current = refused_412(stale, "version 2")
    assert current == second
    assert annotation(alice("GET", path)) == second
    # Unquoted versions are taken too, as some clients send them.
    assert refused_412(alice("PUT", path, {"data": 0}, headers={"If-Match": "1"})) == second
    # If-Match: * writes only what exists.
    starred = annotation(alice("PUT", path, {"data": "starred"}, headers={"If-Match": "*"}))
    assert starred["version"] == 3
    missing = alice("PUT", at(slug, "img-2", "alice"), {"data": 1}, headers={"If-Match": "*"})
    assert refused_412(missing) is None
    error(alice("GET", at(slug, "img-2", "alice")), 404)
    # If-None-Match: * creates only.
    exists = alice("PUT", path, {"data": "again"}, headers={"If-None-Match": "*"})
    assert refused_412(exists, "If-None-Match") == starred
    created = alice("PUT", at(slug, "img-2", "alice"), {"data": 2}, headers={"If-None-Match": "*"})
    assert annotation(created, 201)["version"] == 1
    # Unconditional: the next version; a body "owner" that is the caller is fine.
    body = {"data": [None, True, 1.5, "x"], "owner": "ALICE"}
    assert annotation(alice("PUT", path, body))["version"] == 4

    # Naming someone else, in the path or in the body, is refused and writes nothing.
    error(alice("PUT", at(slug, "img-1", "bob"), {"data": 1}), 403, "own annotations")
    error(alice("PUT", at(slug, "img-3", "admin"), {"data": 1}), 403, "own annotations")
    error(alice("PUT", path, {"data": 1, "owner": "bob"}), 400, "owner")
    error(alice("PUT", at(slug, "img-3", "alice"), {"data": 1, "owner": "bob"}), 400, "owner")
    # A project admin (here the hub admin) writes for others only through the import.
    error(world.p.admin.api("PUT", path, {"data": "hijack"}), 403, "own annotations")
    # A viewer cannot write, not even their own; a read-only token cannot write either.
    error(world.client("bob")("PUT", at(slug, "img-1", "bob"), {"data": 1}), 403, "Viewer")
    error(world.p.bob.api("PUT", at(slug, "img-1", "bob"), {"data": 1}), 403)
    reader = world.client("alice", scopes=(READ,))
    assert annotation(reader("GET", path))["version"] == 4
    error(reader("PUT", path, {"data": "read only"}), 403, WRITE)
    error(reader("PUT", at(slug, "img-9", "alice"), {"data": 1}), 403, WRITE)
    error(reader("DELETE", path), 403, WRITE)
    error(reader("POST", f"projects/{slug}/annotations/import", {"annotations": []}), 403)
    # A session write needs the XSRF token.
    forged = world.p.alice.http.put(f"{world.hub.url}{API}{path}", json={"data": 1}, timeout=30)
    error(forged, 403)
    # Not a member: 404, the same as a project that does not exist.
    carol = world.client("carol")
    for method, body in (("GET", NOTHING), ("PUT", {"data": 1}), ("DELETE", NOTHING)):
        hidden = error(carol(method, at(slug, "img-1", "carol"), body), 404)
        absent = error(carol(method, at("no-such", "img-1", "carol"), body), 404)
        assert hidden == absent.replace("no-such", slug)
    error(carol("GET", f"projects/{slug}/annotations"), 404)
    error(world.p.carol.api("GET", at(slug, "img-1", "alice")), 404)
    # Anonymous: 401.
    error(requests.get(f"{world.hub.url}{API}{path}", timeout=30), 401)
    error(requests.put(f"{world.hub.url}{API}{path}", json={"data": 1}, timeout=30), 401)

    before = state(world, slug)
    assert [(i, o, v) for i, o, v, _, _ in before] == [("img-1", "alice", 4), ("img-2", "alice", 1)]
    assert before[0][3] == [None, True, 1.5, "x"]

    # DELETE: 204 with the tombstone's ETag; the numbering goes on after it.
    error(alice("DELETE", path, headers={"If-Match": etag(3)}), 412)
    gone = alice("DELETE", path, headers={"If-Match": etag(4)})
    assert gone.status_code == 204 and gone.headers["ETag"] == etag(5)
    error(alice("GET", path), 404)
    error(alice("DELETE", path), 404)
    assert refused_412(alice("PUT", path, {"data": 1}, headers={"If-Match": etag(4)})) is None
    again = annotation(alice("PUT", path, {"data": "back"}, headers={"If-None-Match": "*"}), 201)
    assert again["version"] == 6 and again["created_at"] == again["updated_at"]
    assert keys(everything(alice, f"projects/{slug}/annotations")) == [
        ("img-1", "alice"),
        ("img-2", "alice"),
    ]
    # Project admins may delete anyone's annotation; other people may not.
    error(world.client("bob")("DELETE", at(slug, "img-2", "alice")), 403)
    removed = world.p.admin.api("DELETE", at(slug, "img-2", "alice"))
    assert removed.status_code == 204 and removed.headers["ETag"] == etag(2)
    assert keys(everything(alice, f"projects/{slug}/annotations")) == [("img-1", "alice")]


# -- 2. two people, one item; one person, two clients --------------------------------------


def test_two_people_on_one_item_both_keep_theirs_and_a_racing_tab_gets_412(world):
    slug = world.project("race", {"alice": "annotator", "carol": "annotator", "bob": "viewer"})
    people_ = {name: world.client(name) for name in ("alice", "carol", "admin")}

    def put(client, item, owner, data, headers=None):
        return client("PUT", at(slug, item, owner), {"data": data}, headers=headers)

    # Everyone writes the same item at the same moment: every write is a create.
    for round_ in range(10):
        item = f"frame-{round_}"
        start = threading.Barrier(len(people_))

        def write(name, item=item, start=start):
            start.wait()
            return name, put(people_[name], item, name, {"by": name})

        with ThreadPoolExecutor(len(people_)) as pool:
            answers = list(pool.map(write, people_))
        for name, answer in answers:
            made = annotation(answer, 201)
            assert (made["owner"], made["version"], made["data"]) == (name, 1, {"by": name})
        rows = everything(world.client("bob"), at(slug, item))
        assert [(r["owner"], r["data"]) for r in rows] == [
            ("admin", {"by": "admin"}),
            ("alice", {"by": "alice"}),
            ("carol", {"by": "carol"}),
        ]

    # One person in two tabs (a token and the browser session), both from version v:
    # exactly one wins, the other gets 412 with the winner's annotation.
    tab = world.client("alice")
    session = world.p.alice
    session.api("GET", "me")  # its XSRF token, fetched before the race

    def from_session(item, data, version):
        return session.http.put(
            f"{world.hub.url}{API}{at(slug, item, 'alice')}",
            json={"data": data},
            headers={"X-XSRFToken": session._xsrf, "If-Match": etag(version)},
            timeout=60,
        )

    wins = Counter()
    for round_ in range(20):
        item = f"frame-{round_ % 10}"
        base = annotation(tab("GET", at(slug, item, "alice")))["version"]
        start = threading.Barrier(2)

        def race(which, item=item, base=base, start=start, round_=round_):
            data = {"tab": which, "round": round_}
            start.wait()
            if which == "token":
                return which, put(tab, item, "alice", data, {"If-Match": etag(base)})
            return which, from_session(item, data, base)

        with ThreadPoolExecutor(2) as pool:
            answers = dict(pool.map(race, ("token", "session")))
        statuses = sorted(a.status_code for a in answers.values())
        assert statuses == [200, 412], {k: (a.status_code, a.text) for k, a in answers.items()}
        winner = next(k for k, a in answers.items() if a.status_code == 200)
        loser = "session" if winner == "token" else "token"
        wins[winner] += 1
        won = annotation(answers[winner])
        assert won["version"] == base + 1 and won["data"] == {"tab": winner, "round": round_}
        assert refused_412(answers[loser]) == won
        assert annotation(tab("GET", at(slug, item, "alice"))) == won
    assert sum(wins.values()) == 20
    # Nobody else's annotation moved: carol's and the admin's are still at version 1.
    for row in everything(world.client("bob"), f"projects/{slug}/annotations"):
        if row["owner"] != "alice":
            assert row["version"] == 1 and row["data"] == {"by": row["owner"]}
        else:  # created, then won two races
            assert row["version"] == 3, row


# -- 3. visibility ------------------------------------------------------------------------


def test_visibility_follows_role_share_annotations_and_show_others(world):
    # owls: dave admin (no hub admin), alice and carol annotators, bob viewer; the hub
    # admin, its creator, then leaves it: an implicit admin with no membership.
    slug = world.project(
        "owls", {"dave": "admin", "alice": "annotator", "carol": "annotator", "bob": "viewer"}
    )
    ok(world.dave.api("DELETE", f"projects/{slug}/members/admin"), 204)
    writers = ("alice", "carol", "dave")
    for name in writers:
        for item in ("call-1", "call-2"):
            annotation(world.client(name)("PUT", at(slug, item, name), {"data": name}), 201)
    everyone = sorted((item, name) for name in writers for item in ("call-1", "call-2"))

    def seen(name: str) -> list[tuple[str, str]]:
        """What ``name`` sees, by each read route (they must agree)."""
        client = world.client(name)
        listed = keys(everything(client, f"projects/{slug}/annotations"))
        by_item = [
            key for item in ("call-1", "call-2") for key in keys(everything(client, at(slug, item)))
        ]
        assert by_item == listed, name
        export = client("GET", f"projects/{slug}/annotations?format=ndjson")
        assert export.status_code == 200, export.text
        assert [
            tuple(json.loads(x)[k] for k in ("item", "owner")) for x in export.text.splitlines()
        ] == listed
        for owner in ("alice", "carol", "dave"):
            filtered = keys(everything(client, f"projects/{slug}/annotations?owner={owner}"))
            assert filtered == [key for key in listed if key[1] == owner], (name, owner)
            one = client("GET", at(slug, "call-1", owner))
            if ("call-1", owner) in listed:
                assert annotation(one)["owner"] == owner
            else:
                error(one, 404)  # as if absent: no leak
        return listed

    def own(name: str) -> list[tuple[str, str]]:
        return [key for key in everyone if key[1] == name]

    # share_annotations off: annotators see their own only; the others see everything.
    assert ok(world.client("alice")("GET", f"projects/{slug}"))["share_annotations"] is False
    assert seen("alice") == own("alice")
    assert seen("carol") == own("carol")
    for name in ("bob", "dave", "admin"):
        assert seen(name) == everyone, name

    # The project admin shares annotations: annotators see everyone's.
    shared = ok(world.dave.api("PATCH", f"projects/{slug}", {"share_annotations": True}))
    assert shared["share_annotations"] is True
    assert seen("alice") == everyone
    assert seen("carol") == everyone

    # A member's own show_others narrows it, for them alone.
    member = ok(
        world.p.alice.api("PATCH", f"projects/{slug}/members/alice", {"show_others": False})
    )
    assert member["name"] == "alice"
    assert seen("alice") == own("alice")
    assert seen("carol") == everyone
    # ...and is theirs alone to change (a project admin included); outsiders get 404.
    error(world.p.carol.api("PATCH", f"projects/{slug}/members/alice", {"show_others": True}), 403)
    error(world.dave.api("PATCH", f"projects/{slug}/members/alice", {"show_others": True}), 403)
    error(world.client("alice")("PATCH", f"projects/{slug}/members/alice", {"show_others": 1}), 400)
    error(world.client("alice")("PATCH", f"projects/{slug}/members/alice", {}), 400)
    error(world.client("alice")("PATCH", f"projects/{slug}/members/alice", {"x": True}), 400)
    error(world.client("admin")("PATCH", "projects/demo/members/alice", {"show_others": True}), 403)
    error(world.client("carol")("PATCH", "projects/demo/members/carol", {"show_others": True}), 404)
    assert seen("alice") == own("alice")
    ok(world.client("alice")("PATCH", f"projects/{slug}/members/alice", {"show_others": True}))
    assert seen("alice") == everyone

    # Sharing off again: back to own only, whatever show_others says.
    ok(world.dave.api("PATCH", f"projects/{slug}", {"share_annotations": False}))
    assert seen("alice") == own("alice")
    assert seen("carol") == own("carol")
    assert seen("bob") == everyone
    # An annotator made viewer sees everything at the next request.
    ok(world.dave.api("PUT", f"projects/{slug}/members/carol", {"role": "viewer"}))
    assert seen("carol") == everyone
    # A removed member sees nothing (404), not even their own.
    ok(world.dave.api("DELETE", f"projects/{slug}/members/alice"), 204)
    error(world.client("alice")("GET", f"projects/{slug}/annotations"), 404)
    error(world.client("alice")("GET", at(slug, "call-1", "alice")), 404)
    assert seen("admin") == everyone  # the hub admin, still no member


# -- 4. listing, export, import ------------------------------------------------------------


def test_listing_pages_follow_the_cursor_with_item_and_owner_filters(world):
    slug = world.project("pages", {"alice": "annotator", "dave": "admin", "bob": "viewer"})
    items = [f"item-{i:02d}" for i in range(13)]
    for name in ("alice", "dave", "admin"):
        batch = [{"item": item, "data": {"n": i, "by": name}} for i, item in enumerate(items)]
        if name != "alice":
            batch = batch[::2]  # admins annotate every other item
        result = ok(
            world.client(name)(
                "POST", f"projects/{slug}/annotations/import", {"annotations": batch}
            )
        )
        assert result == {"imported": len(batch), "created": len(batch), "updated": 0}
    bob = world.client("bob")
    full = everything(bob, f"projects/{slug}/annotations")
    expected = sorted(
        [(item, "alice") for item in items]
        + [(item, name) for name in ("admin", "dave") for item in items[::2]]
    )
    assert keys(full) == expected  # one page of the default size, (item, owner) order
    assert all(row["project"] == slug and row["version"] == 1 for row in full)
    for limit in (1, 4, 7, len(expected) - 1, len(expected), 1000):
        assert everything(bob, f"projects/{slug}/annotations", limit=limit) == full, limit
    page = ok(bob("GET", f"projects/{slug}/annotations?limit=5"))
    assert len(page["items"]) == 5 and isinstance(page["next"], str)
    last = ok(bob("GET", f"projects/{slug}/annotations?limit={len(expected)}"))
    assert last["next"] is None

    # Filters, alone and together, with paging; the item route pages the same way.
    by_owner = everything(bob, f"projects/{slug}/annotations?owner=dave", limit=2)
    assert keys(by_owner) == [(item, "dave") for item in items[::2]]
    by_item = everything(bob, f"projects/{slug}/annotations?item=item-04", limit=1)
    assert keys(by_item) == [("item-04", "admin"), ("item-04", "alice"), ("item-04", "dave")]
    assert everything(bob, at(slug, "item-04"), limit=2) == by_item
    assert keys(everything(bob, at(slug, "item-05"))) == [("item-05", "alice")]
    both = everything(bob, f"projects/{slug}/annotations?item=item-04&owner=ALICE")
    assert keys(both) == [("item-04", "alice")]
    assert everything(bob, f"projects/{slug}/annotations?owner=nobody") == []
    assert everything(bob, at(slug, "never-annotated")) == []
    # A write between pages never makes a page skip or repeat a row.
    first = ok(bob("GET", f"projects/{slug}/annotations?limit=6"))
    annotation(world.client("alice")("PUT", at(slug, "item-00", "alice"), {"data": "changed"}))
    annotation(world.client("alice")("PUT", at(slug, "item-99", "alice"), {"data": "new"}), 201)
    rest = everything(bob, f"projects/{slug}/annotations?cursor={quote(first['next'])}", limit=6)
    assert keys(first["items"] + rest) == [*expected, ("item-99", "alice")]


def test_ndjson_export_streams_every_annotation_of_a_big_project(world):
    slug = world.project("big", {"alice": "annotator", "dave": "admin"})
    owners = ("admin", "alice", "dave")
    total = 2345  # over two of the export's internal pages of 1,000
    records = [
        {"item": f"tile-{i // 3:05d}", "owner": owners[i % 3], "data": {"i": i, "tag": "x" * 20}}
        for i in range(total)
    ]
    imported = ok(
        world.client("admin")(
            "POST", f"projects/{slug}/annotations/import", {"annotations": records}
        )
    )
    assert imported == {"imported": total, "created": total, "updated": 0}

    export = world.client("admin")("GET", f"projects/{slug}/annotations?format=ndjson", timeout=120)
    assert export.status_code == 200, export.text[:500]
    assert export.headers["Content-Type"].startswith("application/x-ndjson")
    # Streamed as it is read, in chunks, not as one body of a known length.
    assert export.headers.get("Transfer-Encoding") == "chunked", export.headers
    assert export.text.endswith("\n")
    lines = export.text.split("\n")[:-1]
    assert len(lines) == total
    rows = [json.loads(line) for line in lines]
    assert all(set(row) == ANNOTATION_FIELDS for row in rows)
    expected = sorted((r["item"], r["owner"], r["data"]["i"]) for r in records)
    assert [(r["item"], r["owner"], r["data"]["i"]) for r in rows] == expected
    assert all(r["project"] == slug and r["version"] == 1 for r in rows)

    # Filters and visibility apply to the export too.
    mine = world.client("alice")("GET", f"projects/{slug}/annotations?format=ndjson")
    alices = [json.loads(line) for line in mine.text.splitlines()]
    assert len(alices) == sum(1 for r in records if r["owner"] == "alice")
    assert {r["owner"] for r in alices} == {"alice"}
    one_item = world.client("dave")(
        "GET", f"projects/{slug}/annotations?format=ndjson&item=tile-00007"
    )
    assert keys([json.loads(x) for x in one_item.text.splitlines()]) == [
        ("tile-00007", o) for o in owners
    ]
    empty = world.client("dave")("GET", f"projects/{slug}/annotations?format=ndjson&owner=bob")
    assert empty.status_code == 200 and empty.text == ""
    error(world.client("dave")("GET", f"projects/{slug}/annotations?format=xml"), 400, "format")
    error(world.client("dave")("GET", f"projects/{slug}/annotations?format=ndjson&item=a b"), 400)
    error(world.client("carol")("GET", f"projects/{slug}/annotations?format=ndjson"), 404)


def test_import_is_all_or_nothing_and_names_the_bad_record(world):
    slug = world.project("batch", {"alice": "annotator", "bob": "viewer"})
    alice, admin = world.client("alice"), world.client("admin")
    imp = f"projects/{slug}/annotations/import"
    ok(alice("POST", imp, {"annotations": [{"item": "a", "data": 1}, {"item": "b", "data": 2}]}))
    before = state(world, slug)
    assert [(i, o, v) for i, o, v, _, _ in before] == [("a", "alice", 1), ("b", "alice", 1)]

    def batch(bad: object, k: int, size: int = 6, owner: str | None = None) -> dict:
        """``size`` records, the existing "a" among the good ones (an update of version 1),
        ``bad`` at k."""
        good = [{"item": "a", "data": "updated", "version": 1}] + [
            {"item": f"new-{j}", "data": {"j": j}} for j in range(size - 1)
        ]
        if owner:
            for record in good:
                record["owner"] = owner
        records = [*good[:k], bad, *good[k:]]
        return {"annotations": records}

    big = "x" * MAX_BYTES
    cases = [
        (alice, {"item": "bad item", "data": 1}, 400, "'item' must be"),
        (alice, {"item": "x" * 257, "data": 1}, 400, "'item' must be"),
        (alice, {"item": "", "data": 1}, 400, "'item' must be"),
        (alice, {"item": 5, "data": 1}, 400, "'item' must be"),
        (alice, {"item": "c"}, 400, "data"),
        (alice, {"data": 1}, 400, "item"),
        (alice, {"item": "c", "data": 1, "colour": "red"}, 400, "Unknown fields"),
        (alice, ["c", 1], 400, "object"),
        (alice, "c", 400, "object"),
        (alice, {"item": "c", "data": 1, "owner": "bob"}, 400, "only project admins"),
        (alice, {"item": "c", "data": 1, "owner": 7}, 400, "owner"),
        (alice, {"item": "c", "data": big}, 413, "bytes"),
        (alice, {"item": "a", "data": "twice"}, 400, "also record 0"),
        (admin, {"item": "c", "data": 1, "owner": "nobody"}, 400, "no account named 'nobody'"),
    ]
    for client, bad, status, words in cases:
        for k in (0, 3, 6):
            body = batch(bad, k, owner="alice" if client is admin else None)
            if words == "also record 0" and k == 0:
                continue  # its duplicate is the record after it
            message = error(client("POST", imp, body), status, f"Record {k}:", words)
            assert message.startswith(f"Record {k}:"), message
    # The last of a long batch: everything before it was checked and is not written.
    long = batch({"item": "bad/item", "data": 1}, 499, size=499)
    error(alice("POST", imp, long), 400, "Record 499:")
    # NaN is not JSON: the whole body is refused.
    nan = b'{"annotations": [{"item": "c", "data": 1}, {"item": "d", "data": NaN}]}'
    error(alice("POST", imp, raw=nan), 400, "JSON")
    for body, words in (
        ({"annotations": []}, "non-empty"),
        ({"annotations": {"item": "c", "data": 1}}, "annotations"),
        ({"annotations": [{"item": "c", "data": 1}], "mode": "merge"}, "Unknown fields"),
        ({}, "annotations"),
        ([{"item": "c", "data": 1}], "JSON object"),
    ):
        error(alice("POST", imp, body), 400, words)
    error(alice("POST", imp, raw=b"item=c"), 400, "not valid JSON")
    # A viewer imports nothing, an outsider finds no project.
    error(world.client("bob")("POST", imp, {"annotations": [{"item": "c", "data": 1}]}), 403)
    error(world.client("carol")("POST", imp, {"annotations": [{"item": "c", "data": 1}]}), 404)
    assert state(world, slug) == before

    # The same batches without the bad record go in whole: creates and updates counted.
    done = ok(alice("POST", imp, batch({"item": "c", "data": "ok"}, 3)))
    assert done == {"imported": 7, "created": 6, "updated": 1}
    after = {(i, o): (v, d) for i, o, v, d, _ in state(world, slug)}
    assert after[("a", "alice")] == (2, "updated") and after[("c", "alice")] == (1, "ok")
    assert len(after) == 8
    # A project admin imports on behalf of annotators, never of a viewer (SPEC 13).
    for_bob = {"annotations": [{"item": "a", "data": "b", "owner": "bob"}]}
    error(admin("POST", imp, for_bob), 403, "'bob' is a viewer")
    ok(world.p.admin.api("PUT", f"projects/{slug}/members/bob", {"role": "annotator"}))
    assert ok(admin("POST", imp, for_bob)) == {"imported": 1, "created": 1, "updated": 0}
    assert annotation(world.client("bob")("GET", at(slug, "a", "bob")))["data"] == "b"


# -- 5. service accounts -------------------------------------------------------------------


def service_token(world: World, name: str) -> str:
    """A PAT of a service account, which has no password: a hub admin mints it."""
    body = {"name": "predictions", "scopes": [READ, WRITE], "owner": name}
    made = ok(world.p.admin.api("POST", "tokens", body), 201)
    assert made["owner"] == name
    world.issued.append(made["token"])
    return made["token"]


def test_a_service_account_writes_predictions_under_its_own_name(world):
    svc = ok(world.p.admin.api("POST", "users", {"name": "svc:model-x"}), 201)
    assert svc["kind"] == "service" and svc["link"] is None
    # "model-x" is a person; no person can ever be named like the service account.
    world.browser("model-x")
    error(world.p.admin.api("POST", "users", {"name": "svc:model-x"}), 409)
    slug = world.project(
        "predictions",
        {"svc:model-x": "annotator", "model-x": "annotator", "alice": "annotator", "bob": "viewer"},
    )
    # Only for service accounts, and only by hub admins: nobody mints a token to act as
    # a person, and a project admin cannot mint for the service account.
    person = {"name": "as-alice", "owner": "alice"}
    error(world.p.admin.api("POST", "tokens", person), 400, "not a service account")
    for_svc = {"name": "x", "owner": "svc:model-x"}
    error(world.browser("alice").api("POST", "tokens", for_svc), 403, "hub admins")
    model = Client(world.hub, service_token(world, "svc:model-x"))
    me = ok(model("GET", "me"))
    assert (me["name"], me["kind"], me["auth"]) == ("svc:model-x", "service", "token")

    made = annotation(model("PUT", at(slug, "img-1", "svc:model-x"), {"data": {"p": 0.9}}), 201)
    assert (made["owner"], made["version"]) == ("svc:model-x", 1)
    encoded = at(slug, "img-1", quote("svc:model-x", safe=""))  # %3A in the path
    assert annotation(model("GET", encoded)) == made
    assert annotation(model("PUT", encoded, {"data": {"p": 0.95}}))["version"] == 2
    # The person model-x and alice annotate the same item: three annotations.
    annotation(
        world.client("model-x")("PUT", at(slug, "img-1", "model-x"), {"data": "person"}), 201
    )
    annotation(world.client("alice")("PUT", at(slug, "img-1", "alice"), {"data": "alice"}), 201)
    rows = everything(world.client("bob"), at(slug, "img-1"))
    assert [(r["owner"], r["version"], r["data"]) for r in rows] == [
        ("alice", 1, "alice"),
        ("model-x", 1, "person"),
        ("svc:model-x", 2, {"p": 0.95}),
    ]
    # Neither writes under the other's name, by path or body; the person's import cannot
    # name the service account either.
    error(model("PUT", at(slug, "img-1", "model-x"), {"data": 0}), 403, "own annotations")
    error(model("PUT", at(slug, "img-1", "alice"), {"data": 0}), 403, "own annotations")
    error(model("PUT", at(slug, "img-1", "svc:model-x"), {"data": 0, "owner": "model-x"}), 400)
    error(world.client("model-x")("PUT", at(slug, "img-1", "svc:model-x"), {"data": 0}), 403)
    imp = f"projects/{slug}/annotations/import"
    spoof = {"annotations": [{"item": "img-2", "data": 0, "owner": "svc:model-x"}]}
    error(world.client("model-x")("POST", imp, spoof), 400, "Record 0:")
    error(
        model("POST", imp, {"annotations": [{"item": "img-2", "data": 0, "owner": "alice"}]}), 400
    )
    # Its bulk predictions go in under its own name.
    # img-1 exists (version 2): the record names the version it replaces.
    predictions = [{"item": f"img-{i}", "data": {"p": i / 10}} for i in range(1, 6)]
    predictions[0]["version"] = 2
    assert ok(model("POST", imp, {"annotations": predictions})) == {
        "imported": 5,
        "created": 4,
        "updated": 1,
    }
    ndjson = model("GET", f"projects/{slug}/annotations?format=ndjson&owner=svc:model-x")
    mine = [json.loads(line) for line in ndjson.text.splitlines()]
    assert [(r["item"], r["owner"], r["version"]) for r in mine] == [
        ("img-1", "svc:model-x", 3),
        *[(f"img-{i}", "svc:model-x", 1) for i in range(2, 6)],
    ]
    listing = everything(world.client("bob"), f"projects/{slug}/annotations")
    assert Counter(r["owner"] for r in listing) == {"svc:model-x": 5, "model-x": 1, "alice": 1}
    # Outside its projects it is nobody.
    error(model("PUT", at("demo", "img-1", "svc:model-x"), {"data": 1}), 404)


# -- 6. deleted accounts ---------------------------------------------------------------------


def test_a_deleted_users_annotations_stay_with_their_name_read_only(world):
    slug = world.project("legacy", {"erin": "annotator", "alice": "annotator", "bob": "viewer"})
    erin = world.client("erin")
    annotation(erin("PUT", at(slug, "doc-1", "erin"), {"data": {"text": "erin's"}}), 201)
    annotation(erin("PUT", at(slug, "doc-1", "erin"), {"data": {"text": "erin's v2"}}))
    annotation(erin("PUT", at(slug, "doc-2", "erin"), {"data": "second"}), 201)
    annotation(world.client("alice")("PUT", at(slug, "doc-1", "alice"), {"data": "alice"}), 201)
    before = state(world, slug)

    ok(world.p.admin.api("DELETE", "users/erin"), 204)
    world.forget("erin")
    error(erin("GET", "me"), 401)
    # Kept, with her name, for everyone who sees others' annotations.
    assert state(world, slug) == before
    kept = annotation(world.client("bob")("GET", at(slug, "doc-1", "erin")))
    assert (kept["owner"], kept["version"], kept["data"]) == ("erin", 2, {"text": "erin's v2"})
    assert ("doc-1", "erin") in keys(everything(world.client("bob"), at(slug, "doc-1")))

    # A new account of the same name is somebody else: it cannot write hers (409).
    world.browser("erin")
    ok(world.p.admin.api("PUT", f"projects/{slug}/members/erin", {"role": "annotator"}), 201)
    again = world.client("erin")
    path = at(slug, "doc-1", "erin")
    error(again("PUT", path, {"data": "overwrite"}), 409, "deleted account")
    error(again("PUT", path, {"data": "overwrite"}, headers={"If-Match": etag(2)}), 409)
    error(again("PUT", path, {"data": "overwrite"}, headers={"If-Match": "*"}), 409)
    error(again("PUT", path, {"data": "overwrite"}, headers={"If-None-Match": "*"}), 409)
    error(again("DELETE", path), 409, "deleted account")
    imp = f"projects/{slug}/annotations/import"
    records = [{"item": "doc-9", "data": 9}, {"item": "doc-2", "data": "overwrite"}]
    error(again("POST", imp, {"annotations": records}), 409, "Record 1:")
    on_behalf = [{"item": "doc-1", "owner": "erin", "data": "overwrite"}]
    error(world.client("admin")("POST", imp, {"annotations": on_behalf}), 409, "Record 0:")
    assert state(world, slug) == before  # doc-9 of the refused batch is not there either
    # Her own new annotations are hers as usual; a project admin can clean the old ones up.
    assert annotation(again("PUT", at(slug, "doc-3", "erin"), {"data": "new"}), 201)["version"] == 1
    gone = world.p.admin.api("DELETE", at(slug, "doc-2", "erin"))
    assert gone.status_code == 204 and gone.headers["ETag"] == etag(2)
    owners = [(i, o, v) for i, o, v, _, _ in state(world, slug)]
    assert owners == [("doc-1", "alice", 1), ("doc-1", "erin", 2), ("doc-3", "erin", 1)]


# -- 7. bad input -----------------------------------------------------------------------------


def test_bad_input_gets_a_4xx_with_a_message_and_writes_nothing(world):
    slug = world.project("inputs", {"alice": "annotator"})
    alice = world.client("alice")
    path = at(slug, "img-1", "alice")
    annotation(alice("PUT", path, {"data": {"ok": True}}), 201)
    before = state(world, slug)
    fresh = at(slug, "img-2", "alice")

    for target in (path, fresh):
        for raw_body, status, words in (
            (b"not json", 400, "not valid JSON"),
            (b'{"data": 1', 400, "not valid JSON"),
            (b"\xff\xfe\x00", 400, "not valid JSON"),
            (b"", 400, "data"),
            (b"[1, 2]", 400, "JSON object"),
            (b'"data"', 400, "JSON object"),
            (b"null", 400, "JSON object"),
            (b"{}", 400, "data"),
            (b'{"data": NaN}', 400, "JSON"),
            (b'{"data": [Infinity]}', 400, "JSON"),
            (b'{"data": {"x": -Infinity}}', 400, "JSON"),
            (b'{"data": 1, "label": "x"}', 400, "Unknown fields"),
            (b'{"data": 1, "version": 9}', 400, "Unknown fields"),
            (b'{"data": 1, "owner": 5}', 400, "owner"),
            (b'{"data": 1, "owner": null}', 400, "owner"),
            (b'{"data": 1, "owner": "bob"}', 400, "owner"),
        ):
            error(alice("PUT", target, raw=raw_body), status, words)
        # Over the cap: the data (413), or the whole body far beyond it (413 too).
        over = {"data": "x" * (MAX_BYTES - 1)}  # two quotes make it MAX_BYTES + 1
        error(alice("PUT", target, over), 413, str(MAX_BYTES))
        error(alice("PUT", target, {"data": ["x" * 100_000]}), 413)
        error(alice("PUT", target, raw=b'{"data": "' + b"y" * 2_000_000 + b'"}'), 413)
        for value in ("abc", 'W/"1"', '"1", "2"', '"-1"', '""', '"1.0"', '"99999999999"'):
            error(alice("PUT", target, {"data": 2}, headers={"If-Match": value}), 400, "If-Match")
        for value in ('"1"', "abc"):
            error(alice("PUT", target, {"data": 2}, headers={"If-None-Match": value}), 400)
        error(alice("DELETE", target, headers={"If-Match": "abc"}), 400, "If-Match")
    # At the cap exactly it fits (and is then the current annotation).
    exact = annotation(alice("PUT", fresh, {"data": "x" * (MAX_BYTES - 2)}), 201)
    assert len(json.dumps(exact["data"])) == MAX_BYTES
    ok(alice("DELETE", fresh), 204)

    bad_items = ["bad%20item", "x" * 257, "%C3%A9t%C3%A9", "a*b", "a%2Fb", "a%00b", "%20"]
    for item in bad_items:
        # A NUL is refused for any address, before the item's own rules.
        why = "NUL character (%00)" if "%00" in item else "Invalid item name"
        error(alice("PUT", at(slug, item, "alice"), {"data": 1}), 400, why)
        error(alice("GET", at(slug, item, "alice")), 400, why)
        error(alice("GET", at(slug, item)), 400, why)
        error(alice("DELETE", at(slug, item, "alice")), 400, why)
    error(alice("GET", f"projects/{slug}/annotations?item=a%20b"), 400, "Invalid item name")
    # Exactly 256 characters is a fine name.
    annotation(alice("PUT", at(slug, "y" * 256, "alice"), {"data": 1}), 201)
    ok(alice("DELETE", at(slug, "y" * 256, "alice")), 204)

    listing = f"projects/{slug}/annotations"
    for cursor in ("garbage!", "bm90IGpzb24=", "WzEsMl0=", "WyJhIl0=", "e30=", "%FF", "W1td"):
        error(alice("GET", f"{listing}?cursor={cursor}"), 400, "cursor")
        error(alice("GET", f"{at(slug, 'img-1')}?cursor={cursor}"), 400, "cursor")
        error(alice("GET", f"{listing}?format=ndjson&cursor={cursor}"), 400, "cursor")
    for limit in ("0", "-1", "abc", "1001", "1.5", "", "1e3", "99999999999999999999", "%C2%B2"):
        error(alice("GET", f"{listing}?limit={limit}"), 400, "limit")
        error(alice("GET", f"{at(slug, 'img-1')}?limit={limit}"), 400, "limit")

    assert state(world, slug)[0] == before[0]
    assert state(world, slug) == before
    log = world.hub.log()
    assert "Traceback" not in log and " 500 " not in log, "a bad input reached a 500"


# -- 8. concurrency --------------------------------------------------------------------------


@dataclass
class Outcome:
    client: int
    owner: str
    item: str
    mode: str  # "plain", "if-match", "create-only"
    sent: int | None  # the If-Match version
    data: dict
    status: int
    version: int | None = None  # of the answer (2xx: written; 412: current)
    body_owner: str | None = None
    etag: str | None = None


def test_concurrent_clients_lose_no_acknowledged_write(world):
    """20 clients (8 people: 4 with one client, 4 with four) write 2,200 times to the
    same few items: unconditional writes and If-Match writes with the version each
    client saw last. Every acknowledged write is accounted for, every refusal is a 412."""
    writers = ["alice", "carol", "dave", "admin", "w-1", "w-2", "w-3", "w-4"]
    slug = world.project("storm", {name: "annotator" for name in writers if name != "admin"})
    clients_of = {name: (1 if i < 4 else 4) for i, name in enumerate(writers)}
    clients = [
        (name, Client(world.hub, world.token(name)))
        for name, count in clients_of.items()
        for _ in range(count)
    ]
    assert len(clients) == 20
    items = [f"spot-{i}" for i in range(4)]
    writes_each = 110
    start = threading.Barrier(len(clients))

    def run(index: int) -> list[Outcome]:
        owner, client = clients[index]
        rng = random.Random(index)
        seen: dict[str, int] = {}  # the last version this client saw, per item
        outcomes: list[Outcome] = []
        start.wait()
        for n in range(writes_each):
            item = rng.choice(items)
            data = {"client": index, "n": n}
            roll = rng.random()
            headers, sent = {}, None
            if roll < 0.4:
                mode = "plain"
            elif roll < 0.92 and item in seen:
                mode, sent = "if-match", seen[item]
                headers = {"If-Match": etag(sent)}
            else:
                mode, headers = "create-only", {"If-None-Match": "*"}
            answer = client("PUT", at(slug, item, owner), {"data": data}, headers=headers)
            outcome = Outcome(index, owner, item, mode, sent, data, answer.status_code)
            if answer.status_code in (200, 201):
                body = answer.json()
                outcome.version, outcome.body_owner = body["version"], body["owner"]
                outcome.etag = answer.headers.get("ETag")
                assert body["data"] == data and body["item"] == item
            elif answer.status_code == 412:
                current = answer.json()["current"]
                if current is not None:
                    outcome.version, outcome.body_owner = current["version"], current["owner"]
            else:
                outcome.data = {**data, "answer": answer.text[:300]}
            if outcome.version is not None:
                seen[item] = max(seen.get(item, 0), outcome.version)
            outcomes.append(outcome)
        return outcomes

    began = time.monotonic()
    with ThreadPoolExecutor(len(clients)) as pool:
        outcomes = [o for batch in pool.map(run, range(len(clients))) for o in batch]
    elapsed = time.monotonic() - began
    assert len(outcomes) == len(clients) * writes_each >= 2000

    statuses = Counter(o.status for o in outcomes)
    unexpected = [o for o in outcomes if o.status not in (200, 201, 412)]
    assert not unexpected, (statuses, unexpected[:5])  # no 5xx, nothing but written or 412
    acked = [o for o in outcomes if o.status in (200, 201)]
    refused = [o for o in outcomes if o.status == 412]
    # Only conditional writes are ever refused; an unconditional one always goes in.
    assert {o.mode for o in refused} <= {"if-match", "create-only"}
    assert all(o.mode != "plain" for o in refused)
    for o in acked:
        assert o.body_owner == o.owner and o.etag == etag(o.version)
        assert (o.status == 201) == (o.version == 1), o
        if o.mode == "if-match":
            assert o.version == o.sent + 1, o
        if o.mode == "create-only":
            assert o.version == 1, o
    for o in refused:
        assert o.body_owner in (None, o.owner)
        if o.mode == "if-match":
            assert o.version is not None and o.version != o.sent, o  # really stale

    # Per (item, owner): the acknowledged writes got versions 1..n, each exactly once,
    # and the stored annotation is version n with the data of the write acknowledged as n.
    by_key: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for o in acked:
        by_key[(o.item, o.owner)].append(o)
    stored = {
        (r["item"], r["owner"]): r
        for r in everything(world.client("admin"), f"projects/{slug}/annotations", limit=7)
    }
    assert set(stored) == set(by_key)  # no annotation without an acknowledged write
    for key, writes in by_key.items():
        versions = sorted(o.version for o in writes)
        assert versions == list(range(1, len(writes) + 1)), (key, versions)
        last = next(o for o in writes if o.version == len(writes))
        row = stored[key]
        assert row["version"] == len(writes) and row["data"] == last.data, (key, row)
        assert row["owner"] == key[1]
    # The race was real: several people on every item, the same person's clients
    # refused for stale versions, and conditional writes that won.
    assert all(len({o for i, o in by_key if i == item}) == len(writers) for item in items)
    assert sum(1 for o in refused if o.mode == "if-match") >= 20, statuses
    assert sum(1 for o in acked if o.mode == "if-match") >= 100, statuses
    print(f"\n{len(outcomes)} writes by {len(clients)} clients in {elapsed:.1f}s: {statuses}")


# -- 9. a crash in the middle of a write storm --------------------------------------------------


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    text = status.read_text() if status.exists() else ""
    return "\nState:\tZ" not in text  # a zombie is dead, just not reaped yet


def test_sigkill_mid_write_storm_loses_no_acknowledged_write(world):
    """Clients write as fast as they can; the hub is SIGKILLed among their requests and
    restarted. Every acknowledged write is there after the restart: the stored version
    is at least the last acknowledged one and, where equal, has its data; anything newer
    can only come from a write whose answer the crash swallowed."""
    hub = world.hub
    writers = ["alice", "carol", "w-1", "w-2"]
    slug = world.project("crash", {name: "annotator" for name in writers})
    clients = [(name, Client(hub, world.token(name))) for name in writers for _ in range(2)]
    items = [f"shard-{i}" for i in range(3)]
    stop = threading.Event()
    lock = threading.Lock()
    acked: list[tuple] = []  # (item, owner, version, data)
    unknown: list[tuple] = []  # (item, owner, data): sent, answer lost to the crash
    killed = threading.Event()
    early: list[tuple] = []  # answers neither 2xx nor 412 before the kill: a bug

    def run(index: int) -> None:
        owner, client = clients[index]
        rng = random.Random(1000 + index)
        seen: dict[str, int] = {}
        n = 0
        while not stop.is_set():
            item = rng.choice(items)
            data = {"client": index, "n": n, "pad": "p" * rng.randrange(50)}
            n += 1
            headers = {"If-Match": etag(seen[item])} if item in seen and rng.random() < 0.5 else {}
            try:
                answer = client(
                    "PUT", at(slug, item, owner), {"data": data}, headers=headers, timeout=10
                )
            except requests.RequestException:
                with lock:
                    unknown.append((item, owner, data))
                time.sleep(0.02)
                continue
            with lock:
                if answer.status_code in (200, 201):
                    body = answer.json()
                    acked.append((item, owner, body["version"], data))
                    seen[item] = body["version"]
                elif answer.status_code == 412 and answer.json().get("current"):
                    seen[item] = answer.json()["current"]["version"]
                elif answer.status_code != 412:
                    # Once the hub is gone its proxy may answer 503 for it: the write
                    # may or may not have been committed first.
                    unknown.append((item, owner, data))
                    if not killed.is_set():
                        early.append((answer.status_code, answer.text[:300]))

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(acked) >= 300, f"only {len(acked)} writes were acknowledged in 60 s"
        proxy_pid_file = hub.folder / "jupyterhub-proxy.pid"
        assert proxy_pid_file.exists(), "the hub wrote no proxy pid file where Hub looks"
        proxy_pid = int(proxy_pid_file.read_text())
        killed.set()
        hub.kill()  # SIGKILL, the clients still writing
        killed_at = len(acked)
        time.sleep(1.0)  # they keep trying against the dead hub
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        # Nothing of the old hub may be left (checked below): no proxy on its port.
        left_over = (listening(hub.port), killed.is_set() and alive(proxy_pid))
        if hub.proc.poll() is not None:
            hub.start()  # the tests after this one need a hub, whatever happened here
    assert not any(thread.is_alive() for thread in threads)
    assert unknown, "no request met the crash"
    assert not early, early
    assert left_over == (False, False), "the killed hub's proxy outlived it"
    assert len(acked) - killed_at <= len(clients)  # answers in flight at the kill, at most
    reader = world.client("alice")  # an annotator: sees their own; the admin sees all
    stored = {
        (r["item"], r["owner"]): r
        for r in everything(Client(hub, world.token("admin")), f"projects/{slug}/annotations")
    }
    last: dict[tuple[str, str], tuple[int, dict]] = {}
    for item, owner, version, data in acked:
        if version > last.get((item, owner), (0, None))[0]:
            last[(item, owner)] = (version, data)
    pending = defaultdict(list)
    for item, owner, data in unknown:
        pending[(item, owner)].append(data)
    assert set(last) <= set(stored)
    for key, (version, data) in last.items():
        row = stored[key]
        assert row["owner"] == key[1]
        assert row["version"] >= version, (key, row["version"], version)
        if row["version"] == version:
            assert row["data"] == data, (key, row, data)
        else:  # newer: only writes whose answer was lost, at most one per such write
            assert row["version"] - version <= len(pending[key]), (key, row, version)
            assert row["data"] in pending[key], (key, row)
    for key in set(stored) - set(last):
        assert stored[key]["data"] in pending[key]  # created by a write never answered
    # Every acknowledged version of a key is distinct: no write was acknowledged twice.
    versions = Counter((item, owner, version) for item, owner, version, _ in acked)
    assert max(versions.values()) == 1
    # The restarted hub goes on from there: conditional writes on the stored versions.
    for (item, owner), row in stored.items():
        client = dict(clients)[owner]
        after = client(
            "PUT",
            at(slug, item, owner),
            {"data": "after"},
            headers={"If-Match": etag(row["version"])},
        )
        assert annotation(after)["version"] == row["version"] + 1
    assert annotation(reader("GET", at(slug, items[0], "alice")))["data"] == "after"


# -- after the restart ------------------------------------------------------------------------


def test_a_recreated_account_reads_the_deleted_ones_annotations_as_others(world):
    """The annotations of a deleted account are not the own annotations of a later account
    of the same name (somebody else, maybe): it reads them as it reads anyone else's, so
    not at all where the project does not share annotations (docs/annotations.md)."""
    slug = world.project("renamed", {"frank": "annotator", "bob": "viewer"})
    frank = world.client("frank")
    annotation(frank("PUT", at(slug, "note-1", "frank"), {"data": "the first frank's"}), 201)
    ok(world.p.admin.api("DELETE", "users/frank"), 204)
    world.forget("frank")
    world.browser("frank")
    ok(world.p.admin.api("PUT", f"projects/{slug}/members/frank", {"role": "annotator"}), 201)
    again = world.client("frank")
    assert ok(again("GET", f"projects/{slug}"))["share_annotations"] is False
    # The viewer sees it, with the old owner's name.
    kept = annotation(world.client("bob")("GET", at(slug, "note-1", "frank")))
    assert kept["data"] == "the first frank's"
    # The new frank does not: not in a listing, an item's, the export, nor by its key.
    assert everything(again, f"projects/{slug}/annotations") == []
    assert everything(again, f"projects/{slug}/annotations?owner=frank") == []
    assert everything(again, at(slug, "note-1")) == []
    assert again("GET", f"projects/{slug}/annotations?format=ndjson").text == ""
    error(again("GET", at(slug, "note-1", "frank")), 404)
    # Once the project shares annotations, they read it like anyone else's (read-only).
    ok(world.p.admin.api("PATCH", f"projects/{slug}", {"share_annotations": True}))
    assert annotation(again("GET", at(slug, "note-1", "frank"))) == kept
    error(again("PUT", at(slug, "note-1", "frank"), {"data": "mine now"}), 409)


def test_hostile_input_gets_a_4xx_never_a_500(world):
    """Input no client of ours sends, but anyone can: still a 4xx, and nothing written."""
    slug = world.project("hostile", {"alice": "annotator", "bob": "viewer"})
    alice, bob, admin = world.client("alice"), world.client("bob"), world.client("admin")
    annotation(alice("PUT", at(slug, "x", "alice"), {"data": 1}), 201)
    before = state(world, slug)
    nul_owner = json.dumps({"annotations": [{"item": "y", "data": 1, "owner": "a\u0000"}]})
    nul_cursor = base64.urlsafe_b64encode(json.dumps(["\u0000", "x"]).encode()).decode()
    deep = b"[" * 2400 + b"]" * 2400  # nested deeper than Python's recursion limit
    failures = []
    for client, method, path, raw in (
        (bob, "GET", f"projects/{slug}/annotations?cursor={nul_cursor}", None),
        (bob, "GET", f"{at(slug, 'x')}?cursor={nul_cursor}", None),
        (bob, "GET", at(slug, "x", "%00"), None),
        (admin, "GET", at(slug, "x", "a%00"), None),
        (admin, "DELETE", at(slug, "x", "a%00"), None),
        (admin, "POST", f"projects/{slug}/annotations/import", nul_owner.encode()),
        (bob, "GET", f"projects/{slug}/annotations?limit={'9' * 5000}", None),
        (alice, "PUT", at(slug, "x", "alice"), b'{"data": ' + deep + b"}"),
        (
            alice,
            "POST",
            f"projects/{slug}/annotations/import",
            b'{"annotations": [{"item": "y", "data": ' + deep + b"}]}",
        ),
    ):
        answer = client(method, path, raw=raw)
        # A forged cursor of the right shape may just be followed (200); never a 500.
        if answer.status_code >= 500:
            failures.append((answer.status_code, method, path[:90], (raw or b"")[:60]))
        elif method != "GET" or "cursor" not in path:
            error(answer, answer.status_code)
            assert 400 <= answer.status_code < 500
    # JSON "\ud800" parses to a lone surrogate, which no database can store.
    browser = world.browser("admin")
    for method, path, body in (
        ("POST", "tokens", {"name": "\ud800"}),
        ("POST", "tokens", {"name": "t", "projects": [slug, "\udc00"]}),
        ("PATCH", f"projects/{slug}", {"description": "a\ud800"}),
        ("POST", "projects", {"slug": "s", "description": "\ud800"}),
    ):
        answer = browser.api(method, path, body)
        if answer.status_code >= 500:
            failures.append((answer.status_code, method, path, body))
        else:
            error(answer, 400, "surrogate")
    assert not failures, failures
    assert state(world, slug) == before
