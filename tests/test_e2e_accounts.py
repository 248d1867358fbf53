"""End-to-end: first run, set password, login, lockout, links, restarts: on a real hub."""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.hub import Browser, form_fields

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse 4 annotations"


def setup_admin(hub, password: str = PASSWORD) -> Browser:
    (link,) = hub.setup_links()
    browser = Browser(hub)
    done = browser.set_password(link, password)
    assert done.status_code == 200, done.text
    assert "Password set" in done.text
    return browser


def test_first_run_prints_one_setup_link(hub):
    links = hub.setup_links()
    assert len(links) == 1
    page = Browser(hub).get(links[0])
    assert page.status_code == 200
    assert 'id="account-name">admin<' in page.text
    assert 'name="_xsrf"' in page.text
    # Our account table is the allow list: the hub must not warn that it has none.
    assert "No allow config found" not in hub.log()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_demo_config_takes_its_port_from_the_command_line(make_hub):
    """`jupyterhub -f jupyterhub_config.py --port P`: the hub listens on P, and the
    first-run link says so (the demo config must not pin a bind_url)."""
    hub = make_hub(port_on_command_line=True)
    assert requests.get(f"{hub.url}/hub/health", timeout=10).status_code == 200
    (link,) = hub.setup_links()
    assert link.startswith(f"http://127.0.0.1:{hub.port}/hub/annotations/set-password?")


