"""The annotation core (SPEC section 7) on SQLite and PostgreSQL: item names, ownership,
versions and their conditions, visibility, cursor pages, the all-or-nothing import, size
caps, deleted accounts, and same-owner races. Fast: no hub, the core against a real
database (the ``store`` fixture), plus property tests of the pure parts."""

from __future__ import annotations

import base64
import json
import math
import re
import string
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jupyterhub_annotations.authenticator import annotations as core
from jupyterhub_annotations.authenticator import cursors
from jupyterhub_annotations.authenticator.accounts import Accounts
from jupyterhub_annotations.authenticator.annotations import (
    Annotations,
    check_item,
    check_own,
    sees_others,
)
from jupyterhub_annotations.authenticator.cursors import PAGE_MAX
from jupyterhub_annotations.authenticator.errors import (
    Conflict,
    Forbidden,
    ImportConflict,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    TooLarge,
)
from jupyterhub_annotations.authenticator.links import LinkSigner
from jupyterhub_annotations.authenticator.lockout import LockoutPolicy
from jupyterhub_annotations.authenticator.models import Account, Membership, Project
from jupyterhub_annotations.authenticator.projects import Projects
from jupyterhub_annotations.authenticator.store import Store

SLUG = "demo"
ITEM_ALPHABET = string.ascii_letters + string.digits + "._:-"
# No example database on disk: the repository does not ignore .hypothesis/.
PROPERTY = settings(database=None, max_examples=300)


# -- fixtures and helpers ---------------------------------------------------------------


def add_project(
    store: Store,
    slug: str = SLUG,
    share: bool = False,
    members: dict[str, str] | None = None,
    hidden: tuple[str, ...] = (),
) -> None:
    """A project with ``members`` (name: role; accounts made as needed); the ``hidden``
    members have switched ``show_others`` off."""
    with store.transaction() as s:
        project = Project(slug=slug, share_annotations=share)
        s.add(project)
        s.flush()
        for name, role in (members or {}).items():
            account = s.query(Account).filter_by(name=name).one_or_none()
            if account is None:
                account = Account(name=name, kind="service" if name.startswith("svc:") else "user")
                s.add(account)
                s.flush()
            s.add(
                Membership(
                    project_id=project.id,
                    account_id=account.id,
                    role=role,
                    show_others=name not in hidden,
                )
            )


@pytest.fixture
def anno(store: Store) -> Annotations:
    return Annotations(store)


@pytest.fixture
def accounts(store: Store) -> Accounts:
    return Accounts(
        store,
        LinkSigner(b"s" * 32, timedelta(hours=24)),
        LockoutPolicy(max_failures=5, max_address_failures=50, window=timedelta(minutes=15)),
    )


TEAM = {"alice": "admin", "bob": "annotator", "carol": "annotator", "vera": "viewer"}


@pytest.fixture
def team(store: Store) -> None:
    """``demo``, not sharing annotations: admin alice, annotators bob and carol, viewer vera."""
    add_project(store, members=TEAM)


def keys(views) -> list[tuple[str, str]]:
    return [(v.item, v.owner) for v in views]


def everything(anno: Annotations, slug: str = SLUG) -> list[tuple[str, str, int]]:
    """Every live annotation of ``slug`` as a hub admin sees it: (item, owner, version)."""
    return [(v.item, v.owner, v.version) for page in anno.pages(slug, "x", "admin") for v in page]


# -- item names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item", ["a", "0", "x" * 256, "img:0001.png", "A-Z_a-z.0-9:", "...", "-", "_:_"]
)
def test_item_names_accepted(item):
    check_item(item)


@pytest.mark.parametrize(
    "item",
    ["", "x" * 257, "a b", "a/b", "a\\b", "é", "a\n", "\n", "a?b", "a#b", "%2F", "\uff41", None, 5],
)
def test_item_names_refused(item):
    with pytest.raises(InvalidInput, match="1 to 256 letters"):
        check_item(item)


def test_bad_item_refused_everywhere_and_nothing_written(anno, team):
    for call in (
        lambda: anno.put(SLUG, "a b", "bob", {}, writer="bob"),
        lambda: anno.get(SLUG, "a/b", "bob", "bob", "annotator"),
        lambda: anno.page(SLUG, "bob", "annotator", item="a b"),
        lambda: anno.delete(SLUG, "", "bob", "bob", "annotator"),
    ):
        with pytest.raises(InvalidInput):
            call()
    assert everything(anno) == []


@PROPERTY
@given(
    st.one_of(
        st.text(),
        st.text(alphabet=ITEM_ALPHABET, max_size=300),
        st.text(alphabet=ITEM_ALPHABET + " /é\n\x00", min_size=1, max_size=260),
        st.from_regex(r"[A-Za-z0-9._:-]{1,256}", fullmatch=True),
    )
)
def test_check_item_accepts_exactly_the_item_pattern(item):
    # The oracle is written independently of the pattern the code uses.
    valid = 1 <= len(item) <= 256 and all(c in ITEM_ALPHABET for c in item)
    try:
        check_item(item)
    except InvalidInput:
        assert not valid
    else:
        assert valid


