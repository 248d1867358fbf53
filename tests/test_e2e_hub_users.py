"""Our accounts as JupyterHub sees them (SPEC 16), against a real hub: users deleted,
culled and renamed in the hub, accounts in the hub's own user list, and memberships as
hub groups beside an operator's `load_groups` and `load_roles`."""

from __future__ import annotations

import sys
import time

import pytest
import requests

from tests.hub import Browser
from tests.test_e2e_accounts import PASSWORD, admin_xsrf, give_password, logged_in_admin

pytestmark = pytest.mark.e2e

ALICE = "alices passphrase 1"
BOB = "bobs own passphrase"


def hub_api(browser: Browser, method: str, path: str, json: object = None) -> requests.Response:
    """JupyterHub's own REST API with ``browser``'s session, as its admin page calls it."""
    url = f"{browser.hub.url}/hub/api/{path}"
    return browser.http.request(method, url, json=json, headers=admin_xsrf(browser), timeout=30)


def bearer(hub, token: str, path: str = "me") -> requests.Response:
    url = f"{hub.url}/hub/annotations/api/{path}"
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def token_of(browser: Browser) -> str:
    made = browser.api("POST", "tokens", {"name": "script", "scopes": ["annotations:read"]})
    assert made.status_code == 201, made.text
    return made.json()["token"]


def test_accounts_appear_in_the_hub_user_list_when_created(hub):
    admin = logged_in_admin(hub)
    assert admin.api("POST", "users", {"name": "carol"}).status_code == 201
    carol = hub_api(admin, "GET", "users/carol")
    assert carol.status_code == 200, carol.text
    assert carol.json()["admin"] is False
    assert admin.api("PATCH", "users/carol", {"admin": True}).status_code == 200
    assert hub_api(admin, "GET", "users/carol").json()["admin"] is True
    assert admin.api("PATCH", "users/carol", {"admin": False}).status_code == 200
    assert hub_api(admin, "GET", "users/carol").json()["admin"] is False
    # Service accounts log in with tokens only: no hub user.
    assert admin.api("POST", "users", {"name": "svc:model"}).status_code == 201
    names = {u["name"] for u in hub_api(admin, "GET", "users").json()}
    assert "carol" in names and "svc:model" not in names


def test_a_user_deleted_in_the_hub_loses_access_and_gets_it_back_when_reactivated(hub):
    admin = logged_in_admin(hub)
    give_password(hub, admin, "bob", BOB)
    bob = Browser(hub)
    assert bob.login("bob", BOB).status_code == 200
    token = token_of(bob)
    gone = hub_api(admin, "DELETE", "users/bob")  # JupyterHub's admin page does this
    assert gone.status_code == 204, gone.text
    assert bob.api("GET", "me").status_code == 401  # the session ended...
    assert bearer(hub, token).status_code == 401  # ...and the token with it
    assert Browser(hub).login("bob", BOB).status_code == 403
    assert admin.api("GET", "users/bob").json()["active"] is False
    # Nothing was destroyed: reactivated, the same password and token work again.
    assert admin.api("PATCH", "users/bob", {"active": True}).status_code == 200
    assert hub_api(admin, "GET", "users/bob").status_code == 200  # back in the hub
    assert Browser(hub).login("bob", BOB).status_code == 200
    assert bearer(hub, token).json()["name"] == "bob"


# --cull-every=5: the culler runs once at start and then on a timer that does not wait
# for that first run, so with a shorter period a slow first run (a loaded machine) and
# the first tick delete the same user twice at once, which JupyterHub itself answers
# with a 500 (KeyError in `UserDict.delete`: its handler does not expect a concurrent
# delete).
CULLER = f"""
import os
if os.path.exists("cull"):
    c.JupyterHub.services = [{{
        "name": "idle-culler",
        "command": [{sys.executable!r}, "-m", "jupyterhub_idle_culler",
                    "--cull-users=True", "--timeout=1", "--cull-every=5"],
    }}]
    c.JupyterHub.load_roles = [{{
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers",
                   "delete:servers", "admin:users"],
        "services": ["idle-culler"],
    }}]
"""


