"""The OpenAPI document (``share/openapi.yaml``): valid, complete, served, and true.

- It is a valid OpenAPI document, and it names exactly the API routes and verbs of
  `default_handlers` (no more, no fewer). Every array in a response says what it
  holds, so generated clients keep every list (tests/test_openapi_client.py).
- ``GET /hub/annotations/api/openapi.json`` serves it, to anyone.
- Schemathesis fuzzes a real hub from it (SQLite and PostgreSQL) with a hub admin's
  token that holds every scope, over every operation, and fails on any 5xx, any status
  the document does not list for the operation, any body or header that does not match
  the document, and any traceback in the hub log.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
import yaml
from jupyterhub_annotations.authenticator.errors import InvalidInput
from jupyterhub_annotations.authenticator.paths import share_dir
from jupyterhub_annotations.authenticator.permissions import SCOPES
from jupyterhub_annotations.authenticator.usernames import normalize
from jupyterhub_annotations.handlers import default_handlers
from jupyterhub_annotations.handlers.base import APINotFound, declared_body, implemented_verbs
from jupyterhub_annotations.handlers.document import body_validator, check_body
from openapi_spec_validator import validate

from tests.conftest import PROXY, require
from tests.hub import Browser, Hub
from tests.test_e2e_accounts import give_password, logged_in_admin

DOCUMENT = share_dir() / "openapi.yaml"
API_PREFIX = "/annotations/api"
SERVER = "/hub/annotations/api"
METHODS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")


def load() -> dict:
    return yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))


def openapi_path(pattern: str) -> str:
    """``/annotations/api/users/(?P<name>[^/]+)`` -> ``/users/{name}``."""
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern.removeprefix(API_PREFIX))


def api_routes() -> set[tuple[str, str]]:
    return {
        (openapi_path(pattern), verb)
        for pattern, handler in default_handlers
        if pattern.startswith(f"{API_PREFIX}/") and handler is not APINotFound
        for verb in implemented_verbs(handler)
    }


def documented_operations(document: dict) -> set[tuple[str, str]]:
    return {
        (path, verb) for path, item in document["paths"].items() for verb in item if verb in METHODS
    }


# -- the document itself ---------------------------------------------------------------


def test_the_document_is_valid_openapi():
    document = load()
    validate(document)
    assert document["openapi"].startswith("3.")
    assert document["servers"][0]["url"] == SERVER


def test_every_route_is_documented_and_every_documented_path_is_a_route():
    routes, documented = api_routes(), documented_operations(load())
    assert routes, "no API routes found"
    assert routes - documented == set(), "routes missing from share/openapi.yaml"
    assert documented - routes == set(), "operations in share/openapi.yaml that are no route"


def test_path_parameters_match_the_route_groups():
    document = load()
    for path, item in document["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for verb in (v for v in item if v in METHODS):
            params = [*item.get("parameters", []), *item[verb].get("parameters", [])]
            declared = {
                resolve(document, p)["name"] for p in params if resolve(document, p)["in"] == "path"
            }
            assert declared == names, f"{verb.upper()} {path}"


def test_every_operation_documents_its_errors():
    """401 everywhere but the public document; every body can be refused as too large."""
    document = load()
    for path, item in document["paths"].items():
        for verb in (v for v in item if v in METHODS):
            operation = item[verb]
            statuses = set(operation["responses"])
            assert "401" in statuses, f"{verb.upper()} {path}"
            assert any(s.startswith("2") for s in statuses), f"{verb.upper()} {path}"
            if "requestBody" in operation:
                assert {"400", "413"} <= statuses, f"{verb.upper()} {path}"
                body = resolve(
                    document, operation["requestBody"]["content"]["application/json"]["schema"]
                )
                assert body.get("additionalProperties") is False, f"{verb.upper()} {path}"
            if path != "/openapi.json":
                assert operation.get("security", document["security"]), f"{verb.upper()} {path}"


def test_every_list_response_types_its_items():
    """Every array in a response schema says what it holds (a page's `items` above all):
    generated clients drop an array without `items` (tests/test_openapi_client.py)."""
    document = load()
    untyped: set[str] = set()

    def visit(node: object, where: str, seen: frozenset[str]) -> None:
        if isinstance(node, list):
            for i, child in enumerate(node):
                visit(child, f"{where}[{i}]", seen)
            return
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            if node["$ref"] not in seen:  # a schema may refer to itself
                visit(resolve(document, node), node["$ref"], seen | {node["$ref"]})
            return
        kinds = node.get("type")  # compared, not iterated: in `properties` it names a field
        if kinds in ("array", ["array", "null"], ["null", "array"]) and "items" not in node:
            untyped.add(where)
        for key, child in node.items():
            visit(child, f"{where}/{key}", seen)

    for path, item in document["paths"].items():
        for verb in (v for v in item if v in METHODS):
            for status, response in item[verb]["responses"].items():
                for media in resolve(document, response).get("content", {}).values():
                    visit(media.get("schema", {}), f"{verb.upper()} {path} {status}", frozenset())
    assert not untyped, f"arrays without an item type: {sorted(untyped)}"


def test_every_body_is_checked_against_its_documented_schema():
    """The handler's declared body schema (`requires(..., body=)`) is the document's
    requestBody, for every route and verb: the two cannot drift apart."""
    document = load()
    handlers = {
        (openapi_path(pattern), verb): handler
        for pattern, handler in default_handlers
        if pattern.startswith(f"{API_PREFIX}/") and handler is not APINotFound
        for verb in implemented_verbs(handler)
    }
    for (path, verb), handler in handlers.items():
        body = document["paths"][path][verb].get("requestBody")
        documented = None
        if body is not None:
            documented = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert declared_body(handler, verb) == documented, f"{verb.upper()} {path}"
        if documented is not None:
            body_validator(documented)  # resolvable, a valid schema


@pytest.mark.parametrize(
    ("schema", "body", "message"),
    [
        ("NewUser", [], "The body must be a JSON object."),
        ("NewUser", {}, "Missing fields ['name']."),
        ("NewUser", {"name": "x", "colour": 1}, "Unknown fields ['colour']: allowed are"),
        ("NewUser", {"name": "x", "admin": 1}, "'admin' must be true or false."),
        ("NewUser", {"name": "Zoé"}, "'name' must be an account name: a person's"),
        ("NewUser", {"name": "SVC:Bot"}, None),
        ("NewToken", {"name": "a\x00b"}, "'name' contains a NUL character (\\u0000)"),
        ("NewToken", {"name": "   "}, "'name' must be 1 to 100 characters"),
        ("NewToken", {"name": " " + "x" * 100 + " "}, None),
        ("NewToken", {"name": "x" * 101}, "'name' must be 1 to 100 characters"),
        ("NewToken", {"name": "t", "scopes": ["nope"]}, "'scopes[0]' must be one of"),
        ("NewToken", {"name": "t", "scopes": []}, "'scopes' must be a non-empty list."),
        ("NewToken", {"name": "t", "projects": "demo"}, "'projects' must be a list or null."),
        ("NewToken", {"name": "t", "expires_in_days": 0}, "'expires_in_days' must be 1 to 90."),
        (
            "ImportRequest",
            {"annotations": [{"item": "a", "data": 1, "owner": ""}]},
            "Record 0: 'owner' must be an account name",
        ),
        (
            "ImportRequest",
            {"annotations": [{"item": "a b", "data": 1}]},
            "Record 0: 'item' must be 1 to 256 letters",
        ),
        (
            "ImportRequest",
            {"annotations": [{"data": 1}]},
            "Record 0: Missing fields ['item'].",
        ),
        ("AnnotationWrite", {"data": {"any": ["json", "\x00"]}}, None),
    ],
)
def test_bodies_are_refused_with_the_field_and_what_it_must_be(schema, body, message):
    if message is None:
        check_body(body, schema)
        return
    with pytest.raises(InvalidInput) as refused:
        check_body(body, schema)
    assert str(refused.value).startswith(message), str(refused.value)


def resolve(document: dict, node: dict) -> dict:
    """``node``, or what its local ``$ref`` points at."""
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = document
        for key in ref[2:].split("/"):
            node = node[key.replace("~1", "/").replace("~0", "~")]
    return node


# -- served by the hub -----------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_hub_serves_the_document_to_anyone(hub):
    answer = requests.get(f"{hub.url}{SERVER}/openapi.json", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json() == load()
    # No redirect, no cookie needed; a bad credential is still refused like elsewhere.
    bad = requests.get(
        f"{hub.url}{SERVER}/openapi.json", headers={"Authorization": "Bearer nope"}, timeout=30
    )
    assert bad.status_code == 401 and bad.json()["error"]["status"] == 401


# -- fuzzing a real hub from the document ----------------------------------------------

# Generated requests per operation and phase: with the coverage phase (boundary values
# of every parameter and body field, and undeclared methods) this comes to well over
# 1,000 requests per run, a floor `fuzz_target` asserts. Dig deeper locally with
# ANNOTATIONS_FUZZ_EXAMPLES=500.
MAX_EXAMPLES = int(os.environ.get("ANNOTATIONS_FUZZ_EXAMPLES", "40"))
MIN_REQUESTS = 1000
SEED = 20240606
FUZZ_TOKEN = "fuzz"
ADMIN = "admin"
# Values the generator mixes in, so requests reach existing projects, accounts, items
# and annotations instead of 404 every time. Never the fuzzing admin's own name for
# `users/{name}`: see `self_destructive`.
DICTIONARIES = {
    "slugs": ["demo", "birds"],
    "names": ["alice", "bob", "carol", "svc:bot"],
    "items": ["img1", "img2"],
    "owners": [ADMIN, "alice", "svc:bot"],
    "new_slugs": ["birds", "fish"],
    "new_names": ["dave", "svc:crawler", "carol"],
    "projects": ["demo", "birds"],
    # Times at the edges of what a datetime holds, offsets included.
    "times": [
        "2026-11-25T09:00:00Z",
        "2026-11-25",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
    ],
    "actions": ["login", "token.create", "user"],
}
BINDINGS = {
    "path.slug": "slugs",
    "path.name": "names",
    "path.item": "items",
    "path.owner": "owners",
    "query.item": "items",
    "query.owner": "owners",
    "body.slug": "new_slugs",
    "body.name": "new_names",
    "body.projects[*]": "projects",
    "body.annotations[*].item": "items",
    "body.annotations[*].owner": "owners",
    "body.owner": "owners",
    "query.since": "times",
    "query.action": "actions",
    "query.actor": "owners",
    "query.target": "names",
}


@dataclass
class FuzzTarget:
    hub: object
    token: str
    token_id: int
    admin: Browser
    requests: int = 0
    skipped: list[str] = field(default_factory=list)
    operations: set[str] = field(default_factory=set)
    log_offset: int = 0

    def new_log(self) -> str:
        """What the hub logged since the last call."""
        text = self.hub.log()
        new, self.log_offset = text[self.log_offset :], len(text)
        return new


def seed(hub) -> FuzzTarget:
    """Accounts, projects, members and annotations for the requests to find, and the
    fuzzing token: the first admin's, with every scope."""
    admin = logged_in_admin(hub)
    give_password(hub, admin, "alice", "alice passphrase 123")
    for body in ({"name": "carol"}, {"name": "svc:bot"}):
        assert admin.api("POST", "users", body).status_code == 201
    assert admin.api("POST", "projects", {"slug": "birds"}).status_code == 201
    assert admin.api("PUT", "projects/birds/members/carol", {"role": "annotator"}).ok
    assert admin.api("PUT", "projects/birds/members/svc:bot", {"role": "annotator"}).ok
    for slug in ("demo", "birds"):
        answer = admin.api("PUT", f"projects/{slug}/items/img1/annotations/{ADMIN}", {"data": 1})
        assert answer.status_code == 201, answer.text
    alice = Browser(hub)
    alice.login("alice", "alice passphrase 123")
    assert alice.api("PUT", "projects/demo/items/img1/annotations/alice", {"data": [1]}).ok
    created = admin.api("POST", "tokens", {"name": FUZZ_TOKEN, "scopes": list(SCOPES)})
    assert created.status_code == 201, created.text
    return FuzzTarget(hub, created.json()["token"], created.json()["id"], admin)


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",  # valid and invalid requests
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            # The fuzzing token is the credential: no generated Authorization headers.
            "with-security-parameters": False,
        },
        "dictionaries": {name: {"values": values} for name, values in DICTIONARIES.items()},
        "parameters": {
            key: {"dictionary": name, "probability": 0.7} for key, name in BINDINGS.items()
        },
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            # "A schema-valid request is accepted" cannot hold here: whether a request
            # succeeds depends on what exists (projects, accounts, versions, live token
            # names) and on rules across fields (the owner in the body and the address,
            # scopes the caller can hold), which a schema does not express. Those answers
            # are 4xx by design; every other check stays on.
            "positive_data_acceptance": {"enabled": False},
        },
    }
)
# DELETE tokens/current revokes the fuzzing token itself: it is not in the random run,
# `test_revoke_current_token_as_documented` covers it with targeted requests instead.
schema = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG).exclude(
    method="DELETE", path="/tokens/current"
)
FUZZED = {op.ok().label for op in schema.get_all_operations()}
DOCUMENTED = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_target(request, tmp_path_factory):
    """One hub per backend for every operation's fuzz test, seeded, with the fuzzing
    token (its log is kept as a CI artifact)."""
    require(PROXY.exists(), f"configurable-http-proxy is not installed at {PROXY} (npm ci)")
    folder = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        db_url = f"sqlite:///{folder / 'annotations.sqlite'}"
    else:
        db_url = request.getfixturevalue("pg_admin").create()
    hub = Hub(folder, db_url).start()
    try:
        target = seed(hub)
        yield target
    finally:
        hub.stop()
        hub.keep_log(f"test_fuzz-{request.param}")
    # The fuzzer mints tokens of its own: none of them, nor ours, may be in the log.
    assert not hub.tokens_in_log(), f"plaintext tokens in the hub log: {hub.tokens_in_log()}"