# -- ownership ----------------------------------------------------------------------------


def test_check_own():
    check_own("bob", "bob")
    with pytest.raises(Forbidden, match="only write your own"):
        check_own("bob", "carol")
    with pytest.raises(Forbidden):
        check_own("bob", "svc:bob")


def test_put_as_another_owner_refused(anno, team):
    with pytest.raises(Forbidden):
        anno.put(SLUG, "i1", "carol", {"x": 1}, writer="bob")
    # Not even a project admin writes someone else's annotation with a PUT.
    with pytest.raises(Forbidden):
        anno.put(SLUG, "i1", "carol", {"x": 1}, writer="alice")
    assert everything(anno) == []


def test_two_owners_on_one_item_never_collide(anno, team):
    anno.put(SLUG, "i1", "bob", {"by": "bob"}, writer="bob")
    anno.put(SLUG, "i1", "carol", {"by": "carol"}, writer="carol")
    anno.put(SLUG, "i1", "bob", {"by": "bob", "n": 2}, writer="bob")
    views = anno.page(SLUG, "vera", "viewer", item="i1").views
    assert [(v.owner, v.version, v.as_json()["data"]) for v in views] == [
        ("bob", 2, {"by": "bob", "n": 2}),
        ("carol", 1, {"by": "carol"}),
    ]


def test_delete_others_only_as_project_admin(anno, team):
    anno.put(SLUG, "i1", "carol", {}, writer="carol")
    with pytest.raises(Forbidden):
        anno.delete(SLUG, "i1", "carol", deleter="bob", role="annotator")
    assert anno.delete(SLUG, "i1", "carol", deleter="alice", role="admin") == 2
    assert everything(anno) == []


# -- versions and conditions ---------------------------------------------------------------


def test_versions_grow_by_exactly_one(anno, team):
    view, created = anno.put(SLUG, "i1", "bob", {"n": 1}, writer="bob")
    assert (view.version, created, view.etag) == (1, True, '"1"')
    view, created = anno.put(SLUG, "i1", "bob", {"n": 2}, writer="bob")
    assert (view.version, created) == (2, False)
    view, created = anno.put(SLUG, "i1", "bob", {"n": 3}, writer="bob", if_match=2)
    assert (view.version, created) == (3, False)
    view, created = anno.put(SLUG, "i1", "bob", {"n": 4}, writer="bob", if_match="*")
    assert (view.version, created) == (4, False)
    view, created = anno.put(SLUG, "i2", "bob", {"n": 1}, writer="bob", create_only=True)
    assert (view.version, created) == (1, True)
    got = anno.get(SLUG, "i1", "bob", "bob", "annotator")
    assert (got.version, json.loads(got.data)) == (4, {"n": 4})
    assert got.created_at <= got.updated_at


def test_stale_if_match_is_412_with_the_current_annotation(anno, team):
    for n in range(3):
        anno.put(SLUG, "i1", "bob", {"n": n}, writer="bob")
    with pytest.raises(PreconditionFailed) as e:
        anno.put(SLUG, "i1", "bob", {"n": "lost"}, writer="bob", if_match=2)
    assert e.value.status == 412
    current = e.value.details["current"]
    assert (current["version"], current["data"], current["owner"]) == (3, {"n": 2}, "bob")
    assert current["item"] == "i1" and current["project"] == SLUG
    assert "version 3" in e.value.message and '"3"' in e.value.message
    assert anno.get(SLUG, "i1", "bob", "bob", "annotator").version == 3  # nothing written


def test_create_only_on_an_existing_annotation_is_412(anno, team):
    anno.put(SLUG, "i1", "bob", {"n": 1}, writer="bob")
    with pytest.raises(PreconditionFailed) as e:
        anno.put(SLUG, "i1", "bob", {"n": 2}, writer="bob", create_only=True)
    assert e.value.details["current"]["version"] == 1
    assert e.value.details["current"]["data"] == {"n": 1}


@pytest.mark.parametrize("if_match", [1, "*"])
def test_if_match_on_a_missing_annotation_is_412(anno, team, if_match):
    with pytest.raises(PreconditionFailed) as e:
        anno.put(SLUG, "i1", "bob", {}, writer="bob", if_match=if_match)
    assert e.value.details == {"current": None}
    assert everything(anno) == []


