"""End-to-end in headless Chromium: a project's work queue on its project page.

A hub admin creates a project, sets its work-queue settings (annotators per item, how
long a claim lasts, blind) in the page's settings form, and follows the annotators'
progress there, while two annotators claim and annotate items through the API with
their sessions, as their notebooks would. A value the browser would refuse, posted
anyway, gets a message on the page and a 400, and changes nothing. An annotator sees the
settings read-only, and the same progress.

SQLite only, like ``test_browser.py`` whose fixtures and helpers these tests reuse; every
step is saved as ``tests/artifacts/browser/work-*.png``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests import test_browser as base
from tests.hub import Browser
from tests.test_browser import PASSWORD, expect, shot
from tests.test_browser_admin import another_person, log_in, open_from_nav, set_up_admin
from tests.test_e2e_projects import ok

browser = base.browser
page = base.page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

SLUG = "birds"
ITEMS = ["a", "b", "c", "d"]
ANNOTATORS = {"carol": "carol labels birds all day 1", "dave": "dave labels birds at night 2"}


def person(hub, admin: Browser, name: str, password: str) -> Browser:
    """An account made by the admin, its password set with its invite link, logged in;
    then an annotator of the project."""
    made = ok(admin.api("POST", "users", {"name": name}), 201)
    assert Browser(hub).set_password(made["link"], password).status_code == 200
    session = Browser(hub)
    assert session.login(name, password).status_code == 200
    ok(admin.api("PUT", f"projects/{SLUG}/members/{name}", {"role": "annotator"}), 201)
    return session


def claim(session: Browser) -> str:
    """The next item of the queue for this person, claimed."""
    answer = ok(session.api("POST", f"projects/{SLUG}/queue/next"))
    assert set(answer) == {"item", "data", "lease_expires_at"}
    assert answer["data"] == {"text": f"bird {answer['item']}"}
    return answer["item"]


def annotate(session: Browser, name: str) -> str:
    """Claim the next item and write this person's annotation of it."""
    item = claim(session)
    body = {"data": {"label": "sparrow"}}
    ok(session.api("PUT", f"projects/{SLUG}/items/{item}/annotations/{name}", body), 201)
    return item


def save(page):
    """Click "Save settings"; the response of the form post."""
    with page.expect_navigation() as navigation:
        page.click("#save-settings")
    return navigation.value


def expect_progress(page, complete: int, by_annotations: dict, annotators: dict) -> None:
    """The progress section: ``annotators`` maps a name to (done, claimed)."""
    expect(page.locator("#progress-complete")).to_have_text(str(complete))
    expect(page.locator("#progress-items")).to_have_text(str(len(ITEMS)))
    rows = page.locator("#progress-items-table tbody tr")
    expect(rows).to_have_count(len(by_annotations))
    for count, items in by_annotations.items():
        row = page.locator(f'#progress-items-table tr[data-annotations="{count}"]')
        expect(row.locator("td.items")).to_have_text(str(items))
    expect(page.locator("#progress-annotators tbody tr")).to_have_count(len(annotators))
    for name, (done, claimed) in annotators.items():
        row = page.locator(f'#progress-annotators tr[data-annotator="{name}"]')
        expect(row.locator("td.done")).to_have_text(str(done))
        expect(row.locator("td.claimed")).to_have_text(str(claimed))


