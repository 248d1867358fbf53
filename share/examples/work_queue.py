"""Work through a project's queue: claim an item, annotate it, until nothing is left.

Set ANNOTATIONS_API_URL and ANNOTATIONS_TOKEN as for annotations_api.py (on the hub a
server has both). Run: python work_queue.py SLUG

The queue hands you each item at most once, with the `data` its admins registered (a
URL, a text); your annotation completes the claim. `label` below is where your own
labelling goes: a model, a prompt, a widget. An item you cannot do is released, and the
queue gives it to someone else. The loop stops when the queue answers 204.
"""

import sys

from annotations_api import call, checked, request


def label(item: str, data: object) -> dict | None:
    """Your annotation of ``item`` (None: skip it, and let someone else have it)."""
    return {"label": "todo", "seen": data}


def work_through(slug: str, name: str) -> int:
    """Claim, annotate, repeat; returns how many items you annotated."""
    done = 0
    while True:
        # Safe to repeat: a repeat after a lost answer gets the same claim back.
        claim = call("POST", f"projects/{slug}/queue/next", repeatable=True)
        if claim.status_code == 204:
            return done
        item = claim.json()["item"]
        data = label(item, claim.json()["data"])
        if data is None:
            call("DELETE", f"projects/{slug}/queue/claims/{item}")
            continue
        path = f"projects/{slug}/items/{item}/annotations/{name}"
        answer = request("PUT", path, json={"data": data}, headers={"If-None-Match": "*"})
        if answer.status_code != 412:  # 412: a repeated PUT found its own first try
            checked("PUT", path, answer)
        done += 1
        print(f"{slug}: annotated {item} ({done} so far)")


def main(slug: str) -> None:
    me = call("GET", "me").json()
    total = work_through(slug, me["name"])
    print(f"{slug}: nothing left for {me['name']}; you annotated {total} items")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("Run: python work_queue.py SLUG")
    main(sys.argv[1])
