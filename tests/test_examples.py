"""The examples in share/examples run against a real hub with a real token."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from tests.hub import REPO
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