def test_delete_leaves_a_tombstone_and_numbering_continues(anno, team):
    first, _ = anno.put(SLUG, "i1", "bob", {"n": 1}, writer="bob")
    anno.put(SLUG, "i1", "bob", {"n": 2}, writer="bob")
    assert anno.delete(SLUG, "i1", "bob", deleter="bob", role="annotator") == 3
    with pytest.raises(NotFound):
        anno.get(SLUG, "i1", "bob", "bob", "annotator")
    assert anno.page(SLUG, "bob", "annotator").views == []
    # A stale If-Match, and even the tombstone's own version, match nothing live.
    for stale in (2, 3, "*"):
        with pytest.raises(PreconditionFailed) as e:
            anno.put(SLUG, "i1", "bob", {"n": "x"}, writer="bob", if_match=stale)
        assert e.value.details == {"current": None}
    with pytest.raises(NotFound):  # deleting twice
        anno.delete(SLUG, "i1", "bob", deleter="bob", role="annotator")
    view, created = anno.put(SLUG, "i1", "bob", {"n": 4}, writer="bob")
    assert (view.version, created) == (4, True)
    assert view.created_at > first.created_at  # a new life, a new creation time
    anno.delete(SLUG, "i1", "bob", deleter="bob", role="annotator")  # 5
    view, created = anno.put(SLUG, "i1", "bob", {"n": 6}, writer="bob", create_only=True)
    assert (view.version, created) == (6, True)


def test_conditional_delete(anno, team):
    anno.put(SLUG, "i1", "bob", {}, writer="bob")
    anno.put(SLUG, "i1", "bob", {}, writer="bob")
    with pytest.raises(PreconditionFailed) as e:
        anno.delete(SLUG, "i1", "bob", deleter="bob", role="annotator", if_match=1)
    assert e.value.details["current"]["version"] == 2
    assert anno.delete(SLUG, "i1", "bob", deleter="bob", role="annotator", if_match=2) == 3


def test_missing_annotation_and_project(anno, team):
    with pytest.raises(NotFound):
        anno.get(SLUG, "i1", "bob", "bob", "annotator")
    with pytest.raises(NotFound):
        anno.delete(SLUG, "i1", "bob", deleter="bob", role="annotator")
    with pytest.raises(NotFound):
        anno.put("nope", "i1", "bob", {}, writer="bob")
    assert anno.page("nope", "bob", "admin").views == []


# -- visibility ---------------------------------------------------------------------------

VISIBILITY = [
    # role, share_annotations, show_others, sees others
    (role, share, show, role in ("viewer", "admin") or (role == "annotator" and share and show))
    for role in (None, "viewer", "annotator", "admin")
    for share in (False, True)
    for show in (False, True)
]


@pytest.mark.parametrize(("role", "share", "show", "expected"), VISIBILITY)
def test_sees_others_table(role, share, show, expected):
    assert sees_others(role, share, show) is expected


def test_sees_others_spelled_out():
    """The rows of the table that matter most, written by hand."""
    assert sees_others("viewer", False, False)
    assert sees_others("admin", False, False)
    assert not sees_others("annotator", False, True)
    assert sees_others("annotator", True, True)
    assert not sees_others("annotator", True, False)
    assert not sees_others(None, True, True)
    assert not sees_others("owner", True, True)  # no such role: fail closed


@pytest.mark.parametrize("share", [False, True])
def test_reads_others_from_the_database(anno, store, share):
    add_project(
        store,
        share=share,
        members={"ann": "annotator", "hid": "annotator", "vic": "viewer", "ada": "admin"},
        hidden=("hid", "vic", "ada"),  # show_others off narrows annotators only
    )
    add_project(store, "other", share=True, members={"out": "annotator"})
    assert anno.reads_others(SLUG, "ann", "annotator") is share
    assert anno.reads_others(SLUG, "hid", "annotator") is False
    assert anno.reads_others(SLUG, "vic", "viewer") is True
    assert anno.reads_others(SLUG, "ada", "admin") is True
    assert anno.reads_others(SLUG, "root", "admin") is True  # a hub admin, not a member
    assert anno.reads_others(SLUG, "out", None) is False  # a member elsewhere only
    assert anno.reads_others(SLUG, "nobody", None) is False
    assert anno.reads_others("missing", "ann", "annotator") is False


def fill_team(anno: Annotations) -> None:
    for owner in ("alice", "bob", "carol"):
        for item in ("i1", "i2"):
            anno.put(SLUG, item, owner, {"by": owner}, writer=owner)


def test_annotator_without_sharing_sees_only_own(anno, team):
    fill_team(anno)
    assert keys(anno.page(SLUG, "bob", "annotator").views) == [("i1", "bob"), ("i2", "bob")]
    assert keys(anno.page(SLUG, "bob", "annotator", item="i1").views) == [("i1", "bob")]
    for owner in ("carol", "alice"):
        page = anno.page(SLUG, "bob", "annotator", owner=owner)
        assert (page.views, page.next) == ([], None)
        with pytest.raises(NotFound):  # no leak: the same answer as a missing one
            anno.get(SLUG, "i1", owner, "bob", "annotator")
    assert anno.page(SLUG, "bob", "annotator", owner="bob").views != []


