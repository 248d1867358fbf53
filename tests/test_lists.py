"""Every list of the API comes a page at a time, on SQLite and PostgreSQL: the pages
cover the list once, in order, and their cursors are good only for their own list."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from jupyterhub_annotations.authenticator.core import Core, Settings
from jupyterhub_annotations.authenticator.errors import InvalidInput
from jupyterhub_annotations.authenticator.permissions import Principal

# Names whose order differs between byte order and a natural-language collation.
NAMES = ["a-b", "a.c", "ab", "abc", "b", "b1", "b-1", "zz", "0x", "svc:a-bot"]
SLUGS = ["a-b", "ab", "abc", "b", "b-1", "b1", "zz", "0x"]


@pytest.fixture
def core(db_url: str):
    settings = Settings(
        db_url=db_url,
        link_key=b"k" * 32,
        link_lifetime=timedelta(hours=1),
        min_password_length=8,
        lockout_max_failures=5,
        lockout_max_address_failures=50,
        lockout_window=timedelta(minutes=15),
        admin_users=frozenset(),
        token_max_lifetime_days=90,
        token_max_live_per_user=50,
        access_cache_seconds=60.0,
        password_hash_threads=1,
        annotation_max_bytes=1000,
        annotation_import_max_records=100,
        annotation_import_max_bytes=1 << 20,
        declared_projects={},
        trusted_proxy_hops=1,
    )
    core = Core(settings, logging.getLogger("test"))
    core.store.migrate()
    for name in NAMES:
        core.accounts.create(name)
    for slug in SLUGS:
        core.projects.create(slug, {}, creator="zz")
        for name in NAMES[:5]:
            core.projects.set_member(slug, name, "annotator", "admin")
    for name in NAMES[:4]:
        for n in range(3):
            core.tokens.create(Principal(name=name, admin=False), f"t{n}")
    yield core
    core.close()


def walk(fetch: Callable[[str | None, int], tuple[list, str | None]], limit: int) -> list:
    items, cursor, pages = [], None, 0
    while True:
        page, cursor = fetch(cursor, limit)
        assert len(page) <= limit
        items += page
        pages += 1
        if cursor is None:
            return items
        assert pages < 100, "the cursor does not move on"


@pytest.mark.parametrize("limit", [1, 2, 3, 1000])
def test_the_pages_of_every_list_cover_it_once_in_order(core, limit):
    lists = {
        "users": (core.accounts.listing, lambda a: a.name),
        "members": (lambda c, n: core.projects.members("ab", c, n), lambda m: m.name),
        "tokens": (lambda c, n: core.tokens.listing(None, c, n), lambda t: t.id),
        "own tokens": (lambda c, n: core.tokens.listing("abc", c, n), lambda t: t.id),
        "projects": (
            lambda c, n: core.projects.visible_page(Principal(name="ab", admin=False), c, n),
            lambda p: p.slug,
        ),
    }
    for name, (fetch, key) in lists.items():
        whole = [key(item) for item in fetch(None, 1000)[0]]
        assert whole, name
        assert [key(item) for item in walk(fetch, limit)] == whole, name
    everyone, after = core.accounts.listing()  # no limit: the whole list (the Users page)
    assert len(everyone) == len(NAMES) and after is None


def test_a_cursor_is_good_only_for_its_own_list_and_limits_are_bounded(core):
    _, users_next = core.accounts.listing(None, 1)
    _, tokens_next = core.tokens.listing(None, None, 1)
    with pytest.raises(InvalidInput, match="not one this API gave out"):
        core.tokens.listing(None, users_next, 1)  # (name) where (name, id) is expected
    with pytest.raises(InvalidInput, match="not one this API gave out"):
        core.accounts.listing(tokens_next, 1)
    for limit in (0, -1, 1001):
        with pytest.raises(InvalidInput, match="'limit' must be 1 to 1000"):
            core.accounts.listing(None, limit)
        with pytest.raises(InvalidInput, match="'limit' must be 1 to 1000"):
            core.projects.visible_page(Principal(name="ab", admin=False), None, limit)
