"""The whole journey in headless Chromium, as new people would go through it.

The admin opens the first-run link, sets a password, creates a project and two users
with invite links; each user, in a browser of their own, sets a password, creates a
token on the tokens page and annotates the same item with it (a ``fetch`` from their
page, as a notebook's request would); each sees what SPEC section 7 says they see; the
admin revokes a token with its Revoke button under "Everyone's tokens" on the tokens page,
and its next call fails. Every page is a screenshot under ``tests/artifacts/browser/journey-*``.
"""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest

from tests import test_browser as base
from tests.test_browser import PASSWORD, expect, open_setup_link, shot, submit_password
from tests.test_browser_admin import accept_link, another_person, log_in, open_from_nav

browser = base.browser
page = base.page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

PROJECT = "herons"
ITEM = "photo-001"
PEOPLE = {"erin": "erin picks a long passphrase 7", "finn": "finn annotates herons daily 5"}

# A script's call from the page: the token alone, no cookie (credentials: "omit").
FETCH = """async ([method, url, token, body]) => {
    const headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"};
    const answer = await fetch(url, {method, headers, credentials: "omit",
                                     body: body === null ? undefined : JSON.stringify(body)});
    return {status: answer.status, body: await answer.text()};
}"""


def api_url(hub, path: str) -> str:
    return f"{hub.url}/hub/annotations/api/{path}"


def with_token(page, hub, method: str, path: str, token: str, body=None) -> dict:
    return page.evaluate(FETCH, [method, api_url(hub, path), token, body])


def owners_seen(page, hub, token: str) -> list[str]:
    answer = with_token(page, hub, "GET", f"projects/{PROJECT}/items/{ITEM}/annotations", token)
    assert answer["status"] == 200, answer
    return [a["owner"] for a in json.loads(answer["body"])["items"]]


def create_user(page, name: str) -> str:
    """On the users page: create ``name`` and return the invite link shown once."""
    page.fill("#create-name", name)
    with page.expect_navigation():
        page.click("#create-user")
    expect(page.locator("#page-message")).to_contain_text(f"Created {name}")
    return page.locator("#new-link").input_value()


def add_member(page, name: str, role: str) -> None:
    page.fill("#member-name", name)
    page.select_option("#member-role", role)
    with page.expect_navigation():
        page.click("#set-member")
    expect(page.locator(f'tr[data-member="{name}"] td.role')).to_have_text(role)


def create_token(page, prefix: str) -> str:
    open_from_nav(page, "nav-tokens", "API tokens")
    shot(page, f"{prefix}-tokens-page")
    page.fill("#token-name", "annotating")
    page.check("#scope-annotations-write")
    page.fill("#token-days", "7")
    with page.expect_navigation():
        page.click("#create-token")
    expect(page.locator("#new-token-once")).to_be_visible()
    shot(page, f"{prefix}-token-created")
    return page.locator("#new-token").input_value()


