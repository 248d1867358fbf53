"""End-to-end: the admin logs in, starts a single-user server from the demo config and
runs the shipped notebook in it."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

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
    auth = {"Authorization": f"token {token}"}
    status = browser.get("/user/admin/api/status", headers=auth)
    assert status.status_code == 200, status.text
    assert "started" in status.json()
    # JupyterLab, a Python kernel, and the example notebook in the home folder...
    assert browser.get("/user/admin/lab", headers=auth).status_code == 200
    kernelspecs = browser.get("/user/admin/api/kernelspecs", headers=auth).json()
    assert "python3" in kernelspecs["kernelspecs"]
    shipped = browser.get("/user/admin/api/contents/annotations_api.ipynb", headers=auth)
    assert shipped.status_code == 200, shipped.text
    # ...which runs there as it is, every cell, with the injected token.
    outputs = asyncio.run(run_notebook(hub.url, token, shipped.json()["content"]))
    assert any('"name": "admin"' in text or "'name': 'admin'" in text for text in outputs)


async def run_notebook(hub_url: str, token: str, notebook: dict) -> list[str]:
    """Run ``notebook``'s code cells in a new kernel of the admin's server, as
    JupyterLab would (the kernel protocol over the server's websocket); their text
    outputs. Fails on the first cell that raises."""
    base = f"{hub_url}/user/admin/api/kernels"
    http = AsyncHTTPClient()
    headers = {"Authorization": f"token {token}"}
    made = await http.fetch(base, method="POST", body="{}", headers=headers)
    kernel = json.loads(made.body)["id"]
    ws_url = f"{base}/{kernel}/channels".replace("http", "ws", 1)
    socket = await websocket_connect(HTTPRequest(ws_url, headers=headers))
    session, outputs = uuid.uuid4().hex, []
    try:
        for cell in notebook["cells"]:
            if cell["cell_type"] != "code":
                continue
            msg_id = uuid.uuid4().hex
            request = {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "session": session,
                    "username": "admin",
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": "".join(cell["source"]),
                    "silent": False,
                    "store_history": True,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            }
            await socket.write_message(json.dumps(request))
            while True:
                message = json.loads(await asyncio.wait_for(socket.read_message(), 60))
                if message["parent_header"].get("msg_id") != msg_id:
                    continue
                content = message["content"]
                if message["msg_type"] == "error":
                    pytest.fail(
                        f"cell {cell['id']} raised: {content['ename']}: {content['evalue']}"
                    )
                if message["msg_type"] in ("stream", "execute_result"):
                    outputs.append(content.get("text") or content["data"]["text/plain"])
                if message["msg_type"] == "execute_reply":
                    assert content["status"] == "ok", content
                    break
    finally:
        socket.close()
        await http.fetch(f"{base}/{kernel}", method="DELETE", headers=headers)
    return outputs
