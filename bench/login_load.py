"""Benchmark: API latency while logins hash passwords (SPEC section 12).

Starts one real hub (behind the real proxy, SQLite) and measures with wrk, 16
connections, in the same run:
  bare      a bare handler mounted in the hub (the ceiling)
  hub-api   JupyterHub's own GET /hub/api/user with a hub token
  me        our GET /hub/annotations/api/me with a browser session
  me+login  the same while 20 clients log in continuously (Argon2id each time)
and prints requests/s, p50 and p99, and the ratios. Run with `make bench`.
"""

from __future__ import annotations

import sys
import threading
import time

import requests

from bench.common import admin_session, cookie_header, hub_token, print_results, start_hub, wrk
from tests.hub import Browser, Hub

PASSWORD = "benchmark passphrase 1"
LOGIN_CLIENTS = 20


def make_accounts(hub: Hub, names: list[str]) -> None:
    from jupyterhub_annotations.authenticator.cli import load_authenticator

    accounts = load_authenticator(str(hub.config)).core.accounts
    for name in names:
        accounts.ensure(name)
        accounts.use_link(accounts.issue_link(name, "invite"), PASSWORD)
    accounts.store.dispose()


def login_storm(hub: Hub, names: list[str], stop: threading.Event, counter: list[int]) -> None:
    def client(name: str) -> None:
        while not stop.is_set():
            assert Browser(hub).login(name, PASSWORD).status_code == 200
            counter.append(1)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join()


def main() -> int:
    hub = start_hub()
    try:
        admin = admin_session(hub)
        cookie = cookie_header(admin)
        token = hub_token(admin)
        names = [f"loader{i}" for i in range(LOGIN_CLIENTS)]
        make_accounts(hub, names)

        results = {
            "bare": wrk(f"{hub.url}/hub/bench/bare", {}),
            "hub-api": wrk(f"{hub.url}/hub/api/user", {"Authorization": f"token {token}"}),
            "me": wrk(f"{hub.url}/hub/annotations/api/me", {"Cookie": cookie}),
            "hub-cookie": wrk(f"{hub.url}/hub/api/user", {"Cookie": cookie}),
        }
        stop, logins = threading.Event(), []
        storm = threading.Thread(target=login_storm, args=(hub, names, stop, logins))
        storm.start()
        time.sleep(2)  # let every login client get going
        results["me+login"] = wrk(f"{hub.url}/hub/annotations/api/me", {"Cookie": cookie})
        stop.set()
        storm.join()
        assert requests.get(f"{hub.url}/hub/health", timeout=10).status_code == 200
    finally:
        hub.stop()

    print_results(results)
    me, idle = results["me+login"], results["me"]
    print(
        f"\nme / bare = {results['me']['rps'] / results['bare']['rps']:.2f}x req/s; "
        f"me / hub-api = {results['me']['rps'] / results['hub-api']['rps']:.2f}x req/s"
    )
    print(
        f"p99 of me during {LOGIN_CLIENTS} concurrent logins ({len(logins)} logins done) "
        f"/ idle p99 = {me['p99'] / idle['p99']:.2f}x (target <= 2x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
