"""Every route declares a permission, and the chokepoint enforces it on a real hub.

Adding a route, or a verb to a handler, without ``@requires(...)`` fails here; so does
a route that lets an anonymous caller or a caller without the right through.
"""

from __future__ import annotations

import re

import pytest
from jupyterhub_annotations.authenticator.permissions import (
    AUTHENTICATED,
    PERMISSIONS,
    PROJECT_PERMISSIONS,
    PUBLIC,
    TOKENS_MANAGE,
)
from jupyterhub_annotations.handlers import default_handlers
from jupyterhub_annotations.handlers.base import APINotFound, declared_permission, implemented_verbs

from tests.conftest import PROXY, require
from tests.hub import Browser, Hub, form_fields
from tests.test_e2e_accounts import PASSWORD, setup_admin

# The only routes anyone may use without logging in.
PUBLIC_ALLOWLIST = {
    ("/annotations/set-password", "get"),
    ("/annotations/set-password", "post"),
    ("/annotations/api/openapi.json", "get"),
}
SAMPLE = {"slug": "demo", "name": "alice", "token_id": "1", "item": "img1", "owner": "alice"}
# Project permissions every member holds, viewers included.
EVERY_MEMBER = ("project:read", "annotations:read", "member:self")
# The others, and a member of demo each of them refuses (bob: viewer; alice: annotator).
REFUSED_MEMBER = {
    "project:manage": "bob",
    "project:delete": "bob",
    "annotations:write": "bob",
    "annotations:review": "alice",  # everyone's annotations at once: viewers may
}

ROUTES = [
    (pattern, handler, verb)
    for pattern, handler in default_handlers
    if handler is not APINotFound  # the JSON 404 for unknown API paths
    for verb in implemented_verbs(handler)
]


# Routes every logged-in principal may use have no "caller without the right" to try
# (tokens:manage is every session's; tokens without that scope: test_e2e_tokens.py).
EVERY_SESSION = (PUBLIC, AUTHENTICATED, TOKENS_MANAGE)
GUARDED = [r for r in ROUTES if declared_permission(r[1], r[2]) not in EVERY_SESSION]
PRIVATE = [r for r in ROUTES if (r[0], r[2]) not in PUBLIC_ALLOWLIST]


def route_id(route) -> str:
    return f"{route[2].upper()} {route[0]}"


def sample_path(pattern: str) -> str:
    return "/hub" + re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: SAMPLE[m.group(1)], pattern)


def is_api(pattern: str) -> bool:
    return pattern.startswith("/annotations/api/")


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_every_route_declares_a_known_permission(route):
    pattern, handler, verb = route
    permission = declared_permission(handler, verb)
    assert permission in PERMISSIONS, f"{handler.__name__}.{verb} declares no permission"
    if permission == PUBLIC:
        assert (pattern, verb) in PUBLIC_ALLOWLIST


def test_the_route_list_is_not_empty_and_covers_each_family():
    patterns = {pattern for pattern, _, _ in ROUTES}
    families = ("/users", "/projects", "/members", "/me", "/change-password", "/tokens", "/items")
    for family in families:
        assert any(family in p for p in patterns), family


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require(PROXY.exists(), f"configurable-http-proxy is not installed at {PROXY} (npm ci)")
    folder = tmp_path_factory.mktemp("routes")
    hub = Hub(folder, f"sqlite:///{folder / 'annotations.sqlite'}").start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def people(hub) -> dict[str, Browser]:
    """carol: an active account in no project and no hub admin; bob: viewer of demo;
    alice: annotator of demo."""
    admin = setup_admin(hub)
    admin.login("admin", PASSWORD)
    browsers = {}
    for name in ("carol", "bob", "alice"):
        if name == "carol":
            link = admin.api("POST", "users", {"name": "carol"}).json()["link"]
        else:
            link = admin.api("POST", f"users/{name}/link").json()["link"]
        Browser(hub).set_password(link, f"{name} passphrase 123")
        browsers[name] = Browser(hub)
        assert browsers[name].login(name, f"{name} passphrase 123").status_code == 200
    return browsers


def call(browser: Browser, verb: str, path: str, api: bool):
    """One request as that browser would make it, with its XSRF token for writes."""
    if verb == "get":
        return browser.http.get(browser._url(path), allow_redirects=False, timeout=30)
    if api:
        return browser.api(verb.upper(), path.removeprefix("/hub/annotations/api/"), json={})
    data = form_fields(browser.get("/hub/annotations/change-password").text)
    return browser.http.post(browser._url(path), data=data, allow_redirects=False, timeout=30)


@pytest.mark.e2e
@pytest.mark.parametrize("route", PRIVATE, ids=route_id)
def test_anonymous_callers_are_refused(hub, route):
    pattern, _, verb = route
    path = sample_path(pattern)
    answer = Browser(hub).http.request(verb.upper(), f"{hub.url}{path}", allow_redirects=False)
    if is_api(pattern):
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["status"] == 401
    elif verb == "get":
        assert answer.status_code == 302
        assert "/hub/login?next=" in answer.headers["Location"]
    else:
        assert answer.status_code == 403


@pytest.mark.e2e
@pytest.mark.parametrize("route", GUARDED, ids=route_id)
def test_callers_without_the_right_are_refused(hub, people, route):
    pattern, handler, verb = route
    permission = declared_permission(handler, verb)
    path, api = sample_path(pattern), is_api(pattern)
    outsider = call(people["carol"], verb, path, api)
    expected = 404 if permission in PROJECT_PERMISSIONS else 403
    assert outsider.status_code == expected, outsider.text[:300]
    if api:
        assert outsider.json()["error"]["status"] == expected
    assert set(REFUSED_MEMBER) == set(PROJECT_PERMISSIONS) - set(EVERY_MEMBER)
    if permission in REFUSED_MEMBER:
        member = call(people[REFUSED_MEMBER[permission]], verb, path, api)
        assert member.status_code == 403, member.text[:300]