@pytest.mark.parametrize(
    ("reader", "role"), [("vera", "viewer"), ("alice", "admin"), ("root", "admin")]
)
def test_viewers_and_admins_see_everyone(anno, team, reader, role):
    fill_team(anno)
    assert len(anno.page(SLUG, reader, role).views) == 6
    assert keys(anno.page(SLUG, reader, role, owner="carol").views) == [
        ("i1", "carol"),
        ("i2", "carol"),
    ]
    assert anno.get(SLUG, "i2", "bob", reader, role).owner == "bob"


def test_sharing_and_show_others(anno, store):
    add_project(
        store, share=True, members={"alice": "admin", "bob": "annotator", "carol": "annotator"}
    )
    fill_team(anno)
    assert len(anno.page(SLUG, "bob", "annotator").views) == 6
    assert anno.get(SLUG, "i1", "carol", "bob", "annotator").owner == "carol"
    Projects(store, {}).set_show_others(SLUG, "bob", False, caller="bob")
    assert keys(anno.page(SLUG, "bob", "annotator").views) == [("i1", "bob"), ("i2", "bob")]
    with pytest.raises(NotFound):
        anno.get(SLUG, "i1", "carol", "bob", "annotator")
    assert len(anno.page(SLUG, "carol", "annotator").views) == 6  # only bob's own choice


# -- pages and cursors --------------------------------------------------------------------

OWNERS = ("alice", "bob", "carol")
ITEMS = [f"item-{n:03d}" for n in range(84)]  # 84 x 3 = 252 rows


@pytest.fixture
def big(anno, team) -> list[tuple[str, str]]:
    """252 annotations (84 items x 3 owners) written in one import, plus a tombstone."""
    records = [{"item": i, "owner": o, "data": {"i": i}} for i in ITEMS for o in OWNERS]
    anno.import_batch(SLUG, records, "alice", "admin")
    anno.put(SLUG, "item-000a", "bob", {}, writer="bob")
    anno.delete(SLUG, "item-000a", "bob", deleter="bob", role="annotator")
    return sorted((i, o) for i in ITEMS for o in OWNERS)


def walk(anno: Annotations, limit: int, **filters) -> tuple[list[tuple[str, str]], int]:
    """Every row through the cursor, and how many pages it took."""
    seen, cursor, pages = [], None, 0
    while True:
        page = anno.page(SLUG, "vera", "viewer", cursor=cursor, limit=limit, **filters)
        pages += 1
        assert len(page.views) <= limit
        seen += keys(page.views)
        if page.next is None:
            return seen, pages
        assert len(page.views) == limit  # only a full page says there is more
        cursor = page.next


def test_cursor_walks_every_row_once_in_order(anno, big):
    seen, pages = walk(anno, 100)
    assert seen == big  # every row once, in (item, owner) order, no tombstone
    assert pages == 3
    seen, pages = walk(anno, 1)
    assert seen == big and pages == 252


def test_cursor_walk_with_filters(anno, big):
    bobs, pages = walk(anno, 30, owner="bob")
    assert bobs == [k for k in big if k[1] == "bob"] and pages == 3
    exact, pages = walk(anno, 42, owner="carol")  # 84 rows: two full pages, no third
    assert exact == [k for k in big if k[1] == "carol"] and pages == 2
    one, pages = walk(anno, 2, item="item-007")
    assert one == [("item-007", o) for o in OWNERS] and pages == 2
    both, _ = walk(anno, 100, item="item-007", owner="bob")
    assert both == [("item-007", "bob")]
    assert walk(anno, 100, item="item-999") == ([], 1)


def test_cursor_resumes_after_the_row_it_names(anno, big):
    # Rows written or deleted behind the cursor do not disturb the rest of the walk.
    first = anno.page(SLUG, "vera", "viewer", limit=100)
    anno.put(SLUG, "item-000", "vera", {}, writer="vera")  # before the cursor
    anno.delete(SLUG, "item-050", "bob", deleter="bob", role="annotator")  # after it
    rest = anno.page(SLUG, "vera", "viewer", cursor=first.next, limit=1000)
    assert keys(first.views) + keys(rest.views) == [k for k in big if k != ("item-050", "bob")]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "e30=",  # {}
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'["a", "b", "c"]').decode(),
        base64.urlsafe_b64encode(b'"ab"').decode(),  # a 2-character string is no pair
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(b"[" * 100_000).decode(),  # deeper than Python recurses
        "é",
        cursors.encode("a\x00", "b"),  # NUL: no database takes it in a text comparison
    ],
)
def test_bad_cursor_is_invalid_input(anno, team, cursor):
    with pytest.raises(InvalidInput, match="cursor"):
        anno.page(SLUG, "vera", "viewer", cursor=cursor)


