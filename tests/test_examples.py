"""The examples in share/examples run against a real hub with a real token."""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import subprocess
import sys
import threading

import nbformat
import pytest

from tests.hub import REPO, free_port
from tests.test_e2e_accounts import logged_in_admin

EXAMPLES = REPO / "share" / "examples"


@pytest.mark.e2e
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_example_script_lists_my_projects_and_annotates_with_a_token(hub):
    admin = logged_in_admin(hub)
    scopes = ["annotations:read", "annotations:write"]
    token = admin.api("POST", "tokens", {"name": "example", "scopes": scopes})
    env = {
        **os.environ,
        "ANNOTATIONS_API_URL": f"{hub.url}/hub/annotations/api/",
        "ANNOTATIONS_TOKEN": token.json()["token"],
    }
    for version in (1, 2):  # created, then changed with If-Match
        run = subprocess.run(
            [sys.executable, str(EXAMPLES / "annotations_api.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert "admin (token, scopes: annotations:read, annotations:write)" in run.stdout
        assert "demo: you are admin, 3 members" in run.stdout
        assert f"demo: your annotation of example-item is at version {version}" in run.stdout


@pytest.mark.e2e
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_queue_example_claims_and_annotates_until_the_queue_is_empty(hub):
    admin = logged_in_admin(hub)  # an admin of the demo project
    items = [
        {"item": f"img-{n}", "data": {"url": f"https://example.org/{n}.png"}} for n in range(3)
    ]
    assert admin.api("POST", "projects/demo/items", {"items": items}).status_code == 201
    scopes = ["annotations:read", "annotations:write"]
    token = admin.api("POST", "tokens", {"name": "queue", "scopes": scopes}).json()["token"]
    env = {
        **os.environ,
        "ANNOTATIONS_API_URL": f"{hub.url}/hub/annotations/api/",
        "ANNOTATIONS_TOKEN": token,
    }
    for annotated in (3, 0):  # the second run finds nothing left
        run = subprocess.run(
            [sys.executable, str(EXAMPLES / "work_queue.py"), "demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert f"nothing left for admin; you annotated {annotated} items" in run.stdout
    mine = admin.api("GET", "projects/demo/annotations?owner=admin").json()["items"]
    assert {(a["item"], a["data"]["seen"]["url"][-5:]) for a in mine} == {
        (f"img-{n}", f"{n}.png") for n in range(3)
    }


def test_the_example_notebook_is_a_valid_notebook_that_reads_the_injected_variables():
    path = EXAMPLES / "annotations_api.ipynb"
    # nbformat 4.5: every cell has an id, or JupyterLab rewrites the file when it opens.
    nbformat.validate(nbformat.read(path, as_version=nbformat.NO_CONVERT))
    notebook = json.loads(path.read_text())
    assert (notebook["nbformat"], notebook["nbformat_minor"]) >= (4, 5)
    ids = [cell["id"] for cell in notebook["cells"]]
    assert len(set(ids)) == len(ids)
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    compile(code, "annotations_api.ipynb", "exec")
    assert "ANNOTATIONS_API_URL" in code and "ANNOTATIONS_TOKEN" in code


# -- the example client through a restart, against a scripted server --------------------

DROP = "drop"  # close the connection without an answer, as a stopping proxy does
GONE = {"error": {"status": 503, "message": "The hub is not running"}}


def answer(status: int, body: object = None, **headers: str) -> tuple:
    """A scripted answer: JSON unless a ``Content_Type`` header says otherwise."""
    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    if isinstance(body, (dict, list)):
        headers.setdefault("Content-Type", "application/json")
        body = json.dumps(body)
    return (status, headers, (body or "").encode())


class Scripted(http.server.ThreadingHTTPServer):
    """Answers requests from a script, in order, and records them."""

    def __init__(self, port: int, script: list) -> None:
        self.script = list(script)
        self.seen: list[tuple[str, str, dict]] = []
        super().__init__(("127.0.0.1", port), ScriptedHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class ScriptedHandler(http.server.BaseHTTPRequestHandler):
    server: Scripted

    def log_message(self, *args) -> None:
        pass

    def _next(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        step = self.server.script.pop(0)
        if step == DROP:
            self.close_connection = True
            return
        status, headers, body = step
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = _next


@pytest.fixture
def example(monkeypatch):
    """The example as a module (its ``main`` not run), its sleeps recorded, not slept."""
    spec = importlib.util.spec_from_file_location(
        "annotations_api", EXAMPLES / "annotations_api.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.slept = []
    monkeypatch.setattr(module.time, "sleep", module.slept.append)
    servers: list[Scripted] = []

    def serve(script: list, port: int | None = None) -> Scripted:
        servers.append(Scripted(port or free_port(), script))
        module.api = f"http://127.0.0.1:{servers[-1].server_address[1]}/hub/annotations/api/"
        return servers[-1]

    module.serve = serve
    yield module
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_example_waits_for_a_refusing_hub_and_honours_retry_after(example, monkeypatch):
    port = free_port()
    example.api = f"http://127.0.0.1:{port}/hub/annotations/api/"
    script = [DROP, answer(503, GONE, Retry_After="3"), answer(200, {"name": "admin"})]
    server: list[Scripted] = []

    def sleep(seconds: float) -> None:
        example.slept.append(seconds)
        if not server:  # the hub comes back after the first refusal
            server.append(example.serve(script, port))

    monkeypatch.setattr(example.time, "sleep", sleep)
    assert example.request("GET", "me").json() == {"name": "admin"}
    assert len(server[0].seen) == 3  # the refusal reached nobody; then drop, 503, 200
    refused, dropped, after_503 = example.slept
    assert example.FIRST_WAIT <= refused <= 1.25 * example.FIRST_WAIT
    assert 2 * example.FIRST_WAIT <= dropped <= 2.5 * example.FIRST_WAIT
    assert after_503 >= 3  # Retry-After wins over a shorter backoff


def test_the_example_repeats_a_plain_404_but_takes_the_apis_json_404_as_the_answer(example):
    missing = {"error": {"status": 404, "message": "No annotation"}}
    plain = answer(404, "Not Found", Content_Type="text/plain")
    server = example.serve(
        [plain, answer(404, "<html>", Content_Type="text/html"), answer(404, missing)]
    )
    got = example.request("GET", "projects/demo/items/a/annotations/admin")
    assert (got.status_code, got.json()) == (404, missing)
    assert len(server.seen) == 3 and len(example.slept) == 2


def test_the_example_gives_up_after_a_bounded_number_of_tries(example):
    server = example.serve([answer(503, GONE, Retry_After="1")] * example.TRIES)
    with pytest.raises(SystemExit, match="503 The hub is not running"):
        example.call("GET", "me")
    assert len(server.seen) == example.TRIES
    assert len(example.slept) == example.TRIES - 1
    assert max(example.slept) <= 1.25 * example.MAX_WAIT


def test_the_example_never_repeats_a_post(example):
    server = example.serve([answer(503, GONE, Retry_After="1")])
    assert example.request("POST", "tokens", json={}).status_code == 503
    assert len(server.seen) == 1 and example.slept == []


def test_a_write_whose_answer_a_restart_lost_is_found_on_the_repeat_not_written_twice(example):
    stored = {"data": {"label": "old"}, "version": 3}
    landed = {"data": {"label": "cat"}, "version": 4}
    server = example.serve(
        [
            answer(200, stored, ETag='"3"'),
            DROP,  # the PUT was applied, its answer lost as the proxy stopped
            answer(412, {"error": {"status": 412, "message": "changed"}, "current": landed}),
        ]
    )
    assert example.annotate("demo", "item", "admin", "cat") == landed
    puts = [headers for method, _, headers in server.seen if method == "PUT"]
    assert [h["If-Match"] for h in puts] == ['"3"', '"3"']  # the repeat is as conditional


def test_a_write_that_meets_someone_elses_is_refused_not_forced(example):
    newer = {"data": {"label": "dog"}, "version": 4}
    example.serve(
        [
            answer(200, {"data": {"label": "old"}, "version": 3}, ETag='"3"'),
            answer(412, {"error": {"status": 412, "message": "changed since"}, "current": newer}),
        ]
    )
    with pytest.raises(SystemExit, match="412 changed since"):
        example.annotate("demo", "item", "admin", "cat")