def self_destructive(case, target: FuzzTarget) -> str | None:
    """Why a generated request would take the fuzzing credential away, if it would:
    revoking the fuzzing token by id, deactivating, demoting or deleting the fuzzing
    admin. Those requests are not sent; the document covers them truthfully, and
    test_e2e_tokens and test_user_admin exercise them."""
    path, method = case.operation.path, case.method.upper()
    params = case.path_parameters or {}
    if path == "/tokens/{token_id}" and method == "DELETE":
        value = str(params.get("token_id", ""))
        if value.isascii() and value.isdigit() and int(value) == target.token_id:
            return f"DELETE tokens/{value}: the fuzzing token"
    if path == "/users/{name}" and method in ("PATCH", "DELETE"):
        if normalize(str(params.get("name", ""))) == ADMIN:
            return f"{method} users/{params['name']}: the fuzzing admin"
    return None


@pytest.mark.e2e
@schema.parametrize()
def test_fuzz(case, fuzz_target):
    fuzz_target.operations.add(case.operation.label)
    reason = self_destructive(case, fuzz_target)
    if reason is not None:
        fuzz_target.skipped.append(reason)
        return
    fuzz_target.requests += 1
    try:
        case.call_and_validate(
            base_url=f"{fuzz_target.hub.url}{SERVER}",
            headers={"Authorization": f"Bearer {fuzz_target.token}"},
        )
    finally:  # this request's log lines are this request's, whatever the outcome
        new = fuzz_target.new_log()
    assert "Traceback" not in new, f"{case.method} {case.formatted_path}:\n{new[-3000:]}"