def test_pages_holding_a_link_token_are_never_stored(hub):
    (link,) = hub.setup_links()
    browser = Browser(hub)
    form = browser.get(link)
    assert form.status_code == 200 and form.headers["Cache-Control"] == "no-store"
    # Refusals too: their URL holds the token.
    refused = Browser(hub).get(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"))
    assert refused.status_code == 400 and refused.headers["Cache-Control"] == "no-store"
    done = browser.set_password(link, PASSWORD)
    assert done.status_code == 200 and done.headers["Cache-Control"] == "no-store"


def test_users_page_showing_a_new_link_is_never_stored(hub):
    admin = setup_admin(hub)
    admin.login("admin", PASSWORD)
    listing = admin.get("/hub/annotations/users")
    assert listing.status_code == 200 and "no-store" not in listing.headers.get("Cache-Control", "")
    users = "/hub/annotations/users"
    for fields in ({"action": "create", "name": "dora"}, {"action": "link", "name": "dora"}):
        page = admin.post_form(users, fields)
        assert page.status_code == 200, page.text[:300]
        assert "/hub/annotations/set-password?token=" in page.text
        assert page.headers["Cache-Control"] == "no-store"
    # A page without a link may be cached as usual.
    service = admin.post_form(users, {"action": "create-service", "name": "bot"})
    assert service.status_code == 200
    assert "no-store" not in service.headers.get("Cache-Control", "")


def test_set_password_then_login_lands_on_hub_home(hub):
    browser = setup_admin(hub)
    home = browser.login("admin", PASSWORD)
    assert home.status_code == 200
    assert home.url.startswith(f"{hub.url}/hub/")
    assert "/hub/login" not in home.url
    me = browser.get("/hub/annotations/api/me").json()
    assert me["name"] == "admin" and me["admin"] is True and me["auth"] == "session"


def post_link_token(hub, link: str, password: str):
    """POST a link's token to the set-password form directly, as a replay would (with a
    valid ``_xsrf``), whatever the link's page shows."""
    browser = Browser(hub)
    return browser.http.post(
        f"{hub.url}/hub/annotations/set-password",
        data={
            **form_fields(browser.get("/hub/login").text),
            "token": link.split("token=")[1],
            "password": password,
            "confirm": password,
        },
    )


def test_setup_link_works_once(hub):
    (link,) = hub.setup_links()
    setup_admin(hub)
    again = Browser(hub).get(link)
    assert again.status_code == 400
    assert "already been used" in again.text
    # Posting the used token directly is refused too, and changes nothing.
    reuse = post_link_token(hub, link, "another password 123")
    assert reuse.status_code == 400 and "already been used" in reuse.text
    assert Browser(hub).login("admin", PASSWORD).url.startswith(f"{hub.url}/hub/")


def test_tampered_link_is_refused_with_a_clear_message(hub):
    (link,) = hub.setup_links()
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    page = Browser(hub).get(tampered)
    assert page.status_code == 400
    assert "not valid" in page.text
    assert Browser(hub).get("/hub/annotations/set-password").status_code == 400


def test_expired_link_is_refused(make_hub):
    hub = make_hub("c.AnnotationAuthenticator.link_lifetime_hours = 1 / 3600")  # 1 s
    (link,) = hub.setup_links()
    time.sleep(2.5)
    page = Browser(hub).get(link)
    assert page.status_code == 400
    assert "expired" in page.text


def test_password_policy_is_enforced_on_the_page(hub):
    (link,) = hub.setup_links()
    browser = Browser(hub)
    for bad, message in [
        ("short", "too short"),
        ("admin", "too short"),
        ("password123", "commonly used"),
    ]:
        page = browser.set_password(link, bad)
        assert page.status_code == 400, page.text
        assert message in page.text
    mismatch = browser.set_password(link, PASSWORD, confirm=PASSWORD + "x")
    assert mismatch.status_code == 400 and "do not match" in mismatch.text
    # None of the refusals used the link up.
    assert browser.set_password(link, PASSWORD).status_code == 200


def test_set_password_post_without_xsrf_is_refused(hub):
    (link,) = hub.setup_links()
    browser = Browser(hub)
    browser.get(link)
    token = link.split("token=")[1]
    answer = browser.http.post(
        f"{hub.url}/hub/annotations/set-password",
        data={"token": token, "password": PASSWORD, "confirm": PASSWORD},
    )
    assert answer.status_code == 403
    assert browser.set_password(link, PASSWORD).status_code == 200


def test_wrong_password_and_unknown_user_get_the_same_answer(hub):
    setup_admin(hub)
    wrong = Browser(hub).login("admin", "not the password at all")
    unknown = Browser(hub).login("nobody", "not the password at all")
    errors = []
    for answer in (wrong, unknown):
        assert answer.status_code == 403
        errors.append(re.findall(r'<p class="login_error">([^<]*)</p>', answer.text))
    # Word for word the same: the answer does not tell a known name from an unknown one.
    assert errors == [["Invalid username or password"]] * 2


def test_lockout_after_five_failures_even_with_the_right_password(hub):
    setup_admin(hub)
    for _ in range(5):
        assert Browser(hub).login("admin", "wrong password 0000").status_code == 403
    locked = Browser(hub).login("admin", PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed login attempts" in locked.text
    # The lockout is in the database: a restart does not lift it.
    hub.restart()
    assert Browser(hub).login("admin", PASSWORD).status_code == 429


def test_reset_link_still_works_for_a_locked_account(hub):
    setup_admin(hub)
    for _ in range(5):
        Browser(hub).login("admin", "wrong password 0000")
    out = hub.cli("setup-link")
    assert out.returncode == 0, out.stderr
    new = "a brand new passphrase 77"
    assert Browser(hub).set_password(out.stdout.strip(), new).status_code == 200
    assert Browser(hub).login("admin", new).url.startswith(f"{hub.url}/hub/")


def test_login_survives_a_restart(hub):
    setup_admin(hub)
    hub.restart()
    assert hub.setup_links() != [] and len(hub.setup_links()) == 1  # printed once, not again
    home = Browser(hub).login("admin", PASSWORD)
    assert home.status_code == 200 and "/hub/login" not in home.url


def test_change_password_page(hub):
    browser = setup_admin(hub)
    browser.login("admin", PASSWORD)
    page = browser.get("/hub/annotations/change-password")
    assert page.status_code == 200 and "Change your password" in page.text
    wrong = browser.post_form(
        "/hub/annotations/change-password",
        {
            "current": "not it at all",
            "password": "next password 1234",
            "confirm": "next password 1234",
        },
    )
    assert wrong.status_code == 403 and "current password is not correct" in wrong.text
    done = browser.post_form(
        "/hub/annotations/change-password",
        {"current": PASSWORD, "password": "next password 1234", "confirm": "next password 1234"},
    )
    assert done.status_code == 200 and "has been changed" in done.text
    assert Browser(hub).login("admin", PASSWORD).status_code == 403
    assert Browser(hub).login("admin", "next password 1234").status_code == 200


def test_change_password_needs_login(hub):
    answer = Browser(hub).get("/hub/annotations/change-password", allow_redirects=False)
    assert answer.status_code == 302
    assert "/hub/login?next=" in answer.headers["Location"]


def test_cli_prints_a_fresh_link(hub):
    out = hub.cli("setup-link")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(f"{hub.url}/hub/annotations/set-password?token=")
    assert Browser(hub).get(out.stdout.strip()).status_code == 200
    assert hub.cli("setup-link", "--user", "nobody").returncode == 2


def test_cli_gives_a_service_account_no_link(hub):
    admin = setup_admin(hub)
    admin.login("admin", PASSWORD)
    assert admin.api("POST", "users", {"name": "svc:x"}).status_code == 201
    out = hub.cli("setup-link", "--user", "svc:x")
    assert out.returncode == 2
    assert out.stdout == ""
    assert "A service account has no password: give it a token instead." in out.stderr


def test_link_of_a_deleted_user_does_not_work_for_a_new_user_of_that_name(hub):
    admin = setup_admin(hub)
    admin.login("admin", PASSWORD)
    old = admin.api("POST", "users", {"name": "erin"}).json()["link"]
    assert admin.api("DELETE", "users/erin").status_code == 204
    assert admin.api("POST", "users", {"name": "erin"}).status_code == 201
    page = Browser(hub).get(old)
    assert page.status_code == 400
    assert "This link&#39;s account no longer exists" in page.text
    # Posting the old token directly is refused too, and sets no password.
    refused = post_link_token(hub, old, "not erins choice 123")
    assert refused.status_code == 400 and "no longer exists" in refused.text
    assert Browser(hub).login("erin", "not erins choice 123").status_code == 403


def test_first_admin_password_from_the_environment_prints_no_link(make_hub):
    quiet = make_hub(env={"ANNOTATIONS_ADMIN_PASSWORD": "unattended install pw 9"})
    assert quiet.setup_links() == []
    assert Browser(quiet).login("admin", "unattended install pw 9").status_code == 200


def test_api_answers_401_json_not_a_redirect(hub):
    answer = Browser(hub).get("/hub/annotations/api/me", allow_redirects=False)
    assert answer.status_code == 401
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json()["error"]["status"] == 401
    missing = Browser(hub).get("/hub/annotations/api/no-such-route")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == 404


def logged_in_admin(hub) -> Browser:
    admin = setup_admin(hub)
    assert admin.login("admin", PASSWORD).status_code == 200
    return admin


def give_password(hub, admin: Browser, name: str, password: str) -> None:
    """An admin issues a link through the API; the user sets a password with it."""
    answer = admin.api("POST", f"users/{name}/link")
    assert answer.headers["Cache-Control"] == "no-store"  # it holds a one-time link
    assert Browser(hub).set_password(answer.json()["link"], password).status_code == 200


def test_deactivated_account_cannot_log_in(hub):
    admin = logged_in_admin(hub)
    give_password(hub, admin, "alice", "alices passphrase 1")
    assert admin.api("PATCH", "users/alice", {"active": False}).json()["active"] is False
    # The right password is refused like a wrong one (no oracle: SPEC 13).
    refused = Browser(hub).login("alice", "alices passphrase 1")
    assert refused.status_code == 403 and "Invalid username or password" in refused.text
    assert Browser(hub).login("alice", "a wrong passphrase").status_code == 403


def test_no_password_or_cli_link_reaches_the_hub_log(hub):
    browser = setup_admin(hub)
    browser.login("admin", "a wrong guess 12345")
    browser.login("admin", PASSWORD)
    browser.post_form(
        "/hub/annotations/change-password",
        {"current": PASSWORD, "password": "next password 1234", "confirm": "next password 1234"},
    )
    link = hub.cli("setup-link").stdout.strip()
    Browser(hub).set_password(link, "reset password 5678")
    log = hub.log()
    for secret in (PASSWORD, "a wrong guess 12345", "next password 1234", "reset password 5678"):
        assert secret not in log
    assert link.split("token=")[1] not in log
    assert "token=[secret]" in log  # the hub scrubbed the link from its access log


def admin_xsrf(browser: Browser) -> dict:
    """The header a logged-in page's JavaScript would send with a hub API call."""
    home = browser.get("/hub/home")
    return {"X-XSRFToken": re.search(r'xsrf_token: "([^"]+)"', home.text).group(1)}


def test_user_added_and_deleted_in_the_hub_admin_api(hub):
    admin = setup_admin(hub)
    admin.login("admin", PASSWORD)
    headers = admin_xsrf(admin)
    # Not in the demo config's projects: those accounts are in the hub from its start.
    added = admin.http.post(f"{hub.url}/hub/api/users/dora", headers=headers, timeout=30)
    assert added.status_code == 201, added.text
    # dora has an account with no password: nothing logs her in until she gets a link.
    assert Browser(hub).login("dora", "").status_code == 403
    out = hub.cli("setup-link", "--user", "dora")
    assert out.returncode == 0, out.stderr
    assert Browser(hub).set_password(out.stdout.strip(), "doras own passphrase").status_code == 200
    assert Browser(hub).login("dora", "doras own passphrase").status_code == 200
    # add_user runs again for dora at every start and changes nothing.
    hub.restart()
    assert Browser(hub).login("dora", "doras own passphrase").status_code == 200
    admin = Browser(hub)
    admin.login("admin", PASSWORD)
    gone = admin.http.delete(f"{hub.url}/hub/api/users/dora", headers=admin_xsrf(admin), timeout=30)
    assert gone.status_code == 204, gone.text
    # Deleted in the hub: deactivated, not destroyed (test_e2e_hub_users.py has more).
    assert Browser(hub).login("dora", "doras own passphrase").status_code == 403
    assert admin.api("GET", "users/dora").json()["active"] is False


def test_deactivation_ends_access_at_the_next_request(make_hub):
    hub = make_hub("c.Authenticator.auth_refresh_age = 1")
    admin = logged_in_admin(hub)
    give_password(hub, admin, "alice", "alices passphrase 1")
    alice = Browser(hub)
    alice.login("alice", "alices passphrase 1")
    assert alice.api("GET", "me").status_code == 200
    assert admin.api("PATCH", "users/alice", {"active": False}).status_code == 200
    assert alice.api("GET", "me").status_code == 401
    time.sleep(1.5)
    home = alice.get("/hub/home", allow_redirects=False)
    assert home.status_code == 302 and "/hub/login" in home.headers["Location"]
