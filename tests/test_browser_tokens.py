"""End-to-end in headless Chromium: the Tokens page (create, copy once, use, revoke).

The token made in the browser is then used the way a notebook would: a plain
``requests`` call with ``Authorization: Bearer``, no cookies. SQLite only, like
``test_browser.py`` whose fixtures these tests reuse; every step is saved as
``tests/artifacts/browser/tokens-*.png``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests import test_browser as base
from tests.test_browser import expect, shot
from tests.test_browser_admin import (
    accept_link,
    another_person,
    issue_link,
    open_from_nav,
    set_up_admin,
)

browser = base.browser
page = base.page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

BOB_PASSWORD = "bob reads but never writes 3"


def me(hub, token: str) -> requests.Response:
    """``GET me`` as a notebook would call it: the token, and no browser cookie."""
    return requests.get(
        f"{hub.url}/hub/annotations/api/me",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def submit(page, selector: str = "#create-token"):
    """Click a submit button; the response the form post answers with."""
    with page.expect_navigation() as navigation:
        page.click(selector)
    return navigation.value


def post_form(page, fields: dict[str, str]) -> int:
    """A hand-made form post to the tokens page, with the page's own ``_xsrf``."""
    with page.expect_navigation() as navigation:
        page.evaluate(
            """fields => {
                const form = document.createElement("form");
                form.method = "post";
                // getAttribute: the form's field named "action" hides its .action.
                const target = document.getElementById("create-token-form");
                form.setAttribute("action", target.getAttribute("action"));
                const all = {...fields, _xsrf: document.querySelector("[name=_xsrf]").value};
                for (const [name, value] of Object.entries(all)) {
                    const input = document.createElement("input");
                    input.type = "hidden";
                    input.name = name;
                    input.value = value;
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            fields,
        )
    return navigation.value.status


def bypass_browser_checks(page) -> None:
    """Let the form post what the browser would refuse, as a script could."""
    page.evaluate("document.getElementById('create-token-form').noValidate = true")


def test_create_copy_use_and_revoke_a_token(hub, page):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=hub.url)
    set_up_admin(page, hub, "tokens")

    # A second project, so that "restricted to demo" visibly leaves one out.
    open_from_nav(page, "nav-projects", "Projects")
    page.fill("#project-slug", "birds")
    with page.expect_navigation():
        page.click("#create-project")
    expect(page.locator("h1")).to_have_text("birds")

    open_from_nav(page, "nav-tokens", "API tokens")
    expect(page.locator("#no-tokens")).to_be_visible()
    expect(page.locator("#new-token")).to_have_count(0)
    # The defaults: read only, all projects, 30 days; a hub admin may grant users:manage.
    expect(page.locator("#scope-annotations-read")).to_be_checked()
    for scope in ("annotations-write", "projects-manage", "tokens-manage", "users-manage"):
        expect(page.locator(f"#scope-{scope}")).not_to_be_checked()
    expect(page.locator('[name="projects"]')).to_have_count(2)
    expect(page.locator('[name="projects"]:checked')).to_have_count(0)
    expect(page.locator("#token-days")).to_have_value("30")
    expect(page.locator("#token-days")).to_have_attribute("max", "90")
    expect(page.locator("#token-snippet")).to_contain_text(
        f'hub = "{hub.url}"', use_inner_text=True
    )
    expect(page.locator("#token-snippet")).to_contain_text(
        'requests.get(f"{hub}/hub/annotations/api/me", '
        'headers={"Authorization": f"Bearer {token}"})'
    )
    shot(page, "tokens-04-tokens-page")

    page.fill("#token-name", "notebook")
    page.check("#scope-annotations-write")
    page.check("#token-project-demo")
    page.fill("#token-days", "7")
    shot(page, "tokens-05-create-form-filled")
    created = submit(page)
    assert created.status == 200
    # The one page holding the plaintext is kept by no cache.
    assert "no-store" in created.headers["cache-control"]
    expect(page.locator("#page-error")).to_have_count(0)
    expect(page.locator("#page-message")).to_contain_text("Created token 'notebook'")
    expect(page.locator("#new-token-once")).to_contain_text("will not be shown again")
    token = page.locator("#new-token").input_value()
    assert token.startswith("anno_") and len(token) == 54
    expect(page.locator("#new-token")).to_have_attribute("readonly", "")
    page.click("#copy-token")
    expect(page.locator("#copy-token")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == token
    # The form is back to its defaults for the next token.
    expect(page.locator("#token-name")).to_have_value("")
    expect(page.locator("#scope-annotations-write")).not_to_be_checked()
    shot(page, "tokens-06-created-shown-once")

    row = page.locator("#tokens-table tbody tr")
    expect(row).to_have_count(1)
    token_id = row.get_attribute("data-token-id")
    assert token_id and token_id.isdigit()

    # A notebook's call: the token alone, with exactly what was asked for.
    answer = me(hub, token)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["name"] == "admin"
    assert body["auth"] == "token"
    assert body["scopes"] == ["annotations:read", "annotations:write"]
    assert [p["slug"] for p in body["projects"]] == ["demo"]

    # Shown once: a later visit lists the token's metadata, never its plaintext.
    answer = page.goto(f"{hub.url}/hub/annotations/tokens")
    assert answer is not None and answer.status == 200
    assert token not in page.content()
    assert token not in answer.text()
    expect(page.locator("#new-token")).to_have_count(0)
    expect(page.locator("#copy-token")).to_have_count(0)
    row = page.locator(f'tr[data-token-id="{token_id}"]')
    expect(row.locator("td.name")).to_have_text("notebook")
    expect(row.locator("td.scopes")).to_have_text("annotations:read annotations:write")
    expect(row.locator("td.scopes .badge")).to_have_text(["annotations:read", "annotations:write"])
    expect(row.locator("td.projects")).to_have_text("demo")
    expires = datetime.now(UTC) + timedelta(days=7)
    expect(row.locator("td.expires")).to_contain_text(expires.strftime("%Y-%m-%d"))
    expect(row.locator("td.last-used")).not_to_have_text("never")  # the call just made
    shot(page, "tokens-07-listed-without-plaintext")

    assert submit(page, f'[data-revoke="{token_id}"]').status == 200
    expect(page.locator("#page-message")).to_contain_text("Token 'notebook' revoked")
    expect(page.locator(f'tr[data-token-id="{token_id}"]')).to_have_count(0)
    expect(page.locator("#no-tokens")).to_be_visible()
    shot(page, "tokens-08-revoked")

    answer = me(hub, token)
    assert answer.status_code == 401, answer.text
    assert "revoked" in answer.json()["error"]["message"]
    # Never logged, at creation or at use.
    assert token not in hub.log()


def test_bad_requests_show_an_error_and_create_nothing(hub, page):
    set_up_admin(page, hub, "tokens-bad")
    open_from_nav(page, "nav-tokens", "API tokens")

    # No scope checked: refused, not silently turned into annotations:read.
    page.fill("#token-name", "script")
    page.uncheck("#scope-annotations-read")
    assert submit(page).status == 400
    expect(page.locator("#page-error")).to_contain_text("Check at least one scope")
    expect(page.locator("#new-token")).to_have_count(0)
    expect(page.locator("#tokens-table")).to_have_count(0)
    # What was typed is kept for the next try.
    expect(page.locator("#token-name")).to_have_value("script")
    expect(page.locator("#scope-annotations-read")).not_to_be_checked()
    shot(page, "tokens-bad-04-no-scope")

    # The browser refuses an expiry out of 1..90; the server does too, with a reason.
    page.check("#scope-annotations-read")
    for days in ("0", "1000"):
        page.fill("#token-days", days)
        assert page.locator("#token-days").evaluate("input => input.checkValidity()") is False
        bypass_browser_checks(page)
        assert submit(page).status == 400
        expect(page.locator("#page-error")).to_contain_text(
            f"Expiry must be 1 to 90 days, not {days}"
        )
        expect(page.locator("#new-token")).to_have_count(0)
        expect(page.locator("#tokens-table")).to_have_count(0)
        expect(page.locator("#token-days")).to_have_value(days)
        shot(page, f"tokens-bad-05-days-{days}")

    # Not a number at all, an unknown scope, a project the caller cannot see.
    base_fields = {"action": "create", "name": "script", "scopes": "annotations:read"}
    for fields, status, message in (
        ({"expires_in_days": "soon"}, 400, "whole number of days, 1 to 90"),
        ({"expires_in_days": "7", "scopes": "annotations:delete"}, 400, "Unknown scope"),
        ({"expires_in_days": "7", "projects": "nowhere"}, 400, "not a member of a project"),
        ({"expires_in_days": "7", "name": " "}, 400, "needs a name"),
    ):
        assert post_form(page, {**base_fields, **fields}) == status
        expect(page.locator("#page-error")).to_contain_text(message)
        expect(page.locator("#tokens-table")).to_have_count(0)
    shot(page, "tokens-bad-06-forged-create")

    # Revoking: an id that is not a number is a 400, an unknown one a 404; never a 500.
    for token_id, status, message in (
        ("abc", 400, "is not a token id"),
        ("1e3", 400, "is not a token id"),
        ("99999999999999999999", 400, "is not a token id"),
        ("", 400, "is not a token id"),
        ("12345", 404, "You have no token with id 12345"),
    ):
        assert post_form(page, {"action": "revoke", "id": token_id}) == status
        expect(page.locator("#page-error")).to_contain_text(message)
    assert post_form(page, {"action": "delete"}) == 400
    expect(page.locator("#page-error")).to_contain_text("Unknown action 'delete'")
    shot(page, "tokens-bad-07-bad-revoke")

    # Nothing was created by any of it.
    page.goto(f"{hub.url}/hub/annotations/tokens")
    expect(page.locator("#no-tokens")).to_be_visible()
    expect(page.locator("#page-error")).to_have_count(0)


def test_a_user_gets_only_their_scopes_and_projects(hub, page, browser):
    set_up_admin(page, hub, "tokens-user")
    open_from_nav(page, "nav-users", "Users")
    link = issue_link(page, "bob")

    with another_person(browser) as bob:
        accept_link(bob, hub, link, "bob", BOB_PASSWORD, "tokens-user-04-bob")
        open_from_nav(bob, "nav-tokens", "API tokens")
        # Not a hub admin: no users:manage to check; bob's one project, demo.
        expect(bob.locator("#scope-users-manage")).to_have_count(0)
        expect(bob.locator("#scope-tokens-manage")).to_be_visible()
        expect(bob.locator('[name="projects"]')).to_have_count(1)
        expect(bob.locator("#token-project-demo")).to_be_visible()
        shot(bob, "tokens-user-05-bob-tokens-page")

        # Asking anyway is refused with the reason, not silently dropped.
        fields = {
            "action": "create",
            "name": "sneaky",
            "scopes": "users:manage",
            "expires_in_days": "1",
        }
        assert post_form(bob, fields) == 400
        expect(bob.locator("#page-error")).to_contain_text("Only hub admins")
        expect(bob.locator("#tokens-table")).to_have_count(0)
        shot(bob, "tokens-user-06-users-manage-refused")

        # The form keeps what was posted: no scope bob can check is checked now.
        expect(bob.locator('[name="scopes"]:checked')).to_have_count(0)
        bob.fill("#token-name", "reader")
        bob.check("#scope-annotations-read")
        assert submit(bob).status == 200
        token = bob.locator("#new-token").input_value()
        row = bob.locator("#tokens-table tbody tr")
        expect(row.locator("td.projects")).to_have_text("all")
        expect(row.locator("td.scopes")).to_have_text("annotations:read")
        token_id = row.get_attribute("data-token-id")

    # "Your tokens" lists the caller's own only, a hub admin's too (bob's token is under
    # "Everyone's tokens", below).
    open_from_nav(page, "nav-tokens", "API tokens")
    expect(page.locator(f'tr[data-token-id="{token_id}"]')).to_have_count(0)
    expect(page.locator(f'tr[data-any-token-id="{token_id}"]')).to_have_count(1)
    assert me(hub, token).status_code == 200


def create_token(page, name: str) -> tuple[str, str]:
    """On the tokens page: create a read-only token; its plaintext (shown once) and id."""
    page.fill("#token-name", name)
    assert submit(page).status == 200
    expect(page.locator("#page-message")).to_contain_text(f"Created token '{name}'")
    token = page.locator("#new-token").input_value()
    row = page.locator("#tokens-table tbody tr", has=page.locator("td.name", has_text=name))
    return token, row.get_attribute("data-token-id")


def test_a_hub_admin_revokes_another_users_token_from_everyones_tokens(hub, page, browser):
    set_up_admin(page, hub, "tokens-everyone")
    open_from_nav(page, "nav-users", "Users")
    link = issue_link(page, "bob")
    open_from_nav(page, "nav-tokens", "API tokens")
    # With only the admin's own token, the section lists just that one.
    expect(page.locator("#everyones-tokens h2")).to_have_text("Everyone's tokens")
    expect(page.locator("#no-everyones-tokens")).to_be_visible()
    admins, admins_id = create_token(page, "admin laptop")

    with another_person(browser) as bob:
        accept_link(bob, hub, link, "bob", BOB_PASSWORD, "tokens-everyone-04-bob")
        open_from_nav(bob, "nav-tokens", "API tokens")
        bobs, bobs_id = create_token(bob, "bob notebook")
    assert me(hub, bobs).status_code == 200  # used once: the list shows a last use

    answer = page.goto(f"{hub.url}/hub/annotations/tokens")
    assert answer is not None and answer.status == 200
    section = page.locator("#everyones-tokens")
    rows = section.locator("tbody tr")
    expect(rows).to_have_count(2)  # by owner: admin, then bob
    expect(rows.locator("td.owner")).to_have_text(["admin", "bob"])
    expect(rows.locator("td.name")).to_have_text(["admin laptop", "bob notebook"])
    row = section.locator(f'tr[data-any-token-id="{bobs_id}"]')
    expect(row).to_have_attribute("data-owner", "bob")
    expect(row.locator("td.scopes")).to_have_text("annotations:read")
    expect(row.locator("td.projects")).to_have_text("all")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    expect(row.locator("td.created")).to_contain_text(today)
    expires = datetime.now(UTC) + timedelta(days=30)
    expect(row.locator("td.expires")).to_contain_text(expires.strftime("%Y-%m-%d"))
    expect(row.locator("td.last-used")).to_contain_text(today)
    # "Your tokens" is still the admin's own only.
    expect(page.locator("#tokens-table tbody tr")).to_have_count(1)
    expect(page.locator(f'#tokens-table tr[data-token-id="{bobs_id}"]')).to_have_count(0)
    shot(page, "tokens-everyone-05-everyones-tokens")

    assert submit(page, f'[data-revoke-any="{bobs_id}"]').status == 200
    expect(page.locator("#page-error")).to_have_count(0)
    expect(page.locator("#page-message")).to_contain_text(
        "Token 'bob notebook' of bob revoked: it no longer works."
    )
    expect(page.locator(f'tr[data-any-token-id="{bobs_id}"]')).to_have_count(0)
    expect(page.locator(f'tr[data-any-token-id="{admins_id}"]')).to_have_count(1)
    shot(page, "tokens-everyone-06-bobs-token-revoked")

    answer = me(hub, bobs)
    assert answer.status_code == 401, answer.text
    assert "revoked" in answer.json()["error"]["message"]
    assert me(hub, admins).status_code == 200  # only that one

    # Recorded like any revocation: the admin did it, to bob's token.
    open_from_nav(page, "nav-audit", "Audit log")
    event = page.locator('tr[data-action="token.revoke"]')
    expect(event).to_have_count(1)
    expect(event).to_contain_text("bob")
    shot(page, "tokens-everyone-07-audit")
    for token in (admins, bobs):
        assert token not in hub.log()


def test_a_non_admins_tokens_page_has_no_everyones_tokens(hub, page, browser):
    set_up_admin(page, hub, "tokens-no-everyone")
    open_from_nav(page, "nav-users", "Users")
    link = issue_link(page, "bob")
    open_from_nav(page, "nav-tokens", "API tokens")
    admins, admins_id = create_token(page, "admin laptop")

    with another_person(browser) as bob:
        accept_link(bob, hub, link, "bob", BOB_PASSWORD, "tokens-no-everyone-04-bob")
        open_from_nav(bob, "nav-tokens", "API tokens")
        create_token(bob, "bob notebook")
        expect(bob.locator("#tokens-table tbody tr")).to_have_count(1)
        expect(bob.locator("#everyones-tokens")).to_have_count(0)
        expect(bob.locator("[data-revoke-any]")).to_have_count(0)
        expect(bob.locator("body")).not_to_contain_text("Everyone's tokens")
        expect(bob.locator("body")).not_to_contain_text("admin laptop")
        shot(bob, "tokens-no-everyone-05-bob-tokens-page")

        # A forged post of the revoke form for the admin's token: 404, as in the API.
        assert post_form(bob, {"action": "revoke", "id": admins_id}) == 404
        expect(bob.locator("#page-error")).to_contain_text(f"You have no token with id {admins_id}")
        expect(bob.locator("#everyones-tokens")).to_have_count(0)
        shot(bob, "tokens-no-everyone-06-forged-revoke-refused")
    assert me(hub, admins).status_code == 200
