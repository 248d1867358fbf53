"""End-to-end in headless Chromium: a hub admin's pages (Users, Projects, a project).

Each person gets a browser context of their own (cookies are not shared), as two people
at two computers would. Every page visited is saved as a full-page screenshot under
``tests/artifacts/browser/``. SQLite only, like ``test_browser.py`` whose fixtures and
helpers these tests reuse.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests import test_browser as base
from tests.test_browser import PASSWORD, TIMEOUT_MS, expect, open_setup_link, shot, submit_password

# The fixtures of test_browser.py, shared: one headless Chromium for this module, and a
# fresh browser context (no cookies) for each test's `page`.
browser = base.browser
page = base.page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

ERIN_PASSWORD = "erin picks a long passphrase 7"
BOB_PASSWORD = "bob reads but never writes 3"


@contextmanager
def another_person(browser) -> Iterator:
    """A page in a new browser context: someone else, at another computer."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def log_in(page, hub, name: str, password: str, shot_name: str) -> None:
    """Log in through the hub's login form; the demo config lands on /hub/home."""
    if not page.url.startswith(f"{hub.url}/hub/login"):
        page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(re.escape(hub.url) + r"/hub/home"))
    expect(page.locator("#login_widget")).to_contain_text(name)
    shot(page, shot_name)


def set_up_admin(page, hub, prefix: str) -> None:
    """The first-run link: the admin chooses a password, then logs in."""
    open_setup_link(page, hub)
    expect(page.locator("#account-name")).to_have_text("admin")
    shot(page, f"{prefix}-01-admin-setup-link")
    submit_password(page, PASSWORD)
    expect(page.locator("h1")).to_have_text("Password set")
    shot(page, f"{prefix}-02-admin-password-set")
    with page.expect_navigation():
        page.click("#login-link")
    log_in(page, hub, "admin", PASSWORD, f"{prefix}-03-admin-home")


def open_from_nav(page, nav_id: str, heading: str) -> None:
    with page.expect_navigation():
        page.click(f"#{nav_id}")
    expect(page.locator("h1")).to_have_text(heading)


def accept_link(page, hub, link: str, name: str, password: str, prefix: str) -> None:
    """Open a one-time link handed over by an admin, choose a password, log in."""
    answer = page.goto(link)
    assert answer is not None and answer.status == 200
    expect(page.locator("#account-name")).to_have_text(name)
    shot(page, f"{prefix}-a-link")
    submit_password(page, password)
    expect(page.locator("h1")).to_have_text("Password set")
    shot(page, f"{prefix}-b-password-set")
    with page.expect_navigation():
        page.click("#login-link")
    expect(page.locator("#username_input")).to_have_value(name)
    log_in(page, hub, name, password, f"{prefix}-c-home")


def user_action(page, name: str, action: str) -> None:
    """Click one of the buttons of a row of the users table (a form post)."""
    with page.expect_navigation():
        page.click(f'tr[data-user="{name}"] [data-action="{action}"]')


def cell(page, name: str, column: int):
    """A cell of a user's row: 0 name, 1 kind, 2 hub admin, 3 active, 4 password."""
    return page.locator(f'tr[data-user="{name}"] td').nth(column)


def issue_link(page, name: str) -> str:
    """On the users page: the invite or reset link of ``name``, as shown once."""
    user_action(page, name, "link")
    expect(page.locator("#page-message")).to_contain_text(f"New one-time link for {name}")
    link = page.locator("#new-link").input_value()
    assert "/hub/annotations/set-password?token=" in link
    return link