@pytest.mark.parametrize("deletion", ["deactivate", "keep"])
def test_the_idle_culler_deletes_users_without_a_traceback_or_lost_credentials(
    make_hub, deletion
):
    """Zero to JupyterHub's `cull.users: true`: jupyterhub-idle-culler deletes idle users
    through the hub's API every cycle, the last admin included."""
    hub = make_hub(CULLER + f"c.AnnotationAuthenticator.hub_user_deletion = {deletion!r}\n")
    admin = logged_in_admin(hub)
    give_password(hub, admin, "bob", BOB)
    bob = Browser(hub)
    assert bob.login("bob", BOB).status_code == 200
    token = token_of(bob)
    (hub.folder / "cull").touch()
    hub.restart()
    deadline = time.monotonic() + 30
    culled = ("204 DELETE /hub/api/users/bob", "204 DELETE /hub/api/users/admin")
    while not all(line in hub.log() for line in culled):
        assert time.monotonic() < deadline, hub.log_tail()
        time.sleep(0.5)
    (hub.folder / "cull").unlink()
    hub.restart()
    # The last active hub admin is never deactivated; the hub user went, the account not.
    admin = Browser(hub)
    assert admin.login("admin", PASSWORD).status_code == 200
    account = admin.api("GET", "users/bob").json()
    if deletion == "deactivate":
        assert account["active"] is False
        assert bearer(hub, token).status_code == 401
        assert Browser(hub).login("bob", BOB).status_code == 403
        assert admin.api("PATCH", "users/bob", {"active": True}).status_code == 200
    else:
        assert account["active"] is True
        assert bearer(hub, token).json()["name"] == "bob"
    assert Browser(hub).login("bob", BOB).status_code == 200
    assert bearer(hub, token).json()["name"] == "bob"
    # make_hub's teardown fails the test on any traceback in the hub log, the
    # culler's own output included.


def test_a_rename_in_the_hub_renames_the_account(hub):
    admin = logged_in_admin(hub)
    give_password(hub, admin, "alice", ALICE)
    alice = Browser(hub)
    assert alice.login("alice", ALICE).status_code == 200
    token = token_of(alice)
    wrote = alice.api("PUT", "projects/demo/items/i1/annotations/alice", {"data": {"x": 1}})
    assert wrote.status_code == 201, wrote.text
    renamed = hub_api(admin, "PATCH", "users/alice", {"name": "alicia"})
    assert renamed.status_code == 200, renamed.text
    assert Browser(hub).login("alice", ALICE).status_code == 403  # the old name is gone
    alicia = Browser(hub)
    assert alicia.login("alicia", ALICE).status_code == 200
    me = alicia.api("GET", "me").json()
    assert me["name"] == "alicia" and {"slug": "demo", "role": "annotator"} in me["projects"]
    mine = alicia.api("GET", "projects/demo/items/i1/annotations/alicia")
    assert mine.status_code == 200 and mine.json()["data"] == {"x": 1}
    assert bearer(hub, token).json()["name"] == "alicia"
    audit = admin.api("GET", "audit?action=user.rename").json()["items"]
    assert [(e["target"], e["details"]) for e in audit] == [("alicia", {"previous": "alice"})]


OPERATOR_GROUPS = """
c.JupyterHub.load_groups = {"staff": {"users": ["alice"]}}
c.JupyterHub.load_roles = [{
    "name": "demo-annotators",
    "scopes": ["list:users"],
    "groups": ["annotations-demo-annotator"],
}]
"""


def test_memberships_are_hub_groups_beside_the_operators_groups_and_roles(make_hub):
    hub = make_hub(OPERATOR_GROUPS)
    admin = logged_in_admin(hub)

    def members(group: str) -> list[str]:
        answer = hub_api(admin, "GET", f"groups/{group}")
        assert answer.status_code == 200, answer.text
        return sorted(answer.json()["users"])

    # The projects declared in the config, from the first start.
    assert members("annotations-demo-admin") == ["admin"]
    assert members("annotations-demo-annotator") == ["alice"]
    assert members("annotations-demo-viewer") == ["bob"]
    assert members("staff") == ["alice"]
    # A role granted to one of our groups reaches its members' hub tokens.
    give_password(hub, admin, "alice", ALICE)
    alice = Browser(hub)
    assert alice.login("alice", ALICE).status_code == 200
    made = hub_api(alice, "POST", "users/alice/tokens", {"expires_in": 600})
    hub_token = made.json()["token"]
    whoami = requests.get(
        f"{hub.url}/hub/api/user", headers={"Authorization": f"token {hub_token}"}, timeout=30
    ).json()
    assert "list:users" in whoami["scopes"]
    assert sorted(whoami["groups"]) == ["annotations-demo-annotator", "staff"]
    # Changes through our API apply at once.
    assert admin.api("POST", "users", {"name": "carol"}).status_code == 201
    assert admin.api("PUT", "projects/demo/members/carol", {"role": "annotator"}).ok
    assert members("annotations-demo-annotator") == ["alice", "carol"]
    assert admin.api("DELETE", "projects/demo/members/carol").status_code == 204
    assert members("annotations-demo-annotator") == ["alice"]
    made = admin.api("POST", "projects", {"slug": "birds"})
    assert made.status_code == 201, made.text
    assert members("annotations-birds-admin") == ["admin"]
    assert admin.api("DELETE", "projects/birds").status_code == 204
    assert hub_api(admin, "GET", "groups/annotations-birds-admin").status_code == 404
    # And the next start keeps it all, the operator's groups and roles included.
    hub.restart()
    admin = Browser(hub)
    assert admin.login("admin", PASSWORD).status_code == 200
    assert members("annotations-demo-annotator") == ["alice"]
    assert members("staff") == ["alice"]
