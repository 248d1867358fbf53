"""End-to-end: the admin logs in and starts a single-user server from the demo config."""

from __future__ import annotations

import re
import time

import pytest

from tests.hub import Browser
from tests.test_e2e_accounts import PASSWORD, setup_admin

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_admin_spawns_a_single_user_server(hub):
    browser: Browser = setup_admin(hub)
    home = browser.login("admin", PASSWORD)
    xsrf = re.search(r'xsrf_token: "([^"]+)"', home.text).group(1)
    started = browser.http.post(
        f"{hub.url}/hub/api/users/admin/server", headers={"X-XSRFToken": xsrf}, timeout=60
    )
    assert started.status_code in (201, 202), started.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        user = browser.get("/hub/api/users/admin", headers={"X-XSRFToken": xsrf}).json()
        if user["servers"].get("", {}).get("ready"):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the server did not become ready:\n{hub.log()[-3000:]}")
    # Through the proxy, authenticated by the hub (a hub token of the admin's own).
    token = browser.http.post(
        f"{hub.url}/hub/api/users/admin/tokens",
        json={"note": "spawn test", "expires_in": 600},
        headers={"X-XSRFToken": xsrf},
        timeout=30,
    ).json()["token"]
    status = browser.get("/user/admin/api/status", headers={"Authorization": f"token {token}"})
    assert status.status_code == 200, status.text
    assert "started" in status.json()
