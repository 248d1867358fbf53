"""Call the annotation API from a script, or from a notebook on the hub.

On the hub, servers started by JupyterHub get ANNOTATIONS_API_URL and ANNOTATIONS_TOKEN
when the admin sets `inject_token_scopes`. Elsewhere, set them yourself:

    export ANNOTATIONS_API_URL=https://hub.example.org/hub/annotations/api/
    export ANNOTATIONS_TOKEN=anno_...   # from the hub's Tokens page

Run: python annotations_api.py
"""

import os
import sys

import requests

api = os.environ["ANNOTATIONS_API_URL"].rstrip("/") + "/"
session = requests.Session()
session.headers["Authorization"] = f"Bearer {os.environ['ANNOTATIONS_TOKEN']}"


def call(method: str, path: str, **kwargs) -> requests.Response:
    """One API call; errors come back as {"error": {"status", "message"}}."""
    answer = session.request(method, api + path, timeout=30, **kwargs)
    if answer.status_code >= 400:
        message = answer.json()["error"]["message"]
        sys.exit(f"{method} {path}: {answer.status_code} {message}")
    return answer


def annotate(slug: str, item: str, label: str) -> dict:
    """Write my annotation of ``item``, never over a newer one (If-Match)."""
    path = f"projects/{slug}/items/{item}/annotations/{me['name']}"
    current = session.get(api + path, timeout=30)
    headers = {"If-Match": current.headers["ETag"]} if current.ok else {"If-None-Match": "*"}
    # A 412 here means someone (you, in another tab) wrote in between: read and retry.
    return call("PUT", path, json={"data": {"label": label}}, headers=headers).json()


me = call("GET", "me").json()
print(f"{me['name']} ({me['auth']}, scopes: {', '.join(me['scopes'])})")
for project in me["projects"]:
    slug = project["slug"]
    members = call("GET", f"projects/{slug}/members").json()["items"]
    print(f"  {slug}: you are {project['role']}, {len(members)} members")
    if "annotations:write" in me["scopes"] and project["role"] != "viewer":
        note = annotate(slug, "example-item", "cat")
        print(f"  {slug}: your annotation of example-item is at version {note['version']}")