@pytest.mark.parametrize("limit", [0, -1, PAGE_MAX + 1])
def test_limit_bounds(anno, team, limit):
    with pytest.raises(InvalidInput, match="'limit'"):
        anno.page(SLUG, "vera", "viewer", limit=limit)


def test_limit_extremes_accepted(anno, team):
    fill_team(anno)
    assert len(anno.page(SLUG, "vera", "viewer", limit=1).views) == 1
    assert len(anno.page(SLUG, "vera", "viewer", limit=PAGE_MAX).views) == 6


def test_pages_yields_bounded_pages_covering_every_row(anno, big, monkeypatch):
    monkeypatch.setattr(core, "EXPORT_PAGE", 100)
    pages = list(anno.pages(SLUG, "vera", "viewer"))
    assert [len(p) for p in pages] == [100, 100, 52]
    assert [k for p in pages for k in keys(p)] == big
    pages = list(anno.pages(SLUG, "bob", "annotator"))  # only bob's own
    assert [k for p in pages for k in keys(p)] == [k for k in big if k[1] == "bob"]
    assert list(anno.pages(SLUG, "vera", "viewer", item="nothing")) == [[]]


def test_pages_with_a_start_cursor_and_filters(anno, big):
    start = anno.page(SLUG, "vera", "viewer", owner="carol", limit=10).next
    rest = [
        k for p in anno.pages(SLUG, "vera", "viewer", owner="carol", cursor=start) for k in keys(p)
    ]
    assert rest == [k for k in big if k[1] == "carol"][10:]


@PROPERTY
@given(st.text(), st.text())
def test_cursor_round_trip(item, owner):
    """Any position a page can end at comes back; NUL never does (no database compares
    text with it, and no item or account name holds one)."""
    cursor = cursors.encode(item, owner)
    assert re.fullmatch(r"[A-Za-z0-9_=-]*", cursor)  # safe in a query string
    if "\x00" in item + owner:
        with pytest.raises(InvalidInput):
            cursors.decode(cursor, str, str)
    else:
        assert cursors.decode(cursor, str, str) == (item, owner)


@PROPERTY
@given(st.one_of(st.text(), st.binary().map(lambda b: base64.urlsafe_b64encode(b).decode())))
def test_decode_cursor_never_fails_otherwise(cursor):
    try:
        item, owner = cursors.decode(cursor, str, str)
    except InvalidInput:
        return
    assert isinstance(item, str) and isinstance(owner, str)


# -- import -------------------------------------------------------------------------------


def five(bad: dict | object | None = None, at: int = 3) -> list:
    records = [{"item": f"i{n}", "data": {"n": n}} for n in range(5)]
    if bad is not None:
        records[at] = bad
    return records


@pytest.mark.parametrize(
    ("bad", "error", "reason"),
    [
        ({"item": "a b", "data": 1}, InvalidInput, "Invalid item name"),
        ({"item": "i9"}, InvalidInput, "needs 'item' and 'data'"),
        ({"data": 1}, InvalidInput, "needs 'item' and 'data'"),
        ({"item": "i9", "data": 1, "colour": 3}, InvalidInput, "unknown fields"),
        ({"item": "i9", "data": 1, "version": "3"}, InvalidInput, "'version' must be"),
        ({"item": "i9", "data": 1, "version": 0}, InvalidInput, "'version' must be"),
        (["i9", 1], InvalidInput, "must be an object"),
        ({"item": "i9", "data": math.nan}, InvalidInput, "NaN"),
        ({"item": "i9", "data": "\ud800"}, InvalidInput, "surrogate"),
        ({"item": "i9", "data": "x" * 2000}, TooLarge, "over 1000 bytes"),
        ({"item": "i9", "owner": 7, "data": 1}, InvalidInput, "'owner' must be a string"),
        ({"item": "i9", "owner": "carol", "data": 1}, InvalidInput, "only project admins"),
    ],
)
def test_import_is_all_or_nothing(store, team, bad, error, reason):
    anno = Annotations(store, max_bytes=1000)
    anno.put(SLUG, "i0", "bob", {"before": True}, writer="bob")
    with pytest.raises(error, match=rf"^Record 3: .*{re.escape(reason)}"):
        anno.import_batch(SLUG, five(bad), "bob", "annotator")
    assert everything(anno) == [("i0", "bob", 1)]  # records 0 to 2 were not written


def test_import_duplicates_in_a_batch(anno, team):
    records = five({"item": "i1", "data": 2}, at=4)
    with pytest.raises(InvalidInput, match=r"^Record 4: .*'i1'.*also record 1"):
        anno.import_batch(SLUG, records, "bob", "annotator")
    # The owner decides too: an explicit owner equal to the importer is the same key.
    records = five({"item": "i1", "owner": " BOB ", "data": 2}, at=4)
    with pytest.raises(InvalidInput, match="also record 1"):
        anno.import_batch(SLUG, records, "bob", "annotator")
    assert everything(anno) == []


