"""End-to-end: every attack of the black-box review (SPEC section 13), over real HTTP.

Each test plays one attack against a real hub behind the real proxy, on SQLite and on
PostgreSQL, and checks what the user must be able to rely on. `docs/security.md` names
these tests beside the claims they prove.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from tests.hub import Browser, form_fields
from tests.test_e2e_accounts import PASSWORD, give_password, logged_in_admin
from tests.test_e2e_projects import PASSWORDS, people

pytestmark = pytest.mark.e2e

API = "/hub/annotations/api/"
WRONG = "a wrong guess 00000"


def audit(admin: Browser, query: str) -> list[dict]:
    answer = admin.api("GET", f"audit?{query}")
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def call(hub, token: str, method: str, path: str, body=None, **kw) -> requests.Response:
    return requests.request(
        method,
        f"{hub.url}{API}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}", **kw.pop("headers", {})},
        timeout=60,
        **kw,
    )


def mint(browser: Browser, **body) -> str:
    made = browser.api("POST", "tokens", body)
    assert made.status_code == 201, made.text
    return made.json()["token"]


# -- 1. the lockout is exact under concurrency ---------------------------------------


def parallel_logins(hub, name: str, passwords: list[str]) -> list[requests.Response]:
    """Post every login at the same instant, each from a browser of its own."""
    browsers = [Browser(hub) for _ in passwords]
    forms = [form_fields(b.get("/hub/login").text) for b in browsers]
    start = threading.Barrier(len(passwords))

    def attempt(i: int) -> requests.Response:
        start.wait()
        return browsers[i].http.post(
            f"{hub.url}/hub/login",
            data={**forms[i], "username": name, "password": passwords[i]},
            timeout=120,
        )

    with ThreadPoolExecutor(len(passwords)) as pool:
        return list(pool.map(attempt, range(len(passwords))))


def test_parallel_guesses_get_no_more_password_checks_than_the_limit(make_hub):
    hub = make_hub("c.AnnotationAuthenticator.password_hash_threads = 15")
    admin = logged_in_admin(hub)
    give_password(hub, admin, "alice", PASSWORDS["alice"])
    answers = parallel_logins(hub, "alice", [WRONG] * 30)
    statuses = Counter(answer.status_code for answer in answers)
    # A 403 is a password that was checked and wrong; a 429 one refused before hashing.
    assert set(statuses) <= {403, 429}, statuses
    assert statuses[403] <= 5, statuses
    assert statuses[429] >= 25, statuses
    # The right password, after the limit, is refused like any other.
    assert Browser(hub).login("alice", PASSWORDS["alice"]).status_code == 429
    checked = audit(admin, "action=login.failure&target=alice")
    assert len(checked) == statuses[403]


# -- 2. the client address is the one the proxy saw -----------------------------------


FORGED = {"X-Real-Ip": "6.6.6.6", "X-Forwarded-For": "1.2.3.4"}


def test_forged_address_headers_change_neither_the_audit_nor_the_limit(make_hub):
    hub = make_hub("c.AnnotationAuthenticator.lockout_max_address_failures = 3")
    admin = logged_in_admin(hub)
    for i in range(3):
        browser = Browser(hub)
        # A new forged address each time: the limit must still count them as one.
        forged = {"X-Real-Ip": f"6.6.6.{i}", "X-Forwarded-For": f"1.2.3.{i}, 5.5.5.{i}"}
        browser.http.headers.update(forged)
        assert browser.login(f"nobody{i}", WRONG).status_code == 403
    refused = Browser(hub)
    refused.http.headers.update(FORGED)
    answer = refused.login("admin", PASSWORD)
    assert answer.status_code == 429 and "your address" in answer.text
    addresses = {event["address"] for event in audit(admin, "action=login")}
    assert addresses == {"127.0.0.1"}, addresses


def test_more_trusted_hops_take_the_address_a_front_proxy_appended(make_hub):
    hub = make_hub("c.AnnotationAuthenticator.trusted_proxy_hops = 2")
    admin = logged_in_admin(hub)
    browser = Browser(hub)
    # A front proxy appended 10.0.0.7 to what the client sent; ours appends 127.0.0.1.
    browser.http.headers.update({"X-Forwarded-For": "1.2.3.4, 10.0.0.7", "X-Real-Ip": "6.6.6.6"})
    assert browser.login("admin", WRONG).status_code == 403
    (event,) = audit(admin, "action=login.failure")
    assert event["address"] == "10.0.0.7"


# -- 3. a token's project restriction bounds every route ------------------------------


def test_a_project_restricted_token_reaches_nothing_outside_its_projects(hub):
    admin = logged_in_admin(hub)
    everything = ["annotations:write", "projects:manage", "tokens:manage", "users:manage"]
    token = mint(admin, name="demo only", scopes=everything, projects=["demo"])
    refused = [
        ("POST", "projects", {"slug": "elsewhere"}),
        ("POST", "users", {"name": "mallory"}),
        ("GET", "users", None),
        ("POST", "users/alice/link", None),
        ("PATCH", "users/alice", {"admin": True}),
        ("DELETE", "users/bob", None),
        ("GET", "tokens?all=1", None),
        ("GET", "audit", None),
        ("POST", "tokens", {"name": "for a bot", "owner": "svc:bot"}),
    ]
    for method, path, body in refused:
        answer = call(hub, token, method, path, body)
        assert answer.status_code == 403, (method, path, answer.text)
        assert "restricted to the projects ['demo']" in answer.json()["error"]["message"]
    # Nothing was created or changed.
    assert admin.api("GET", "projects/elsewhere").status_code == 404
    assert admin.api("GET", "users/mallory").status_code == 404
    assert admin.api("GET", "users/alice").json()["admin"] is False
    # Within its projects, and on itself, it works.
    assert call(hub, token, "GET", "me").status_code == 200
    assert call(hub, token, "GET", "projects/demo/members").status_code == 200
    assert call(hub, token, "GET", "tokens").status_code == 200
    body = {"name": "narrower", "scopes": ["annotations:write"], "projects": ["demo"]}
    narrower = call(hub, token, "POST", "tokens", body)
    assert narrower.status_code == 201, narrower.text
    assert call(hub, narrower.json()["token"], "DELETE", "tokens/current").status_code == 204


# -- 4. every state change needs a write scope ----------------------------------------


def test_a_read_only_token_changes_nothing_not_even_its_owners_preferences(hub):
    p = people(hub)
    read = mint(p.alice, name="read", scopes=["annotations:read"])
    answer = call(hub, read, "PATCH", "projects/demo/members/alice", {"show_others": False})
    assert answer.status_code == 403, answer.text
    assert "annotations:write" in answer.json()["error"]["message"]
    members = p.alice.api("GET", "projects/demo/members").json()["items"]
    assert next(m for m in members if m["name"] == "alice")["show_others"] is True
    write = mint(p.alice, name="write", scopes=["annotations:write"])
    changed = call(hub, write, "PATCH", "projects/demo/members/alice", {"show_others": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["show_others"] is False, repr(changed.content)


# -- 5. imports never forge and never overwrite silently ------------------------------


def test_an_import_cannot_forge_owners_who_may_not_write(hub):
    p = people(hub)
    importing = "projects/demo/annotations/import"
    for owner, why in [("bob", "viewer"), ("carol", "not a member"), ("nobody", "no account")]:
        records = [
            {"item": "img-1", "owner": "alice", "data": {"label": "cat"}},
            {"item": "img-1", "owner": owner, "data": {"label": "forged"}},
        ]
        answer = p.admin.api("POST", importing, {"annotations": records})
        assert answer.status_code in (400, 403), answer.text
        message = answer.json()["error"]["message"]
        assert message.startswith("Record 1:") and why in message, message
    # Nothing of any refused batch was written, alice's record included.
    listing = p.admin.api("GET", "projects/demo/annotations").json()
    assert listing["items"] == []


def test_an_import_overwrites_only_the_version_it_names(hub):
    p = people(hub)
    url = "projects/demo/items/img-1/annotations/alice"
    first = p.alice.api("PUT", url, {"data": {"label": "cat"}})
    assert first.status_code == 201
    importing = "projects/demo/annotations/import"
    blind = [
        {"item": "img-1", "owner": "alice", "data": {"label": "overwritten"}},
        {"item": "img-2", "owner": "alice", "data": {"label": "new"}},
    ]
    refused = p.admin.api("POST", importing, {"annotations": blind})
    assert refused.status_code == 412, refused.text
    assert refused.json()["conflicts"] == [
        {"record": 0, "item": "img-1", "owner": "alice", "version": 1}
    ]
    stale = [{"item": "img-1", "owner": "alice", "data": {"label": "x"}, "version": 7}]
    assert p.admin.api("POST", importing, {"annotations": stale}).status_code == 412
    # Nothing written by either refusal: alice's annotation and no img-2.
    assert p.alice.api("GET", url).json()["data"] == {"label": "cat"}
    assert p.alice.api("GET", "projects/demo/items/img-2/annotations/alice").status_code == 404
    named = [{"item": "img-1", "owner": "alice", "data": {"label": "dog"}, "version": 1}]
    done = p.admin.api("POST", importing, {"annotations": named})
    assert done.status_code == 200, done.text
    after = p.alice.api("GET", url).json()
    assert after["data"] == {"label": "dog"} and after["version"] == 2


# -- 6. big bodies cost nothing ---------------------------------------------------------


def raw_request(hub, head: str, body_start: bytes = b"") -> tuple[int, bytes]:
    """Send a request's head and the start of a body, never the rest; the answer's
    status and body. A server that waited for the whole body would time out here."""
    host, port = urlsplit(hub.url).hostname, urlsplit(hub.url).port
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(head.encode() + b"\r\n" + body_start)
        received = b""
        while b"\r\n\r\n" not in received or not _complete(received):
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
    head_part, _, body = received.partition(b"\r\n\r\n")
    return int(head_part.split()[1]), body


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return length is not None and len(body) >= int(length.group(1))


def test_oversized_bodies_are_refused_from_their_length_before_they_are_read(hub):
    p = people(hub)
    token = mint(p.admin, name="importer", scopes=["annotations:write"])
    mib = 1 << 20
    started = time.monotonic()
    status, body = raw_request(
        hub,
        f"POST {API}projects/demo/annotations/import HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {64 * mib}\r\n",
        b'{"annotations": [',
    )
    assert status == 413, body
    assert "bytes" in json.loads(body)["error"]["message"]
    anonymous = [
        f"POST {API}projects/demo/annotations/import HTTP/1.1",
        f"PUT {API}projects/demo/items/x/annotations/alice HTTP/1.1",
        "POST /hub/annotations/tokens HTTP/1.1",
    ]
    for line in anonymous:
        status, _ = raw_request(
            hub, f"{line}\r\nHost: x\r\nContent-Length: {100 * mib}\r\n", b"{" * 1000
        )
        assert status in (401, 403), line
    # Answered at once: nobody waited for (or held) a 64 or 100 MiB body.
    assert time.monotonic() - started < 10
    # A client that sends all of a body a little too large still gets the 413 (the
    # body is read through and dropped), not a reset the proxy would turn into a 503.
    too_big = requests.post(
        f"{hub.url}{API}projects/demo/annotations/import",
        data=b" " * (20 * mib),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert too_big.status_code == 413, too_big.text
    assert p.admin.api("GET", "me").status_code == 200


# -- 7. no secret in a URL reaches the log ------------------------------------------------


def test_a_token_in_a_page_url_is_neither_forwarded_nor_logged(hub):
    (link,) = hub.setup_links()
    secret = link.split("token=")[1]
    for key in ("token", "TOKEN", "access_token", "Token"):
        page = Browser(hub).get(f"/hub/annotations/tokens?{key}={secret}", allow_redirects=False)
        assert page.status_code == 302
        location = page.headers["Location"]
        assert secret not in location and quote(secret) not in location
        nxt = parse_qs(urlsplit(location).query)["next"][0]
        assert nxt == "/hub/annotations/tokens", nxt
        Browser(hub).get(f"/hub/annotations/set-password?{key}={secret}x")
        Browser(hub).get(f"/hub/nowhere?{key}={secret}")
    hub.stop()
    # The first-run line is the one place the link is printed, by design.
    lines = [line for line in hub.log().splitlines() if secret in line]
    assert all("set-password?token=" in line and "http://" in line for line in lines), lines
    assert len(lines) == 1


# -- 8. links can be revoked --------------------------------------------------------------


def link_page_status(hub, link: str) -> tuple[int, str]:
    page = Browser(hub).get(link)
    return page.status_code, page.text


def test_a_new_link_revokes_older_ones_and_deactivation_and_admins_revoke_all(hub):
    admin = logged_in_admin(hub)
    first = admin.api("POST", "users", {"name": "erin"}).json()["link"]
    second = admin.api("POST", "users/erin/link").json()["link"]
    status, text = link_page_status(hub, first)
    assert status == 400 and "newer link" in text, text
    assert link_page_status(hub, second)[0] == 200
    # A hub admin revokes it explicitly (API).
    assert admin.api("DELETE", "users/erin/link").status_code == 204
    status, text = link_page_status(hub, second)
    assert status == 400 and "revoked" in text
    # Deactivation revokes links too: reactivating does not bring them back.
    third = admin.api("POST", "users/erin/link").json()["link"]
    assert admin.api("PATCH", "users/erin", {"active": False}).status_code == 200
    assert admin.api("PATCH", "users/erin", {"active": True}).status_code == 200
    assert link_page_status(hub, third)[0] == 400
    # And on the Users page.
    fourth = admin.api("POST", "users/erin/link").json()["link"]
    page = admin.post_form("/hub/annotations/users", {"action": "revoke-links", "name": "erin"})
    assert page.status_code == 200 and "erin: links revoked" in page.text
    assert link_page_status(hub, fourth)[0] == 400
    revokes = audit(admin, "action=link.revoke&target=erin")
    reasons = sorted(event["details"]["reason"] for event in revokes)
    assert reasons == ["deactivated", "revoked", "revoked"], reasons


# -- 9. a deactivated account is no oracle -------------------------------------------------


def login_error(answer: requests.Response) -> tuple[int, list[str]]:
    return answer.status_code, re.findall(r'<p class="login_error">([^<]*)</p>', answer.text)


def test_a_deactivated_account_answers_the_right_and_a_wrong_password_alike(hub):
    admin = logged_in_admin(hub)
    give_password(hub, admin, "alice", PASSWORDS["alice"])
    assert admin.api("PATCH", "users/alice", {"active": False}).status_code == 200
    right = login_error(Browser(hub).login("alice", PASSWORDS["alice"]))
    wrong = login_error(Browser(hub).login("alice", WRONG))
    unknown = login_error(Browser(hub).login("nobody-here", WRONG))
    assert right == wrong == unknown == (403, ["Invalid username or password"])
    # The hub admins still learn why alice could not log in.
    assert audit(admin, "action=login.deactivated&target=alice")


# -- 10. settings have bounds ------------------------------------------------------------


@pytest.mark.parametrize(
    "setting",
    [
        "lockout_max_failures = 0",
        "lockout_window_minutes = 0",
        "token_max_lifetime_days = 0",
        "password_hash_threads = 0",
        "annotation_import_max_bytes = -1",
    ],
)
def test_an_impossible_setting_stops_the_hub_with_a_message_naming_it(make_hub, setting):
    hub = make_hub(f"c.AnnotationAuthenticator.{setting}", start=False)
    hub.start_fails = True
    with pytest.raises(RuntimeError, match="jupyterhub exited"):
        hub.start(timeout=30)
    option = setting.split()[0]
    assert f"TraitError: The value of the '{option}' trait" in hub.log()


# -- the body's type and duplicate keys ----------------------------------------------------


def test_a_body_that_is_not_json_or_repeats_a_key_is_refused(hub):
    admin = logged_in_admin(hub)
    token = mint(admin, name="writer", scopes=["annotations:write"])
    url = "projects/demo/items/img-1/annotations/admin"
    as_form = requests.put(
        f"{hub.url}{API}{url}",
        data='{"data": 1}',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
        timeout=30,
    )
    assert as_form.status_code == 415, as_form.text
    assert "application/json" in as_form.json()["error"]["message"]
    repeated = requests.put(
        f"{hub.url}{API}{url}",
        data='{"data": 1, "data": 2}',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert repeated.status_code == 400
    assert "'data' appears twice" in repeated.json()["error"]["message"]
    assert admin.api("GET", url).status_code == 404  # neither wrote anything


# -- invalid percent-encoding: the proxy's 500, the hub's 4xx -------------------------


def test_invalid_percent_encoding_is_a_proxy_500_and_a_hub_4xx(hub):
    """A known limit (docs/security.md): configurable-http-proxy cannot decode ``%FF``
    and answers 500 itself; the hub, asked directly, refuses the path with a 4xx. If
    a proxy release fixes it, the first assertion fails and the docs must change."""
    admin = logged_in_admin(hub)
    token = mint(admin, name="reader", scopes=["annotations:read"])
    auth = {"Authorization": f"Bearer {token}"}
    through_proxy = requests.get(f"{hub.url}{API}users/%FF", headers=auth, timeout=30)
    assert through_proxy.status_code == 500
    direct = requests.get(
        f"http://127.0.0.1:{hub.hub_port}{API}users/%FF", headers=auth, timeout=30
    )
    assert 400 <= direct.status_code < 500, direct.text
    assert not hub.tracebacks()


def test_a_method_we_do_not_route_never_costs_the_next_request_a_503(hub):
    """Tornado answers a method outside a handler's routes (TRACE, QUERY) with 405
    before reading the request, and drops the connection: unless the answer says so,
    the proxy sends the next request, anyone's, down the dead connection (a 503)."""
    http = requests.Session()  # one keep-alive connection to the proxy
    url = f"{hub.url}/hub/annotations/api/me"
    for _ in range(20):
        odd = http.request("TRACE", url, timeout=30)
        assert odd.status_code == 405 and odd.headers["Connection"] == "close"
        after = http.get(url, timeout=30)
        assert after.status_code == 401, after.text
