"""Call the annotation API from a script, or from a notebook on the hub.

On the hub, servers started by JupyterHub get ANNOTATIONS_API_URL and ANNOTATIONS_TOKEN
when the admin sets `inject_token_scopes`. Elsewhere, set them yourself:

    export ANNOTATIONS_API_URL=https://hub.example.org/hub/annotations/api/
    export ANNOTATIONS_TOKEN=anno_...   # from the hub's Tokens page

Run: python annotations_api.py [label]   (writes your annotation of example-item)

While the hub restarts (an upgrade, a changed config) it refuses connections or answers
503 for a few seconds; `request` waits for it and repeats what is safe to repeat.
"""

import os
import random
import sys
import time

import requests

api = os.environ.get("ANNOTATIONS_API_URL", "").rstrip("/") + "/"
session = requests.Session()
session.headers["Authorization"] = f"Bearer {os.environ.get('ANNOTATIONS_TOKEN', '')}"

# Repeating these changes nothing that sending them once would not (RFC 9110 9.2.2). A
# POST is never repeated: its first try may have been applied before the answer was lost.
# This script's PUTs are also conditional (If-Match), so a repeat never overwrites a write
# it did not see.
REPEATABLE = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# A restart takes seconds: 8 tries, waiting 0.5 s, 1 s, 2 s ... up to 8 s between them
# (30 to 40 s in all), or longer when an answer's Retry-After says so.
TRIES = 8
FIRST_WAIT, MAX_WAIT = 0.5, 8.0


def hub_away(answer: requests.Response) -> bool:
    """Whether an answer says the hub is away rather than anything about the request:
    a gateway error, a 503 (the API's own says Retry-After), or a 404 that is not the
    API's (its errors are JSON; a proxy without a route to the hub answers plain text)."""
    if answer.status_code in (502, 503, 504):
        return True
    is_json = answer.headers.get("Content-Type", "").startswith("application/json")
    return answer.status_code == 404 and not is_json


def wait_before(attempt: int, answer: requests.Response | None) -> float:
    """Seconds to wait before try ``attempt + 1``: doubling, with jitter so that many
    clients do not all come back at once, and never less than a Retry-After."""
    wait = min(MAX_WAIT, FIRST_WAIT * 2**attempt) * random.uniform(1, 1.25)  # noqa: S311 - jitter, no secret
    retry_after = answer.headers.get("Retry-After", "") if answer is not None else ""
    return max(wait, float(retry_after)) if retry_after.isdigit() else wait


def request(method: str, path: str, repeatable: bool | None = None, **kwargs) -> requests.Response:
    """One API call; while the hub is away (no connection, or an answer ``hub_away``
    recognises), tried again up to TRIES times if the method is REPEATABLE, or when
    ``repeatable`` says this call is (like ``POST queue/next``: a repeat gets the
    claim the first try made)."""
    if repeatable is None:
        repeatable = method.upper() in REPEATABLE
    tries = TRIES if repeatable else 1
    attempt = 0
    while True:
        last = attempt + 1 >= tries
        answer = None
        try:
            answer = session.request(method, api + path, timeout=30, **kwargs)
        except requests.ConnectionError as error:
            if last:
                raise
            why = type(error).__name__
        else:
            if last or not hub_away(answer):
                return answer
            why = f"{answer.status_code} {answer.reason}"
        wait = wait_before(attempt, answer)
        print(f"{method} {path}: hub away ({why}), trying again in {wait:.1f} s", file=sys.stderr)
        time.sleep(wait)
        attempt += 1


def checked(method: str, path: str, answer: requests.Response) -> requests.Response:
    """The answer, or the end of the script with the API's message when it is an error."""
    if answer.status_code >= 400:
        try:
            message = answer.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):  # not the API's: a proxy's page
            message = answer.text[:200]
        sys.exit(f"{method} {path}: {answer.status_code} {message}")
    return answer


def call(method: str, path: str, **kwargs) -> requests.Response:
    """One API call that must succeed; errors come back as {"error": {"status", "message"}}."""
    try:
        return checked(method, path, request(method, path, **kwargs))
    except requests.ConnectionError as error:
        sys.exit(f"{method} {path}: the hub did not answer: {error}")


def annotate(slug: str, item: str, owner: str, label: str) -> dict:
    """Write ``owner``'s annotation of ``item``, never over a newer one (If-Match)."""
    path = f"projects/{slug}/items/{item}/annotations/{owner}"
    data = {"label": label}
    current = request("GET", path)
    headers = {"If-Match": current.headers["ETag"]} if current.ok else {"If-None-Match": "*"}
    answer = request("PUT", path, json={"data": data}, headers=headers)
    if answer.status_code == 412:
        now = answer.json().get("current") or {}
        if now.get("data") == data:
            # A repeated PUT whose first try was applied (its answer lost to a restart)
            # finds its own write: done.
            return now
    # Another 412 means someone (you, in another tab) wrote in between: read and retry.
    return checked("PUT", path, answer).json()


def main(label: str = "cat") -> None:
    if api == "/" or not os.environ.get("ANNOTATIONS_TOKEN"):
        sys.exit("Set ANNOTATIONS_API_URL and ANNOTATIONS_TOKEN (see the top of this file).")
    me = call("GET", "me").json()
    print(f"{me['name']} ({me['auth']}, scopes: {', '.join(me['scopes'])})")
    for project in me["projects"]:
        slug = project["slug"]
        members = call("GET", f"projects/{slug}/members").json()["items"]
        print(f"  {slug}: you are {project['role']}, {len(members)} members")
        if "annotations:write" in me["scopes"] and project["role"] != "viewer":
            note = annotate(slug, "example-item", me["name"], label)
            print(f"  {slug}: your annotation of example-item is at version {note['version']}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