def test_import_unknown_owner(anno, team):
    records = five({"item": "i2", "owner": "ghost", "data": 1}, at=2)
    with pytest.raises(InvalidInput, match=r"^Record 2: there is no account named 'ghost'"):
        anno.import_batch(SLUG, records, "alice", "admin")
    assert everything(anno) == []


def test_import_by_annotator_for_others_refused(anno, team):
    records = five({"item": "i0", "owner": "carol", "data": 1}, at=0)
    with pytest.raises(InvalidInput, match=r"^Record 0: .*only project admins"):
        anno.import_batch(SLUG, records, "bob", "annotator")
    assert everything(anno) == []


def test_import_by_project_admin_on_behalf(anno, team):
    anno.put(SLUG, "i1", "bob", {"old": True}, writer="bob")
    records = [
        {"item": "i1", "owner": "bob", "data": {"new": True}, "version": 1},
        {"item": "i1", "owner": "Carol", "data": 1},  # names are normalised
        {"item": "i2", "data": 2},  # no owner: the importer's own
    ]
    result = anno.import_batch(SLUG, records, "alice", "admin")
    assert (result.created, result.updated) == (2, 1)
    assert result.as_json() == {"imported": 3, "created": 2, "updated": 1}
    assert everything(anno) == [("i1", "bob", 2), ("i1", "carol", 1), ("i2", "alice", 1)]
    assert json.loads(anno.get(SLUG, "i1", "bob", "bob", "annotator").data) == {"new": True}


def add_member(store: Store, name: str, role: str, slug: str = SLUG) -> None:
    with store.transaction() as s:
        project = s.query(Project).filter_by(slug=slug).one()
        account = s.query(Account).filter_by(name=name).one()
        s.add(Membership(project_id=project.id, account_id=account.id, role=role))


@pytest.mark.parametrize(
    ("owner", "reason"),
    [
        ("vera", "is a viewer of project 'demo'"),
        ("zed", "is not a member of project 'demo'"),
        ("svc:watcher", "is a viewer of project 'demo'"),
    ],
)
def test_import_refuses_owners_who_may_not_write(store, team, owner, reason):
    accounts = Accounts(
        store,
        LinkSigner(b"s" * 32, timedelta(hours=24)),
        LockoutPolicy(max_failures=5, max_address_failures=50, window=timedelta(minutes=15)),
    )
    accounts.ensure("zed")
    accounts.create("svc:watcher")
    add_member(store, "svc:watcher", "viewer")
    anno = Annotations(store)
    records = five({"item": "i2", "owner": owner, "data": 1}, at=2)
    with pytest.raises(Forbidden, match=rf"^Record 2: '{re.escape(owner)}' {re.escape(reason)}"):
        anno.import_batch(SLUG, records, "alice", "admin")
    assert everything(anno) == []


def test_import_for_a_service_account_or_a_hub_admin_who_may_write(store, team):
    with store.transaction() as s:
        s.add(Account(name="svc:model", kind="service"))
        s.add(Account(name="root", admin=True))  # a hub admin is every project's admin
    add_member(store, "svc:model", "annotator")
    anno = Annotations(store)
    records = [
        {"item": "i1", "owner": "svc:model", "data": {"p": 0.9}},
        {"item": "i1", "owner": "root", "data": 1},
    ]
    assert anno.import_batch(SLUG, records, "alice", "admin").created == 2


def test_import_replaces_only_the_version_it_names(anno, team):
    anno.put(SLUG, "i1", "bob", {"n": 1}, writer="bob")
    anno.put(SLUG, "i2", "bob", {"n": 1}, writer="bob")
    anno.delete(SLUG, "i2", "bob", deleter="bob", role="annotator")  # a tombstone
    records = [
        {"item": "i0", "data": "new"},
        {"item": "i1", "data": "blind"},  # exists: must name version 1
        {"item": "i2", "data": "revived"},  # a tombstone may be written over
        {"item": "i3", "data": "x", "version": 4},  # nothing to match
    ]
    with pytest.raises(ImportConflict) as e:
        anno.import_batch(SLUG, records, "bob", "annotator")
    assert e.value.status == 412 and "Records 1, 3 would replace" in e.value.message
    assert e.value.details["conflicts"] == [
        {"record": 1, "item": "i1", "owner": "bob", "version": 1},
        {"record": 3, "item": "i3", "owner": "bob", "version": None},
    ]
    assert everything(anno) == [("i1", "bob", 1)]  # nothing of the batch
    records[1]["version"], records[3] = 1, {"item": "i3", "data": "x"}
    result = anno.import_batch(SLUG, records, "bob", "annotator")
    assert (result.created, result.updated) == (3, 1)
    assert everything(anno) == [
        ("i0", "bob", 1),
        ("i1", "bob", 2),
        ("i2", "bob", 3),
        ("i3", "bob", 1),
    ]
    with pytest.raises(ImportConflict):  # version 1 is stale now
        anno.import_batch(SLUG, [{"item": "i1", "data": 0, "version": 1}], "bob", "annotator")