def test_first_run_to_revoked_token(hub, page, browser):
    # The first-run link, as `set_up_admin` does, with the login page in between.
    open_setup_link(page, hub)
    expect(page.locator("#account-name")).to_have_text("admin")
    shot(page, "journey-01-admin-setup-link")
    submit_password(page, PASSWORD)
    expect(page.locator("h1")).to_have_text("Password set")
    shot(page, "journey-02-admin-password-set")
    with page.expect_navigation():
        page.click("#login-link")
    expect(page.locator("#username_input")).to_have_value("admin")
    page.fill("#password_input", PASSWORD)
    shot(page, "journey-03-login")
    log_in(page, hub, "admin", PASSWORD, "journey-04-admin-home")

    open_from_nav(page, "nav-projects", "Projects")
    page.fill("#project-slug", PROJECT)
    page.fill("#project-description", "Heron photos, one label each")
    expect(page.locator("#project-share")).not_to_be_checked()  # annotators see their own
    with page.expect_navigation():
        page.click("#create-project")
    expect(page.locator("h1")).to_have_text(PROJECT)
    shot(page, "journey-05-project-created")
    open_from_nav(page, "nav-projects", "Projects")
    expect(page.locator("body")).to_contain_text(PROJECT)
    shot(page, "journey-06-projects-list")

    open_from_nav(page, "nav-users", "Users")
    links = {name: create_user(page, name) for name in PEOPLE}
    shot(page, "journey-07-users-created")
    page.goto(f"{hub.url}/hub/annotations/projects/{PROJECT}")
    for name in PEOPLE:
        add_member(page, name, "annotator")
    shot(page, "journey-08-members-added")

    tokens, pages = {}, {}
    with ExitStack() as people:
        for name, password in PEOPLE.items():
            pages[name] = people.enter_context(another_person(browser))
            accept_link(pages[name], hub, links[name], name, password, f"journey-09-{name}")
            tokens[name] = create_token(pages[name], f"journey-10-{name}")
        # Both annotate the same item, each under their own name: both are kept.
        for name, label in (("erin", "heron"), ("finn", "egret")):
            path = f"projects/{PROJECT}/items/{ITEM}/annotations/{name}"
            answer = with_token(pages[name], hub, "PUT", path, tokens[name], {"data": label})
            assert answer["status"] == 201, answer
        # Writing under someone else's name is refused.
        other = f"projects/{PROJECT}/items/{ITEM}/annotations/finn"
        answer = with_token(pages["erin"], hub, "PUT", other, tokens["erin"], {"data": "x"})
        assert answer["status"] == 403, answer

        # The project does not share annotations: each annotator sees only their own.
        assert owners_seen(pages["erin"], hub, tokens["erin"]) == ["erin"]
        assert owners_seen(pages["finn"], hub, tokens["finn"]) == ["finn"]
        # In the browser, with the session: the same answer, as JSON.
        pages["erin"].goto(api_url(hub, f"projects/{PROJECT}/items/{ITEM}/annotations"))
        expect(pages["erin"].locator("body")).to_contain_text('"owner": "erin"')
        expect(pages["erin"].locator("body")).not_to_contain_text('"owner": "finn"')
        shot(pages["erin"], "journey-11-erin-sees-her-own")

        # The admin sees both, then switches sharing on; now erin sees finn's too.
        page.goto(api_url(hub, f"projects/{PROJECT}/items/{ITEM}/annotations"))
        expect(page.locator("body")).to_contain_text('"owner": "erin"')
        expect(page.locator("body")).to_contain_text('"owner": "finn"')
        shot(page, "journey-12-admin-sees-both")
        page.goto(f"{hub.url}/hub/annotations/projects/{PROJECT}")
        page.check("#share_annotations")
        with page.expect_navigation():
            page.click("#save-settings")
        expect(page.locator("#page-message")).to_contain_text("Settings saved")
        shot(page, "journey-13-sharing-on")
        assert owners_seen(pages["erin"], hub, tokens["erin"]) == ["erin", "finn"]

        # The admin revokes erin's token: its Revoke button under "Everyone's tokens".
        open_from_nav(page, "nav-tokens", "API tokens")
        everyone = page.locator("#everyones-tokens")
        expect(everyone.locator("tbody tr td.owner")).to_have_text(["erin", "finn"])
        erins = everyone.locator('tr[data-owner="erin"]')
        expect(erins.locator("td.name")).to_have_text("annotating")
        shot(page, "journey-14-everyones-tokens")
        with page.expect_navigation() as revoked:
            erins.locator("[data-revoke-any]").click()
        assert revoked.value.status == 200
        expect(page.locator("#page-message")).to_contain_text("Token 'annotating' of erin revoked")
        expect(everyone.locator("tbody tr td.owner")).to_have_text(["finn"])
        shot(page, "journey-15-token-revoked")
        answer = with_token(pages["erin"], hub, "GET", "me", tokens["erin"])
        assert answer["status"] == 401 and "revoked" in answer["body"], answer
        assert with_token(pages["finn"], hub, "GET", "me", tokens["finn"])["status"] == 200

        open_from_nav(page, "nav-audit", "Audit log")
        expect(page.locator('tr[data-action="token.revoke"]')).to_have_count(1)
        expect(page.locator('tr[data-action="token.revoke"]')).to_contain_text("erin")
        shot(page, "journey-16-audit-log")
    for token in tokens.values():
        assert token not in hub.log()