@pytest.mark.e2e
def test_revoke_current_token_as_documented(fuzz_target):
    """DELETE tokens/current, left out of the random run, with each documented answer."""
    operation = DOCUMENTED["/tokens/current"]["DELETE"]
    base_url = f"{fuzz_target.hub.url}{SERVER}"
    minted = requests.post(
        f"{base_url}/tokens",
        json={"name": "to revoke", "scopes": ["annotations:read"]},
        headers={"Authorization": f"Bearer {fuzz_target.token}"},
        timeout=30,
    )
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]
    for scheme, status in (("Bearer", 204), ("token", 401)):
        case = operation.Case()
        answer = case.call_and_validate(
            base_url=base_url, headers={"Authorization": f"{scheme} {token}"}
        )
        assert answer.status_code == status, answer.text
    session = fuzz_target.admin.api("DELETE", "tokens/current")
    assert session.status_code == 400, session.text
    operation.Case().validate_response(session)
    assert "Traceback" not in fuzz_target.new_log()


@pytest.mark.e2e
def test_fuzz_totals(fuzz_target):
    """After every operation of this backend was fuzzed (pytest runs the tests of one
    module-scoped fixture value together): enough requests, and no traceback at all in
    the hub log, also outside the requests' own windows."""
    log = fuzz_target.hub.log()
    answered = len(re.findall(r"\] \d{3} [A-Z]+ /hub/annotations/api/", log))
    print(
        f"\nfuzz: {fuzz_target.requests} generated requests over "
        f"{len(fuzz_target.operations)} operations ({answered} API requests in all, with "
        f"the checks' own); {len(fuzz_target.skipped)} self-destructive ones not sent"
    )
    assert "Traceback" not in log, "a traceback in the hub log (see its artifact)"
    if fuzz_target.operations == FUZZED:  # a full run, not a selection of operations
        assert fuzz_target.requests >= MIN_REQUESTS, fuzz_target.requests
