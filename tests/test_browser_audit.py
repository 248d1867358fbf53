"""End-to-end in headless Chromium: a hub admin reads the audit log page.

The admin sets up their account, someone mistypes a password at another computer, the
admin creates a user on the users page, then opens "Audit log" from the nav bar, sees
those events (who, what, on whom, from where), filters by action and pages through with
"Older events". Screenshots go to ``tests/artifacts/browser/``. SQLite only, like the
other browser tests (the API is covered on both backends in ``test_e2e_audit.py``).
"""

from __future__ import annotations

import pytest

from tests import test_browser as base
from tests.test_browser import expect, shot
from tests.test_browser_admin import another_person, open_from_nav, set_up_admin

browser = base.browser
page = base.page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

ROWS = "#audit-table tbody tr[data-action]"


def actions(page) -> list[str]:
    return page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.action)")


def row(page, action: str):
    return page.locator(f'#audit-table tbody tr[data-action="{action}"]')


def test_admin_reads_and_filters_the_audit_log(hub, page, browser):
    set_up_admin(page, hub, "audit")  # first-run link, password, login

    # Someone else gets the admin's password wrong.
    with another_person(browser) as other:
        other.goto(f"{hub.url}/hub/login")
        other.fill("#username_input", "admin")
        other.fill("#password_input", "not the admin password 1")
        with other.expect_navigation():
            other.click("#login_submit")
        expect(other.locator("body")).to_contain_text("Invalid username or password")

    # A new user, from the users page: an account and an invitation link.
    open_from_nav(page, "nav-users", "Users")
    page.fill("#create-name", "erin")
    with page.expect_navigation():
        page.click("#create-user")
    expect(page.locator("#page-message")).to_contain_text("Created erin")
    link = page.locator("#new-link").input_value()

    open_from_nav(page, "nav-audit", "Audit log")
    assert page.url == f"{hub.url}/hub/annotations/audit"
    # Newest first: everything since the first run.
    assert actions(page) == [
        "link.issue",
        "user.create",
        "login.failure",
        "login.success",
        "link.use",
        "link.issue",
        "user.create",
    ]
    expect(page.locator("#audit-older")).to_have_count(0)
    cells = row(page, "login.failure").locator("td")
    expect(cells.nth(1)).to_have_text("admin")  # who
    expect(cells.nth(3)).to_have_text("admin")  # on whom
    expect(cells.nth(4)).to_have_text("127.0.0.1")  # from where
    made = row(page, "user.create").first.locator("td")
    expect(made.nth(1)).to_have_text("admin")
    expect(made.nth(3)).to_have_text("erin")
    expect(made.nth(5)).to_contain_text("kind=user")
    first_run = row(page, "user.create").last.locator("td")
    expect(first_run.nth(1)).to_have_text("—")  # the hub itself, at its first start
    expect(first_run.nth(4)).to_have_text("—")
    expect(row(page, "link.use").locator("td").nth(5)).to_have_text("purpose=setup")
    # Never a secret: neither the link handed over nor the password typed.
    body = page.content()
    assert link not in body and link.split("token=")[1] not in body
    assert "not the admin password 1" not in body
    shot(page, "audit-05-log")

    # Filter by action: only the failed login.
    page.select_option("#audit-filters select[name=action]", "login.failure")
    with page.expect_navigation():
        page.click("#audit-filters button[type=submit]")
    assert "action=login.failure" in page.url
    assert actions(page) == ["login.failure"]
    expect(page.locator("#audit-filters select[name=action]")).to_have_value("login.failure")
    shot(page, "audit-06-filtered-by-action")

    # Filter by who and what: the admin's user changes; nothing matches a stranger.
    page.select_option("#audit-filters select[name=action]", "user.create")
    page.fill("#audit-filters input[name=actor]", "admin")
    with page.expect_navigation():
        page.click("#audit-filters button[type=submit]")
    assert actions(page) == ["user.create"]
    expect(row(page, "user.create").locator("td").nth(3)).to_have_text("erin")
    page.fill("#audit-filters input[name=actor]", "nobody")
    with page.expect_navigation():
        page.click("#audit-filters button[type=submit]")
    expect(page.locator(ROWS)).to_have_count(0)
    expect(page.locator("#audit-table tbody")).to_contain_text("No events match.")
    shot(page, "audit-07-no-match")

    # Two at a time, with "Older events", as far as it goes.
    page.goto(f"{hub.url}/hub/annotations/audit?limit=2")
    seen = actions(page)
    assert len(seen) == 2
    shot(page, "audit-08-first-page")
    while page.locator("#audit-older").count():
        with page.expect_navigation():
            page.click("#audit-older")
        seen += actions(page)
        assert len(seen) < 20
    assert seen[-1] == "user.create" and len(seen) == 7
