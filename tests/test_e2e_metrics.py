"""Prometheus metrics on the hub's own /hub/metrics (SPEC section 11), on a real hub."""

from __future__ import annotations

import re

import pytest
import requests
from jupyterhub_annotations.authenticator.metrics import (
    FAMILIES,
    LOGIN_OUTCOMES,
    TOKEN_OUTCOMES,
    WRITE_KINDS,
)
from jupyterhub_annotations.handlers import default_handlers
from prometheus_client.parser import text_string_to_metric_families

from tests.hub import Browser
from tests.test_e2e_accounts import PASSWORD, logged_in_admin

pytestmark = pytest.mark.e2e

API = "/hub/annotations/api/"


def samples(hub) -> dict[tuple, float]:
    """Every sample at /hub/metrics: (name, sorted labels) -> value."""
    text = requests.get(f"{hub.url}/hub/metrics", timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: dict, name: str, **labels) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_logins_tokens_writes_conflicts_and_latency_are_counted(make_hub):
    hub = make_hub("c.JupyterHub.authenticate_prometheus = False")
    # Before anything happened, every outcome and kind is there, at 0.
    fresh = samples(hub)
    for name, label, values in (
        ("annotations_logins_total", "outcome", LOGIN_OUTCOMES),
        ("annotations_token_authentications_total", "outcome", TOKEN_OUTCOMES),
        ("annotations_writes_total", "kind", WRITE_KINDS),
    ):
        for v in values:
            assert fresh[(name, ((label, v),))] == 0, (name, v)
    Browser(hub).login("admin", "not the password at all")
    admin = logged_in_admin(hub)  # sets the password, then logs in
    token = admin.api(
        "POST", "tokens", {"name": "m", "scopes": ["annotations:read", "annotations:write"]}
    ).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    url = f"{hub.url}{API}projects/demo/items/img1/annotations/admin"

    assert requests.get(f"{hub.url}{API}me", headers=bearer, timeout=30).status_code == 200
    bad = {"Authorization": "Bearer anno_" + "0" * 49}
    assert requests.get(f"{hub.url}{API}me", headers=bad, timeout=30).status_code == 401
    assert requests.put(url, json={"data": 1}, headers=bearer, timeout=30).status_code == 201
    stale = {**bearer, "If-Match": '"7"'}
    assert requests.put(url, json={"data": 2}, headers=stale, timeout=30).status_code == 412
    assert requests.delete(url, headers=bearer, timeout=30).status_code == 204
    batch = {"annotations": [{"item": f"i{n}", "data": n} for n in range(3)]}
    imported = requests.post(
        f"{hub.url}{API}projects/demo/annotations/import", json=batch, headers=bearer, timeout=30
    )
    assert imported.status_code == 200, imported.text

    m = samples(hub)
    assert value(m, "annotations_logins_total", outcome="failure") == 1
    assert value(m, "annotations_logins_total", outcome="success") == 1
    assert value(m, "annotations_token_authentications_total", outcome="accepted") == 5
    assert value(m, "annotations_token_authentications_total", outcome="refused") == 1
    assert value(m, "annotations_writes_total", kind="put") == 1
    assert value(m, "annotations_writes_total", kind="delete") == 1
    assert value(m, "annotations_writes_total", kind="import") == 3
    assert value(m, "annotations_conflicts_total") == 1
    count = "annotations_request_duration_seconds_count"
    assert value(m, count, family="me", method="GET", code="200") == 1
    assert value(m, count, family="me", method="GET", code="401") == 1
    assert value(m, count, family="annotations", method="PUT", code="412") == 1
    assert value(m, count, family="tokens", method="POST", code="201") == 1
    assert value(m, count, family="pages", method="POST", code="200") >= 1  # set-password
    assert PASSWORD not in requests.get(f"{hub.url}/hub/metrics", timeout=30).text


@pytest.mark.parametrize(
    ("path", "family"),
    [
        ("/hub/annotations/api/me", "me"),
        ("/hub/annotations/api/users/alice/link", "users"),
        ("/hub/annotations/api/projects", "projects"),
        ("/hub/annotations/api/projects/demo", "projects"),
        ("/hub/annotations/api/projects/demo/members/bob", "members"),
        ("/hub/annotations/api/projects/demo/annotations", "annotations"),
        ("/hub/annotations/api/projects/demo/annotations/import", "annotations"),
        ("/hub/annotations/api/projects/demo/items/x/annotations/bob", "annotations"),
        ("/hub/annotations/api/tokens/current", "tokens"),
        ("/hub/annotations/api/no-such-thing-123", "other"),
        ("/hub/annotations/tokens", "pages"),
    ],
)
def test_route_families_are_a_closed_set(path, family):
    """The family comes from the handler a path routes to (so a base_url changes
    nothing), and every routed handler has one of the closed set."""
    (handler,) = [h for pattern, h in default_handlers if re.fullmatch(pattern, path[4:])][:1]
    assert handler.metric_family == family
    assert {h.metric_family for _, h in default_handlers} <= set(FAMILIES)