def test_admin_invites_a_user_who_sees_only_their_projects(hub, page, browser):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=hub.url)
    set_up_admin(page, hub, "invite")

    open_from_nav(page, "nav-users", "Users")
    shot(page, "invite-04-users-page")
    page.fill("#create-name", "erin")
    expect(page.locator("#create-admin")).not_to_be_checked()
    with page.expect_navigation():
        page.click("#create-user")
    expect(page.locator("#page-message")).to_contain_text("Created erin")
    expect(page.locator("#page-error")).to_have_count(0)
    link = page.locator("#new-link").input_value()
    assert link.startswith(f"{hub.url}/hub/annotations/set-password?token=")
    expect(cell(page, "erin", 1)).to_have_text("user")
    expect(cell(page, "erin", 4)).to_have_text("not yet")
    page.click("#copy-link")
    expect(page.locator("#copy-link")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == link
    shot(page, "invite-05-erin-created-with-link")

    open_from_nav(page, "nav-projects", "Projects")
    # A hub admin sees every project, as admin.
    expect(page.locator('tr[data-project="demo"] td.role')).to_have_text("admin")
    shot(page, "invite-06-admin-projects")
    page.fill("#project-slug", "erin-project")
    page.fill("#project-description", "Erin's first annotations")
    with page.expect_navigation():
        page.click("#create-project")
    assert page.url == f"{hub.url}/hub/annotations/projects/erin-project"
    expect(page.locator("h1")).to_have_text("erin-project")
    expect(page.locator("#my-role")).to_have_text("admin")
    expect(page.locator('tr[data-member="admin"] td.role')).to_have_text("admin")
    shot(page, "invite-07-project-created")

    page.fill("#member-name", "erin")
    page.select_option("#member-role", "annotator")
    with page.expect_navigation():
        page.click("#set-member")
    expect(page.locator("#page-message")).to_contain_text("erin is now annotator")
    expect(page.locator('tr[data-member="erin"] td.role')).to_have_text("annotator")
    expect(page.locator('[data-remove="erin"]')).to_be_visible()
    shot(page, "invite-08-erin-added")

    # Erin, in a browser of her own, with only the link the admin handed over.
    with another_person(browser) as erin:
        accept_link(erin, hub, link, "erin", ERIN_PASSWORD, "invite-09-erin")
        expect(erin.locator("#nav-users")).to_have_count(0)
        expect(erin.locator("#nav-projects")).to_be_visible()

        open_from_nav(erin, "nav-projects", "Projects")
        rows = erin.locator("#projects-table tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-project", "erin-project")
        expect(erin.locator('tr[data-project="erin-project"] td.role')).to_have_text("annotator")
        expect(erin.locator('tr[data-project="demo"]')).to_have_count(0)
        expect(erin.locator("#no-projects")).to_have_count(0)
        expect(erin.locator("#create-project")).to_have_count(0)
        expect(erin.locator("#nav-users")).to_have_count(0)
        shot(erin, "invite-10-erin-projects")

        with erin.expect_navigation():
            erin.click('tr[data-project="erin-project"] a')
        expect(erin.locator("#my-role")).to_have_text("annotator")
        expect(erin.locator("#set-member")).to_have_count(0)
        expect(erin.locator("#save-settings")).to_have_count(0)
        shot(erin, "invite-11-erin-project-page")

        answer = erin.goto(f"{hub.url}/hub/annotations/users")
        assert answer is not None and answer.status == 403
        expect(erin.locator("body")).to_contain_text("403")
        expect(erin.locator("#users-table")).to_have_count(0)
        shot(erin, "invite-12-erin-users-forbidden")


def test_admin_manages_accounts_on_the_users_page(hub, page):
    set_up_admin(page, hub, "users")
    open_from_nav(page, "nav-users", "Users")
    shot(page, "users-04-users-page")

    # A service account: the page supplies the svc: prefix.
    page.fill("#create-service-name", "model-x")
    with page.expect_navigation():
        page.click("#create-service")
    expect(page.locator("#page-message")).to_contain_text("Created service account svc:model-x")
    expect(page.locator("#new-link")).to_have_count(0)
    expect(cell(page, "svc:model-x", 1)).to_have_text("service")
    expect(cell(page, "svc:model-x", 2)).to_have_text("no")
    expect(cell(page, "svc:model-x", 4)).to_have_text("tokens only")
    # No link and no admin for a service account; it can be deactivated.
    expect(page.locator('tr[data-user="svc:model-x"] [data-action="link"]')).to_have_count(0)
    expect(page.locator('tr[data-user="svc:model-x"] [data-action="grant-admin"]')).to_have_count(0)
    expect(page.locator('tr[data-user="svc:model-x"] [data-action="deactivate"]')).to_be_visible()
    shot(page, "users-05-service-created")

    # Deactivate alice, then reactivate her.
    expect(cell(page, "alice", 3)).to_have_text("yes")
    user_action(page, "alice", "deactivate")
    expect(page.locator("#page-message")).to_have_text("alice: deactivated.")
    expect(cell(page, "alice", 3)).to_have_text("no")
    expect(page.locator('tr[data-user="alice"] [data-action="activate"]')).to_be_visible()
    shot(page, "users-06-alice-deactivated")
    user_action(page, "alice", "activate")
    expect(page.locator("#page-message")).to_have_text("alice: reactivated.")
    expect(cell(page, "alice", 3)).to_have_text("yes")
    shot(page, "users-07-alice-reactivated")

    # Make bob a hub admin, then take it back.
    expect(cell(page, "bob", 2)).to_have_text("no")
    user_action(page, "bob", "grant-admin")
    expect(page.locator("#page-message")).to_have_text("bob: made admin.")
    expect(cell(page, "bob", 2)).to_have_text("yes")
    expect(page.locator('tr[data-user="bob"] [data-action="revoke-admin"]')).to_be_visible()
    shot(page, "users-08-bob-admin")
    user_action(page, "bob", "revoke-admin")
    expect(page.locator("#page-message")).to_have_text("bob: no longer admin.")
    expect(cell(page, "bob", 2)).to_have_text("no")
    shot(page, "users-09-bob-not-admin")

    # The only hub admin cannot remove their own admin rights.
    user_action(page, "admin", "revoke-admin")
    expect(page.locator("#page-error")).to_contain_text("last active hub admin")
    expect(page.locator("#page-message")).to_have_count(0)
    expect(cell(page, "admin", 2)).to_have_text("yes")
    expect(page.locator("#nav-users")).to_be_visible()
    shot(page, "users-10-last-admin-refused")

    # A one-time link for alice (config member, no password yet: an invite link).
    link = issue_link(page, "alice")
    assert link.startswith(f"{hub.url}/hub/annotations/set-password?token=")
    expect(page.locator("#copy-link")).to_be_visible()
    shot(page, "users-11-alice-link")


def test_project_page_roles(hub, page, browser):
    set_up_admin(page, hub, "roles")
    open_from_nav(page, "nav-users", "Users")
    shot(page, "roles-04-users-page")
    expect(cell(page, "bob", 4)).to_have_text("not yet")
    link = issue_link(page, "bob")
    shot(page, "roles-05-bob-link")

    with another_person(browser) as bob:
        accept_link(bob, hub, link, "bob", BOB_PASSWORD, "roles-06-bob")
        expect(bob.locator("#nav-users")).to_have_count(0)
        open_from_nav(bob, "nav-projects", "Projects")
        expect(bob.locator("#projects-table tbody tr")).to_have_count(1)
        expect(bob.locator('tr[data-project="demo"] td.role')).to_have_text("viewer")
        shot(bob, "roles-07-bob-projects")

        with bob.expect_navigation():
            bob.click('tr[data-project="demo"] a')
        assert bob.url == f"{hub.url}/hub/annotations/projects/demo"
        expect(bob.locator("#my-role")).to_have_text("viewer")
        # Read-only: settings as a list, members without buttons, no forms.
        expect(bob.locator("#settings")).to_contain_text("A first project to try things out")
        expect(bob.locator("#save-settings")).to_have_count(0)
        expect(bob.locator("#set-member")).to_have_count(0)
        expect(bob.locator("#member-name")).to_have_count(0)
        expect(bob.locator("[data-remove]")).to_have_count(0)
        expect(bob.locator('tr[data-member="bob"] td.role')).to_have_text("viewer")
        expect(bob.locator('tr[data-member="alice"] td.role')).to_have_text("annotator")
        shot(bob, "roles-08-bob-demo-read-only")

    # The admin, on demo: memberships declared in the config cannot change here.
    open_from_nav(page, "nav-projects", "Projects")
    shot(page, "roles-09-admin-projects")
    with page.expect_navigation():
        page.click('tr[data-project="demo"] a')
    expect(page.locator("#my-role")).to_have_text("admin")
    # Every demo setting is declared in the config: shown, with no form to save.
    expect(page.locator("#save-settings")).to_have_count(0)
    expect(page.locator("#settings-declared")).to_be_visible()
    expect(page.locator("[data-remove]")).to_have_count(0)  # every demo member is config
    shot(page, "roles-10-admin-demo")
    page.fill("#member-name", "alice")
    page.select_option("#member-role", "viewer")
    with page.expect_navigation():
        page.click("#set-member")
    expect(page.locator("#page-error")).to_contain_text("jupyterhub_config.py")
    expect(page.locator("#page-message")).to_have_count(0)
    expect(page.locator('tr[data-member="alice"] td.role')).to_have_text("annotator")
    shot(page, "roles-11-config-membership-read-only")