def test_admin_sets_up_the_work_queue_and_follows_progress(hub, page, browser):
    set_up_admin(page, hub, "work")
    project_url = f"{hub.url}/hub/annotations/projects/{SLUG}"

    # The project, made in the browser; it starts with the defaults and no items.
    open_from_nav(page, "nav-projects", "Projects")
    page.fill("#project-slug", SLUG)
    page.fill("#project-description", "Which bird is it?")
    with page.expect_navigation():
        page.click("#create-project")
    assert page.url == project_url
    expect(page.locator("#my-role")).to_have_text("admin")
    expect(page.locator("#overlap")).to_have_value("1")
    expect(page.locator("#lease_minutes")).to_have_value("30")
    expect(page.locator("#blind")).not_to_be_checked()
    expect(page.locator("#progress")).to_contain_text("No items are registered")
    expect(page.locator("#progress-items-table")).to_have_count(0)
    shot(page, "work-04-project-created")

    # Two annotators with passwords, and four items, through the API.
    admin = Browser(hub)
    assert admin.login("admin", PASSWORD).status_code == 200
    people = {name: person(hub, admin, name, pw) for name, pw in ANNOTATORS.items()}
    items = [{"item": i, "data": {"text": f"bird {i}"}} for i in ITEMS]
    registered = ok(admin.api("POST", f"projects/{SLUG}/items", {"items": items}), 201)
    assert registered == {"created": 4, "unchanged": 0}

    page.reload()
    expect_progress(page, 0, {0: 4}, {"admin": (0, 0), "carol": (0, 0), "dave": (0, 0)})
    expect(page.locator("#progress")).to_contain_text("0 of 4 items have their 1 annotation.")
    shot(page, "work-05-items-registered")

    # The work-queue settings, in the form.
    page.fill("#overlap", "2")
    page.fill("#lease_minutes", "15")
    page.check("#blind")
    shot(page, "work-06-settings-filled")
    saved = save(page)
    assert saved.status == 200
    expect(page.locator("#page-message")).to_have_text("Settings saved.")
    expect(page.locator("#page-error")).to_have_count(0)
    shot(page, "work-07-settings-saved")

    # After a reload (no message: a plain GET) the page shows what was stored.
    answer = page.goto(project_url)
    assert answer is not None and answer.status == 200
    expect(page.locator("#page-message")).to_have_count(0)
    expect(page.locator("#overlap")).to_have_value("2")
    expect(page.locator("#lease_minutes")).to_have_value("15")
    expect(page.locator("#blind")).to_be_checked()
    expect(page.locator("#description")).to_have_value("Which bird is it?")
    expect(page.locator("#api_access")).to_be_checked()
    stored = ok(admin.api("GET", f"projects/{SLUG}"))
    assert stored == {
        "slug": SLUG,
        "description": "Which bird is it?",
        "share_annotations": False,
        "api_access": True,
        "overlap": 2,
        "lease_minutes": 15,
        "blind": True,
        "role": "admin",
    }
    shot(page, "work-08-settings-after-reload")

    # The annotators work, with their sessions. The queue hands out the items with the
    # fewest annotations, then the fewest claims, then the first registered.
    carol, dave = people["carol"], people["dave"]
    assert [annotate(carol, "carol") for _ in range(3)] == ["a", "b", "c"]
    assert [annotate(dave, "dave") for _ in range(2)] == ["d", "a"]
    before = datetime.now(UTC)
    held = ok(dave.api("POST", f"projects/{SLUG}/queue/next"))  # claimed, not annotated
    assert held["item"] == "b"
    # The lease saved in the form: 15 minutes.
    lease = datetime.fromisoformat(held["lease_expires_at"]) - before
    assert timedelta(minutes=14) < lease <= timedelta(minutes=15, seconds=5), lease
    # Asked again, dave gets his claim back, not another item.
    assert claim(dave) == "b"

    page.reload()
    # a: 2 annotations (complete); b, c, d: 1 each (b's second slot is dave's claim).
    annotators = {"admin": (0, 0), "carol": (3, 0), "dave": (2, 1)}
    expect_progress(page, 1, {1: 3, 2: 1}, annotators)
    expect(page.locator("#progress")).to_contain_text("1 of 4 items have their 2 annotations.")
    progress = ok(admin.api("GET", f"projects/{SLUG}/progress"))
    assert (progress["items"], progress["complete"], progress["overlap"]) == (4, 1, 2)
    assert progress["items_by_annotations"] == {"1": 3, "2": 1}
    assert {a["name"]: (a["done"], a["claimed"]) for a in progress["annotators"]} == annotators
    shot(page, "work-09-progress")

    # Overlap 0, past the browser's own check (the field's min="1"): a message on the
    # page and a 400, and nothing saved, not even the description typed with it.
    page.evaluate("document.getElementById('overlap').removeAttribute('min')")
    page.fill("#overlap", "0")
    page.fill("#description", "Changed along with a bad value")
    refused = save(page)
    assert refused.status == 400
    expect(page.locator("#page-error")).to_contain_text("'overlap' must be from 1 to 100")
    expect(page.locator("#page-message")).to_have_count(0)
    expect(page.locator("#overlap")).to_have_value("2")
    expect(page.locator("#description")).to_have_value("Which bird is it?")
    shot(page, "work-10-overlap-0-refused")

    # The same for a claim of more than a week, posted with the form's checks off.
    page.evaluate("document.querySelector('#save-settings').form.noValidate = true")
    page.fill("#lease_minutes", "10081")
    refused = save(page)
    assert refused.status == 400
    expect(page.locator("#page-error")).to_contain_text("'lease_minutes' must be from 1 to 10080")
    expect(page.locator("#lease_minutes")).to_have_value("15")
    shot(page, "work-11-lease-too-long-refused")

    # A number that is no whole number, posted by a script (form.submit skips checks).
    page.evaluate("document.getElementById('overlap').type = 'text'")
    page.fill("#overlap", "two")
    with page.expect_navigation() as navigation:
        page.evaluate("document.querySelector('#save-settings').form.submit()")
    assert navigation.value.status == 400
    expect(page.locator("#page-error")).to_contain_text("'overlap' must be a whole number")
    shot(page, "work-12-overlap-not-a-number-refused")
    # Digits to str.isdigit() that int() refuses, or too many for it: a 400, not a 500.
    for text in ("²", "9" * 5000):
        page.evaluate("document.getElementById('overlap').type = 'text'")
        page.fill("#overlap", text)
        with page.expect_navigation() as navigation:
            page.evaluate("document.querySelector('#save-settings').form.submit()")
        assert navigation.value.status == 400
        expect(page.locator("#page-error")).to_contain_text("'overlap' must be a whole number")

    stored_after = ok(admin.api("GET", f"projects/{SLUG}"))
    assert stored_after == stored
    # The refused posts changed nothing the page shows either.
    page.goto(project_url)
    expect_progress(page, 1, {1: 3, 2: 1}, annotators)
    expect(page.locator("#overlap")).to_have_value("2")

    # Carol, in a browser of her own: the settings as a list, the same progress.
    with another_person(browser) as them:
        log_in(them, hub, "carol", ANNOTATORS["carol"], "work-13-carol-home")
        open_from_nav(them, "nav-projects", "Projects")
        expect(them.locator(f'tr[data-project="{SLUG}"] td.role')).to_have_text("annotator")
        with them.expect_navigation():
            them.click(f'tr[data-project="{SLUG}"] a')
        assert them.url == project_url
        expect(them.locator("#my-role")).to_have_text("annotator")
        settings = them.locator("#settings")
        expect(settings).to_contain_text("Annotators per item: 2")
        expect(settings).to_contain_text("A claim lasts: 15 minutes")
        expect(settings).to_contain_text("Blind: yes")
        expect(settings).to_contain_text("Description: Which bird is it?")
        for form_only in ("#save-settings", "#overlap", "#lease_minutes", "#blind"):
            expect(them.locator(form_only)).to_have_count(0)
        expect(them.locator("#settings-declared")).to_have_count(0)
        expect(them.locator("#set-member")).to_have_count(0)
        expect_progress(them, 1, {1: 3, 2: 1}, annotators)
        shot(them, "work-14-carol-project-page")

        # Her session posts no settings: the form post is the project admins'.
        refused = them.evaluate(
            """async () => {
                const body = new URLSearchParams({
                    _xsrf: window.jhdata.xsrf_token,
                    action: "settings",
                    overlap: "1",
                });
                const answer = await fetch(location.href, {method: "POST", body});
                return {status: answer.status, text: await answer.text()};
            }"""
        )
        # The status only: JupyterHub 5's error page does not show our message.
        assert refused["status"] == 403
    assert ok(admin.api("GET", f"projects/{SLUG}"))["overlap"] == 2