def test_two_blind_imports_of_one_annotation_never_overwrite_each_other(store, team):
    """Of two imports creating the same annotation at once, one wins and the other gets
    412: concurrent annotators never overwrite each other, imports included."""
    barrier = threading.Barrier(2)

    def run(value: int):
        anno = Annotations(store)
        barrier.wait()
        try:
            return anno.import_batch(SLUG, [{"item": "i1", "data": value}], "bob", "annotator")
        except ImportConflict as e:
            return e

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, [1, 2]))
    assert sorted(type(r).__name__ for r in results) == ["ImportConflict", "ImportResult"]
    assert everything(Annotations(store)) == [("i1", "bob", 1)]


def test_import_sizes(store, team):
    anno = Annotations(store, import_max_records=5)
    with pytest.raises(TooLarge, match="6 records are over the limit of 5"):
        anno.import_batch(SLUG, [*five(), {"item": "i5", "data": 5}], "bob", "annotator")
    for empty in ([], {}, None, "x"):
        with pytest.raises(InvalidInput, match="non-empty list"):
            anno.import_batch(SLUG, empty, "bob", "annotator")
    assert anno.import_batch(SLUG, five(), "bob", "annotator").created == 5


# -- data -------------------------------------------------------------------------------


def test_data_size_cap(store, team):
    anno = Annotations(store, max_bytes=100)
    fits = "x" * 98  # as JSON: two quotes more
    assert anno.put(SLUG, "i1", "bob", fits, writer="bob")[0].version == 1
    with pytest.raises(TooLarge, match="over 100 bytes"):
        anno.put(SLUG, "i1", "bob", fits + "x", writer="bob")
    with pytest.raises(TooLarge):  # counted in bytes: é is two
        anno.put(SLUG, "i1", "bob", "é" * 50, writer="bob")
    assert anno.get(SLUG, "i1", "bob", "bob", "annotator").version == 1


def deep(levels: int) -> list:
    data: list = []
    for _ in range(levels):
        data = [data]
    return data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (math.nan, "NaN"),
        ({"x": [math.inf]}, "NaN and Infinity"),
        (-math.inf, "NaN"),
        ({"s": "a\udc00b"}, "unpaired surrogate"),  # JSON "\udc00" parses to this
        (deep(100_000), "nested too deeply"),
    ],
)
def test_data_that_is_not_json_refused(anno, team, data, reason):
    with pytest.raises(InvalidInput, match=reason):
        anno.put(SLUG, "i1", "bob", data, writer="bob")
    assert everything(anno) == []


def test_data_round_trips_unchanged(anno, team):
    data = {"labels": ["cat", "ünïcödé", "😀"], "box": [0.5, 1e-9, -3], "ok": True, "n": None}
    view, _ = anno.put(SLUG, "i1", "bob", data, writer="bob")
    assert view.as_json()["data"] == data
    assert json.loads(view.json_text())["data"] == data
    assert json.loads(view.json_text()) == {**view.as_json()}


# -- deleted accounts ----------------------------------------------------------------------


def test_deleted_account_keeps_its_annotations_read_only(anno, accounts, team):
    anno.put(SLUG, "i1", "bob", {"by": "bob"}, writer="bob")
    anno.put(SLUG, "i2", "bob", {"by": "bob"}, writer="bob")
    assert accounts.delete("bob")
    kept = anno.get(SLUG, "i1", "bob", "vera", "viewer")
    assert (kept.owner, kept.version, json.loads(kept.data)) == ("bob", 1, {"by": "bob"})
    assert keys(anno.page(SLUG, "alice", "admin", owner="bob").views) == [
        ("i1", "bob"),
        ("i2", "bob"),
    ]
    # Writes under that name (a request still in flight, say) are refused, never merged.
    for write in (
        lambda: anno.put(SLUG, "i1", "bob", {"x": 1}, writer="bob"),
        lambda: anno.put(SLUG, "i1", "bob", {"x": 1}, writer="bob", if_match=1),
        lambda: anno.put(SLUG, "i1", "bob", {"x": 1}, writer="bob", create_only=True),
        lambda: anno.delete(SLUG, "i1", "bob", deleter="bob", role="annotator"),
    ):
        with pytest.raises(Conflict, match="deleted account") as e:
            write()
        assert e.value.status == 409
    with pytest.raises(InvalidInput, match="no account named 'bob'"):
        anno.import_batch(SLUG, [{"item": "i1", "owner": "bob", "data": 1}], "alice", "admin")
    # A project admin may delete them (version + 1, as every write).
    assert anno.delete(SLUG, "i1", "bob", deleter="alice", role="admin") == 2
    assert everything(anno) == [("i2", "bob", 1)]


