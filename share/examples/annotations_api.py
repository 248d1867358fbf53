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


def call(method: str, path: str, **kwargs) -> dict:
    """One API call; errors come back as {"error": {"status", "message"}}."""
    answer = session.request(method, api + path, timeout=30, **kwargs)
    body = answer.json() if answer.content else {}
    if answer.status_code >= 400:
        sys.exit(f"{method} {path}: {answer.status_code} {body['error']['message']}")
    return body


me = call("GET", "me")
print(f"{me['name']} ({me['auth']}, scopes: {', '.join(me['scopes'])})")
for project in me["projects"]:
    members = call("GET", f"projects/{project['slug']}/members")["items"]
    print(f"  {project['slug']}: you are {project['role']}, {len(members)} members")
