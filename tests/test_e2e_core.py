"""End-to-end: the store never holds up the event loop (SPEC section 14)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa
from jupyterhub_annotations.authenticator.models import Base

from tests.test_e2e_accounts import logged_in_admin
from tests.test_e2e_hardening import mint

pytestmark = pytest.mark.e2e

API = "/hub/annotations/api/"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_with_every_table_locked_the_hub_and_the_public_routes_keep_answering(hub, db_url):
    admin = logged_in_admin(hub)
    token = mint(admin, name="script", scopes=["annotations:read", "users:manage"])
    auth = {"Authorization": f"Bearer {token}"}
    engine = sa.create_engine(db_url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.connect() as locker, ThreadPoolExecutor(8) as pool:
        locker.execute(sa.text(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE"))
        # Requests that need the store: they wait for the lock, in the store's threads.
        waiting = [
            pool.submit(requests.get, f"{hub.url}{API}{path}", headers=auth, timeout=60)
            for path in ("users", "me", "projects/demo/annotations", "audit") * 2
        ]
        time.sleep(1)
        assert not any(w.done() for w in waiting)
        # Meanwhile the hub's own API and our routes that need no store answer at once.
        for url in (f"{hub.url}/hub/api/", f"{hub.url}{API}openapi.json", f"{hub.url}/hub/health"):
            for _ in range(5):
                started = time.perf_counter()
                answer = requests.get(url, timeout=10)
                seconds = time.perf_counter() - started
                assert answer.status_code == 200, (url, answer.status_code)
                assert seconds < 0.5, (url, seconds)
        locker.rollback()  # the lock goes; every waiting request gets its answer
        assert [w.result().status_code for w in waiting] == [200] * len(waiting)
    engine.dispose()


# A failure between the steps of POST users: after the account is created, before its
# invitation link is issued (as a database that goes away mid-action would).
FAIL_FOR_DOOMED = """
from jupyterhub_annotations.authenticator.accounts import Accounts
from jupyterhub_annotations.authenticator.errors import Unavailable
_issue_link = Accounts.issue_link
def _failing(self, name, purpose):
    if name == "doomed":
        raise Unavailable("The database went away: retry in a moment. Nothing was written.")
    return _issue_link(self, name, purpose)
Accounts.issue_link = _failing
"""


def test_an_action_that_fails_between_its_steps_writes_nothing(make_hub):
    hub = make_hub(FAIL_FOR_DOOMED)
    admin = logged_in_admin(hub)
    failed = admin.api("POST", "users", {"name": "doomed"})
    assert failed.status_code == 503 and "Nothing was written" in failed.text
    # True: no account, no audit record of a creation that did not happen.
    assert admin.api("GET", "users/doomed").status_code == 404
    events = admin.api("GET", "audit?target=doomed").json()["items"]
    assert events == []
    assert admin.api("POST", "users", {"name": "spared"}).status_code == 201


def test_an_export_streams_off_the_loop_while_the_hub_keeps_answering(hub):
    """20,000 annotations exported as NDJSON while /hub/health is probed: the export
    runs a page at a time in the store's threads, so the hub keeps answering."""
    admin = logged_in_admin(hub)
    token = mint(admin, name="export", scopes=["annotations:read", "annotations:write"])
    auth = {"Authorization": f"Bearer {token}"}
    records = [{"item": f"img-{i:05d}", "data": {"label": "cat"}} for i in range(10_000)]
    for owner in ("admin", "alice"):
        batch = {"annotations": [{**r, "owner": owner} for r in records]}
        done = requests.post(
            f"{hub.url}{API}projects/demo/annotations/import", json=batch, headers=auth, timeout=120
        )
        assert done.status_code == 200, done.text
    url = f"{hub.url}{API}projects/demo/annotations?format=ndjson"
    with ThreadPoolExecutor(1) as pool:
        export = pool.submit(requests.get, url, headers=auth, timeout=120)
        latencies = []
        while not export.done():
            started = time.perf_counter()
            assert requests.get(f"{hub.url}/hub/health", timeout=10).status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.01)
        lines = export.result().text.splitlines()
    assert len(lines) == 20_000
    assert latencies and max(latencies) < 0.5, max(latencies)
