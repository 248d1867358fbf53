"""End-to-end in headless Chromium: the first-run pages as a person sees and uses them.

The same flows run over plain HTTP in ``test_e2e_accounts.py`` on SQLite and PostgreSQL;
here they run in a real browser (forms, redirects, cookies, rendering), on SQLite only.
A full-page screenshot of every step goes to ``tests/artifacts/browser/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import require
from tests.hub import REPO

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # checked by the `browser` fixture: a skip locally, a failure in CI
    expect = sync_playwright = None

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    # The database does not change what the browser sees; PostgreSQL is covered over HTTP.
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests may run as root (containers, CI)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = REPO / "tests" / "artifacts" / "browser"
PASSWORD = "correct horse 4 annotations"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser():
    require(sync_playwright is not None, "the playwright Python package is not installed")
    require(CHROMIUM.exists(), f"Chromium is not installed at {CHROMIUM} (apt install chromium)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A page in a fresh browser context: no cookies from any other test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_setup_link(page, hub) -> str:
    (link,) = hub.setup_links()
    answer = page.goto(link)
    assert answer is not None and answer.status == 200
    return link


def submit_password(page, password: str, confirm: str | None = None) -> None:
    page.fill("#password", password)
    page.fill("#confirm", password if confirm is None else confirm)
    with page.expect_navigation():
        page.click("#set-password-submit")


def test_first_run_in_a_real_browser(hub, page):
    open_setup_link(page, hub)
    expect(page.locator("h1")).to_have_text("Set up the admin account")
    expect(page.locator("#account-name")).to_have_text("admin")
    shot(page, "first-run-1-set-password")

    submit_password(page, PASSWORD)
    expect(page.locator("h1")).to_have_text("Password set")
    expect(page.locator("#annotations-password-set")).to_contain_text("The password of admin")
    shot(page, "first-run-2-password-set")

    with page.expect_navigation():
        page.click("#login-link")
    assert page.url.startswith(f"{hub.url}/hub/login")
    # The "Log in" link carries the account name into the login form.
    expect(page.locator("#username_input")).to_have_value("admin")
    page.fill("#username_input", "admin")
    page.fill("#password_input", PASSWORD)
    shot(page, "first-run-3-login")

    page.click("#login_submit")
    # The demo config sets redirect_to_server = False: login lands on the hub home page.
    page.wait_for_url(re.compile(re.escape(hub.url) + r"/hub/home"), timeout=30_000)
    expect(page.locator("#login_widget")).to_contain_text("admin")
    expect(page.locator("#logout")).to_be_visible()
    shot(page, "first-run-4-home")

    # The navigation bar leads to our change-password page, which works in the browser.
    with page.expect_navigation():
        page.click("#nav-change-password")
    page.fill("#current", PASSWORD)
    page.fill("#password", "a second passphrase 42")
    page.fill("#confirm", "a second passphrase 42")
    page.click("#change-password-submit")
    expect(page.locator("#form-done")).to_contain_text("has been changed")
    shot(page, "first-run-5-password-changed")


def test_weak_password_shows_message_in_browser(hub, page):
    open_setup_link(page, hub)
    submit_password(page, "short")
    expect(page.locator("#form-error")).to_contain_text("too short")
    expect(page.locator("#account-name")).to_have_text("admin")
    shot(page, "weak-password-1-too-short")

    # The page that shows the error still carries a working form: the link is not used up.
    submit_password(page, PASSWORD)
    expect(page.locator("h1")).to_have_text("Password set")
    shot(page, "weak-password-2-password-set")


def test_used_link_shows_clear_message(hub, page, browser):
    link = open_setup_link(page, hub)
    submit_password(page, PASSWORD)
    expect(page.locator("h1")).to_have_text("Password set")

    # Opened again, in this browser and in another one without its cookies.
    answer = page.goto(link)
    assert answer is not None and answer.status == 400
    expect(page.locator("#link-error")).to_contain_text("already been used")
    expect(page.locator("#password")).to_have_count(0)
    shot(page, "used-link-1-already-used")

    other = browser.new_context()
    try:
        again = other.new_page()
        answer = again.goto(link, timeout=TIMEOUT_MS)
        assert answer is not None and answer.status == 400
        expect(again.locator("#link-error")).to_contain_text("already been used")
    finally:
        other.close()
