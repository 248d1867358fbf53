"""End-to-end: the work queue (SPEC 17) on a real hub behind the real proxy, on SQLite
and PostgreSQL: registering items, 16 annotators claiming and annotating at once with
their PATs, progress, agreement, settings, and who may do what.

One hub per backend serves the module (16 people with passwords and tokens cost
seconds to make); each test works in a project of its own.
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import PROXY, require
from tests.hub import Browser, Hub
from tests.test_e2e_accounts import logged_in_admin
from tests.test_e2e_projects import error, ok

pytestmark = pytest.mark.e2e

API = "/hub/annotations/api/"
ANNOTATORS = [f"worker{n:02}" for n in range(16)]


class Team:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.admin = logged_in_admin(hub)
        with ThreadPoolExecutor(8) as pool:
            self.tokens = dict(zip(ANNOTATORS, pool.map(self.person, ANNOTATORS), strict=True))

    def person(self, name: str, scopes=("annotations:read", "annotations:write")) -> str:
        """An account with a password, logged in once, and a PAT it made."""
        made = ok(self.admin.api("POST", "users", {"name": name}), 201)
        password = f"{name}s passphrase 12345"
        assert Browser(self.hub).set_password(made["link"], password).status_code == 200
        browser = Browser(self.hub)
        assert browser.login(name, password).status_code == 200
        token = ok(browser.api("POST", "tokens", {"name": "t", "scopes": list(scopes)}), 201)
        return token["token"]

    def client(self, name: str) -> requests.Session:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {self.tokens[name]}"
        return http

    def call(self, http, method: str, path: str, body=None) -> requests.Response:
        kw = {} if body is None else {"json": body}
        return http.request(method, f"{self.hub.url}{API}{path}", timeout=60, **kw)

    def project(self, members: dict[str, str], **settings) -> str:
        slug = f"q-{uuid.uuid4().hex[:8]}"
        ok(self.admin.api("POST", "projects", {"slug": slug, **settings}), 201)
        for name, role in members.items():
            ok(self.admin.api("PUT", f"projects/{slug}/members/{name}", {"role": role}), 201)
        return slug


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def team(request, tmp_path_factory):
    require(PROXY.exists(), f"configurable-http-proxy is not installed at {PROXY} (npm ci)")
    folder = tmp_path_factory.mktemp(f"work-{request.param}")
    if request.param == "sqlite":
        path = folder / "annotations.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_admin").create()
    (folder / "hub").mkdir()
    hub = Hub(folder / "hub", url).start()
    try:
        yield Team(hub)
    finally:
        hub.stop()
        hub.keep_log(f"test_e2e_work-{request.param}")
    assert not hub.tokens_in_log(), "plaintext tokens in the hub log"
    assert not hub.tracebacks(), hub.tracebacks()


def test_items_register_all_or_nothing_and_list_in_pages(team):
    slug = team.project({})
    admin = team.admin
    items = [
        {"item": f"img-{n:03}", "data": {"url": f"https://example.org/{n}.png"}} for n in range(150)
    ]
    assert ok(admin.api("POST", f"projects/{slug}/items", {"items": items}), 201) == {
        "created": 150,
        "unchanged": 0,
    }
    again = admin.api("POST", f"projects/{slug}/items", {"items": items[:10]})
    assert ok(again, 200) == {"created": 0, "unchanged": 10}
    changed = [{"item": "img-new"}, {"item": "img-001", "data": "other"}]
    error(admin.api("POST", f"projects/{slug}/items", {"items": changed}), 409, "img-001")
    error(admin.api("POST", f"projects/{slug}/items", {"items": []}), 400)
    error(admin.api("POST", f"projects/{slug}/items", {"items": [{"item": "a b"}]}), 400, "item")
    first = ok(admin.api("GET", f"projects/{slug}/items?limit=100"))
    second = ok(admin.api("GET", f"projects/{slug}/items?cursor={first['next']}"))
    names = [i["item"] for i in first["items"] + second["items"]]
    assert names == [f"img-{n:03}" for n in range(150)] and second["next"] is None
    assert first["items"][0]["data"] == {"url": "https://example.org/0.png"}


def test_sixteen_annotators_at_once_fill_every_slot_and_nobody_gets_an_item_twice(team):
    slug = team.project(dict.fromkeys(ANNOTATORS, "annotator"), overlap=3)
    items = [{"item": f"doc-{n:02}", "data": {"text": f"text {n}"}} for n in range(40)]
    ok(team.admin.api("POST", f"projects/{slug}/items", {"items": items}), 201)
    data = {i["item"]: i["data"] for i in items}
    statuses: Counter = Counter()

    def annotate(name: str) -> list[str]:
        http, done = team.client(name), []
        while True:
            claim = team.call(http, "POST", f"projects/{slug}/queue/next")
            statuses[claim.status_code] += 1
            if claim.status_code == 204:
                return done
            item = ok(claim)["item"]
            assert claim.json()["data"] == data[item]
            label = "yes" if int(item[-2:]) % 4 else name[-1]  # mostly agreeing
            put = team.call(
                http,
                "PUT",
                f"projects/{slug}/items/{item}/annotations/{name}",
                {"data": {"label": label}},
            )
            statuses[put.status_code] += 1
            assert put.status_code == 201, put.text
            done.append(item)

    with ThreadPoolExecutor(len(ANNOTATORS)) as pool:
        done = dict(zip(ANNOTATORS, pool.map(annotate, ANNOTATORS), strict=True))
    assert not [s for s in statuses if s >= 500], statuses
    for name, items_done in done.items():
        assert len(items_done) == len(set(items_done)), name
    assert Counter(i for d in done.values() for i in d) == {f"doc-{n:02}": 3 for n in range(40)}

    progress = ok(team.admin.api("GET", f"projects/{slug}/progress"))
    assert (progress["items"], progress["complete"], progress["overlap"]) == (40, 40, 3)
    assert progress["items_by_annotations"] == {"3": 40}
    by_name = {a["name"]: a for a in progress["annotators"]}
    assert {n: by_name[n]["done"] for n in ANNOTATORS} == {n: len(d) for n, d in done.items()}
    assert all(by_name[n]["claimed"] == 0 for n in ANNOTATORS)

    agreement = ok(team.admin.api("GET", f"projects/{slug}/agreement?field=/label"))
    assert (agreement["items"], agreement["annotations"]) == (40, 120)
    assert agreement["annotators"] == len([n for n, d in done.items() if d])
    assert agreement["alpha"] is not None and agreement["alpha"] <= 1
    error(team.admin.api("GET", f"projects/{slug}/agreement?field=label"), 400, "pointer")
    error(team.admin.api("GET", f"projects/{slug}/agreement"), 400, "field")


def test_claims_come_back_when_held_can_be_released_and_never_repeat(team):
    slug = team.project({"worker00": "annotator", "worker01": "annotator"}, overlap=1)
    ok(
        team.admin.api("POST", f"projects/{slug}/items", {"items": [{"item": "a"}, {"item": "b"}]}),
        201,
    )
    w0, w1 = team.client("worker00"), team.client("worker01")
    first = ok(team.call(w0, "POST", f"projects/{slug}/queue/next"))
    assert first["item"] == "a" and first["data"] is None and first["lease_expires_at"]
    assert ok(team.call(w0, "POST", f"projects/{slug}/queue/next")) == first  # a retry
    assert team.call(w0, "DELETE", f"projects/{slug}/queue/claims/a").status_code == 204
    error(team.call(w0, "DELETE", f"projects/{slug}/queue/claims/a"), 404, "no claim")
    assert ok(team.call(w1, "POST", f"projects/{slug}/queue/next"))["item"] == "a"
    assert ok(team.call(w0, "POST", f"projects/{slug}/queue/next"))["item"] == "b"
    team.call(w0, "PUT", f"projects/{slug}/items/b/annotations/worker00", {"data": {}})
    assert team.call(w0, "POST", f"projects/{slug}/queue/next").status_code == 204
    metrics = team.admin.get("/hub/metrics").text
    assert 'annotations_claims_total{outcome="released"}' in metrics


def test_viewers_read_only_tokens_and_annotators_get_what_their_role_allows(team):
    slug = team.project({"worker02": "viewer", "worker03": "annotator"}, overlap=1)
    ok(team.admin.api("POST", f"projects/{slug}/items", {"items": [{"item": "a"}]}), 201)
    viewer, annotator = team.client("worker02"), team.client("worker03")
    error(team.call(viewer, "POST", f"projects/{slug}/queue/next"), 403, "Viewers")
    error(team.call(annotator, "POST", f"projects/{slug}/items", {"items": [{"item": "x"}]}), 403)
    error(team.call(annotator, "GET", f"projects/{slug}/agreement?field=/label"), 403, "viewers")
    ok(team.call(viewer, "GET", f"projects/{slug}/agreement?field=/label"))
    ok(team.call(annotator, "GET", f"projects/{slug}/progress"))
    read_only = requests.Session()
    token = ok(
        team.admin.api("POST", "tokens", {"name": "ro", "scopes": ["annotations:read"]}), 201
    )
    read_only.headers["Authorization"] = f"Bearer {token['token']}"
    error(team.call(read_only, "POST", f"projects/{slug}/queue/next"), 403, "scope")
    outsider = team.client("worker04")
    error(team.call(outsider, "POST", f"projects/{slug}/queue/next"), 404)


def test_settings_are_checked_audited_and_blind_hides_others_until_your_own(team):
    slug = team.project({"worker05": "annotator", "worker06": "annotator"}, share_annotations=True)
    admin = team.admin
    error(admin.api("PATCH", f"projects/{slug}", {"overlap": 0}), 400, "overlap")
    error(admin.api("PATCH", f"projects/{slug}", {"lease_minutes": "30"}), 400, "lease_minutes")
    error(admin.api("PATCH", f"projects/{slug}", {"blind": 1}), 400, "blind")
    changed = ok(
        admin.api("PATCH", f"projects/{slug}", {"overlap": 2, "lease_minutes": 5, "blind": True})
    )
    assert (changed["overlap"], changed["lease_minutes"], changed["blind"]) == (2, 5, True)
    events = ok(admin.api("GET", f"audit?action=project.update&target={slug}"))["items"]
    assert events[0]["details"] == {"overlap": 2, "lease_minutes": 5, "blind": True}
    w5, w6 = team.client("worker05"), team.client("worker06")
    team.call(w5, "PUT", f"projects/{slug}/items/a/annotations/worker05", {"data": {"label": 1}})
    error(team.call(w6, "GET", f"projects/{slug}/items/a/annotations/worker05"), 404)
    assert ok(team.call(w6, "GET", f"projects/{slug}/annotations"))["items"] == []
    team.call(w6, "PUT", f"projects/{slug}/items/a/annotations/worker06", {"data": {"label": 2}})
    assert ok(team.call(w6, "GET", f"projects/{slug}/items/a/annotations/worker05"))["data"] == {
        "label": 1
    }