def test_a_new_account_with_the_old_name_cannot_write_over_orphans(anno, accounts, team):
    anno.put(SLUG, "i1", "bob", {"by": "old bob"}, writer="bob")
    accounts.delete("bob")
    accounts.create("bob")
    add_member(anno.store, "bob", "annotator")
    with pytest.raises(Conflict):
        anno.put(SLUG, "i1", "bob", {"by": "new bob"}, writer="bob")
    with pytest.raises(Conflict, match=r"^Record 1: .*deleted account"):
        anno.import_batch(
            SLUG,
            [{"item": "i2", "owner": "bob", "data": 1}, {"item": "i1", "owner": "bob", "data": 1}],
            "alice",
            "admin",
        )
    assert everything(anno) == [("i1", "bob", 1)]  # nothing of the batch written
    # Items the old account never annotated are the new one's to write.
    assert anno.put(SLUG, "i2", "bob", {"by": "new bob"}, writer="bob")[0].version == 1
    # The old annotations are not the namesake's own: without sharing, not even visible.
    assert keys(anno.page(SLUG, "bob", "annotator").views) == [("i2", "bob")]
    assert keys(anno.page(SLUG, "bob", "annotator", owner="bob").views) == [("i2", "bob")]
    with pytest.raises(NotFound):
        anno.get(SLUG, "i1", "bob", "bob", "annotator")
    assert anno.get(SLUG, "i1", "bob", "vera", "viewer").version == 1  # still there


# -- races ------------------------------------------------------------------------------

THREADS = 8


def race(target, args_of) -> list:
    """Run ``target`` in THREADS threads started together; re-raise nothing, return errors."""
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        barrier.wait()
        try:
            target(*args_of(n))
        except BaseException as e:  # collected and checked by the test
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    return errors


def test_same_owner_racing_with_if_match(anno, team):
    """8 threads, one annotation, each re-reading and writing with the version it read:
    every acknowledged write is counted by the version, every refusal is a 412."""
    anno.put(SLUG, "i1", "bob", {"n": 0}, writer="bob")
    lock = threading.Lock()
    outcome = {"ok": 0, "412": 0}
    acknowledged: set[int] = set()

    def writer(n: int) -> None:
        for attempt in range(15):
            version = anno.get(SLUG, "i1", "bob", "bob", "annotator").version
            try:
                view, _ = anno.put(
                    SLUG, "i1", "bob", {"by": n, "attempt": attempt}, writer="bob", if_match=version
                )
            except PreconditionFailed as e:
                assert e.details["current"]["version"] > version
                with lock:
                    outcome["412"] += 1
            else:
                assert view.version == version + 1
                with lock:
                    outcome["ok"] += 1
                    assert view.version not in acknowledged  # no version given out twice
                    acknowledged.add(view.version)

    errors = race(writer, lambda n: (n,))
    assert errors == []
    assert outcome["ok"] + outcome["412"] == THREADS * 15
    assert outcome["ok"] >= 15  # someone always wins
    final = anno.get(SLUG, "i1", "bob", "bob", "annotator").version
    assert final == 1 + outcome["ok"]
    assert acknowledged == set(range(2, final + 1))


def test_same_base_version_exactly_one_wins(anno, team):
    """Every round, all threads write with the same base version: one 200, the rest 412."""
    anno.put(SLUG, "i1", "bob", {"n": 0}, writer="bob")
    for base in range(1, 6):
        errors = race(
            lambda n, base=base: anno.put(
                SLUG, "i1", "bob", {"by": n}, writer="bob", if_match=base
            ),
            lambda n: (n,),
        )
        assert len(errors) == THREADS - 1
        assert all(isinstance(e, PreconditionFailed) for e in errors), errors
        assert {e.details["current"]["version"] for e in errors} == {base + 1}
    assert anno.get(SLUG, "i1", "bob", "bob", "annotator").version == 6


def test_create_only_race_has_one_winner(anno, team):
    errors = race(
        lambda n: anno.put(SLUG, "new", "bob", {"by": n}, writer="bob", create_only=True),
        lambda n: (n,),
    )
    assert len(errors) == THREADS - 1
    assert all(isinstance(e, PreconditionFailed) for e in errors), errors
    assert anno.get(SLUG, "new", "bob", "bob", "annotator").version == 1


def test_different_owners_on_one_item_all_succeed(anno, store):
    names = [f"u{n}" for n in range(THREADS)]
    add_project(store, members=dict.fromkeys(names, "annotator") | {"alice": "admin"})

    def writer(name: str) -> None:
        for n in range(10):
            anno.put(SLUG, "shared", name, {"n": n}, writer=name)

    assert race(writer, lambda n: (names[n],)) == []
    assert everything(anno) == [("shared", name, 10) for name in names]
