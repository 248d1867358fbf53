"""The audit log (SPEC section 11, issue 6 item 3): `Audit.record` and `Audit.page` on
SQLite and PostgreSQL with a clock the test moves: round trip, newest first, the keyset
cursor, every filter, the bounds of the input, and secrets refused before anything is
written."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from jupyterhub_annotations.authenticator import cursors
from jupyterhub_annotations.authenticator.audit import ACTIONS, Audit
from jupyterhub_annotations.authenticator.cursors import PAGE_MAX, PAGE_SIZE
from jupyterhub_annotations.authenticator.errors import InvalidInput
from jupyterhub_annotations.authenticator.models import AuditEvent
from jupyterhub_annotations.authenticator.store import Store
from sqlalchemy import delete, func, select

START = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory):
    """One migrated store per backend for this module (creating and dropping a PostgreSQL
    database per test would cost more than the tests); each test starts with no events."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('audit') / 'annotations.sqlite'}"
    else:
        url = request.getfixturevalue("pg_admin").create()
    store = Store(url)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture(autouse=True)
def empty_log(store: Store) -> None:
    with store.transaction() as s:
        s.execute(delete(AuditEvent))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def audit(store: Store, clock: Clock) -> Audit:
    return Audit(store, logging.getLogger("test.audit"), clock=clock)


def count(store: Store) -> int:
    with store.transaction(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(AuditEvent))


def walk(audit: Audit, limit: int, **filters) -> tuple[list[int], int]:
    """Every event id matching ``filters``, following the cursor; and how many pages."""
    ids: list[int] = []
    cursor, pages = None, 0
    while True:
        events, cursor = audit.page(cursor=cursor, limit=limit, **filters)
        pages += 1
        assert len(events) <= limit
        ids += [e.id for e in events]
        if cursor is None:
            return ids, pages
        assert pages < 1000, "the cursor does not end"


def seed(audit: Audit, clock: Clock) -> None:
    """Nine events a minute apart, of several families, actors and targets."""
    events = [
        ("login.failure", "alice", "alice", "10.0.0.1", {}),
        ("login.failure", "alice", "alice", "10.0.0.1", {}),
        ("login.locked", "alice", "alice", "10.0.0.1", {}),
        ("login.success", "admin", "admin", "10.0.0.2", {}),
        ("user.create", "admin", "bob", "10.0.0.2", {"kind": "user", "admin": False}),
        ("link.issue", "admin", "bob", "10.0.0.2", {"purpose": "invite"}),
        ("link.use", "bob", "bob", "10.0.0.3", {"purpose": "invite"}),
        ("token.create", "bob", "bob", "10.0.0.3", {"id": 7, "name": "nb", "scopes": ["a"]}),
        ("member.set", "admin", "bob", "10.0.0.2", {"project": "birds", "role": "viewer"}),
    ]
    for action, actor, target, address, details in events:
        audit.record(action, actor, target, address, **details)
        clock.advance(minutes=1)


# -- record and page --------------------------------------------------------------------


def test_an_event_comes_back_as_it_was_recorded(audit, store):
    audit.record("member.set", "admin", "bob", "192.0.2.7", project="birds", role="annotator", n=3)
    (event,), cursor = audit.page()
    assert cursor is None
    assert event.actor == "admin" and event.action == "member.set" and event.target == "bob"
    assert event.address == "192.0.2.7"
    assert event.at == START and event.at.tzinfo is not None  # aware UTC on both backends
    assert event.details == {"project": "birds", "role": "annotator", "n": 3}
    assert event.as_json() == {
        "id": event.id,
        "at": START.isoformat(),
        "actor": "admin",
        "action": "member.set",
        "target": "bob",
        "address": "192.0.2.7",
        "details": {"project": "birds", "role": "annotator", "n": 3},
    }
    assert count(store) == 1


def test_actor_target_address_and_details_are_optional(audit):
    audit.record("login.failure", None)
    (event,), _ = audit.page()
    assert (event.actor, event.target, event.address, event.details) == (None, None, None, {})
    assert event.as_json()["actor"] is None


def test_details_that_json_cannot_hold_are_kept_as_text(audit):
    audit.record("token.create", "bob", "bob", expires=START, scopes=("a", "b"))
    (event,), _ = audit.page()
    assert event.details == {"expires": str(START), "scopes": ["a", "b"]}


def test_every_known_action_can_be_recorded(audit):
    for action in ACTIONS:
        audit.record(action, "admin", "bob", "10.0.0.9")
    events, cursor = audit.page(limit=len(ACTIONS))
    assert cursor is None
    assert [e.action for e in events] == list(reversed(ACTIONS))


def test_each_event_is_also_one_line_in_the_log(audit, caplog):
    with caplog.at_level(logging.INFO, logger="test.audit"):
        audit.record("user.update", "admin", "bob", "10.0.0.2", active=False)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "test.audit"]
    assert "admin" in line and "user.update" in line and "bob" in line and "10.0.0.2" in line


def test_newest_first(audit, clock):
    seed(audit, clock)
    events, cursor = audit.page()
    assert cursor is None and len(events) == 9
    assert [e.id for e in events] == sorted((e.id for e in events), reverse=True)
    assert [e.at for e in events] == sorted((e.at for e in events), reverse=True)
    assert events[0].action == "member.set" and events[-1].action == "login.failure"


# -- the cursor -------------------------------------------------------------------------


def test_the_cursor_walks_every_event_exactly_once(audit, clock):
    seed(audit, clock)
    everything, _ = audit.page(limit=PAGE_MAX)
    for limit in (1, 2, 4, 8, 9, 10):
        ids, pages = walk(audit, limit)
        assert ids == [e.id for e in everything], limit  # each once, in order, none skipped
        assert len(set(ids)) == 9
        assert pages == -(-9 // limit), limit  # no empty last page


def test_a_full_last_page_has_no_cursor(audit, clock):
    seed(audit, clock)
    first, cursor = audit.page(limit=5)
    assert len(first) == 5 and cursor == cursors.encode(first[-1].id)
    rest, cursor = audit.page(limit=4, cursor=cursor)
    assert len(rest) == 4 and cursor is None


def test_events_recorded_while_paging_do_not_shift_the_pages(audit, clock):
    seed(audit, clock)
    first, cursor = audit.page(limit=3)
    audit.record("login.success", "carol", "carol", "10.0.0.4")  # newer: not on later pages
    rest: list[int] = []
    while cursor is not None:
        events, cursor = audit.page(limit=3, cursor=cursor)
        rest += [e.id for e in events]
    assert len(first) + len(rest) == 9
    assert not set(e.id for e in first) & set(rest)


def test_the_cursor_keeps_the_filters(audit, clock):
    seed(audit, clock)
    ids, pages = walk(audit, 1, target="bob")
    assert pages == 5
    events, _ = audit.page(target="bob")
    assert ids == [e.id for e in events]


NOT_CURSORS = ["abc", "-1", "1.5", " 3", "3 ", "0x10", "+3", "3_0", "²", "٣", "1" + "0" * 9]


def test_a_cursor_this_api_never_gave_out_is_invalid_input(audit, clock):
    seed(audit, clock)
    # Unicode digits ("²" is a digit to str.isdigit, not to int) and ids beyond any the
    # database holds (an INTEGER column: out of range on PostgreSQL, SQLite overflows).
    # Cursors of the one format, but not of this list: another list's key, an id out of
    # range, a boolean.
    others = [cursors.encode("a", "b"), cursors.encode(2**31), cursors.encode(-1)]
    for cursor in [*NOT_CURSORS, "9" * 23, "9" * 5000, *others, cursors.encode(True)]:
        with pytest.raises(InvalidInput, match="cursor"):
            audit.page(cursor=cursor)


def test_an_empty_cursor_string_is_invalid_but_a_past_the_end_one_is_an_empty_page(audit, clock):
    seed(audit, clock)
    with pytest.raises(InvalidInput):
        audit.page(cursor="")
    assert audit.page(cursor=cursors.encode(1)) == ([], None)  # nothing older than the first


# -- filters ----------------------------------------------------------------------------


def test_filter_by_actor(audit, clock):
    seed(audit, clock)
    events, _ = audit.page(actor="admin")
    assert [e.action for e in events] == [
        "member.set",
        "link.issue",
        "user.create",
        "login.success",
    ]
    assert all(e.actor == "admin" for e in events)
    assert audit.page(actor="Admin") == ([], None)  # exact, not case-folded
    assert audit.page(actor="adm") == ([], None)  # exact, not a prefix


def test_filter_by_exact_action(audit, clock):
    seed(audit, clock)
    events, _ = audit.page(action="login.failure")
    assert [e.action for e in events] == ["login.failure", "login.failure"]
    assert audit.page(action="login.fail") == ([], None)  # with a dot: exact


def test_an_action_without_a_dot_is_a_family(audit, clock):
    seed(audit, clock)
    logins, _ = audit.page(action="login")
    assert [e.action for e in logins] == [
        "login.success",
        "login.locked",
        "login.failure",
        "login.failure",
    ]
    links, _ = audit.page(action="link")
    assert [e.action for e in links] == ["link.use", "link.issue"]
    assert audit.page(action="log") == ([], None)  # a family, not any prefix
    assert audit.page(action="project") == ([], None)


def test_like_wildcards_in_a_family_match_nothing(audit, clock):
    seed(audit, clock)
    for pattern in ("%", "_", "l%", "login%", "_ogin", "*", "\\"):
        assert audit.page(action=pattern) == ([], None), pattern


def test_filter_by_target(audit, clock):
    seed(audit, clock)
    events, _ = audit.page(target="bob")
    assert [e.action for e in events] == [
        "member.set",
        "token.create",
        "link.use",
        "link.issue",
        "user.create",
    ]
    assert audit.page(target="nobody") == ([], None)


def test_filter_since_includes_the_moment_itself(audit, clock):
    seed(audit, clock)  # events at START + 0..8 minutes
    events, _ = audit.page(since=START + timedelta(minutes=6))
    assert [e.action for e in events] == ["member.set", "token.create", "link.use"]
    assert len(audit.page(since=START)[0]) == 9
    assert audit.page(since=START + timedelta(minutes=9)) == ([], None)
    # Another time zone, the same instant.
    paris = START.astimezone(datetime.fromisoformat("2026-01-01T00:00+01:00").tzinfo)
    assert len(audit.page(since=paris + timedelta(minutes=6))[0]) == 3


def test_filters_combine(audit, clock):
    seed(audit, clock)
    events, _ = audit.page(actor="admin", action="link", target="bob")
    assert [e.action for e in events] == ["link.issue"]
    events, _ = audit.page(actor="alice", action="login", since=START + timedelta(minutes=1))
    assert [e.action for e in events] == ["login.locked", "login.failure"]
    assert audit.page(actor="bob", action="login") == ([], None)


# -- bounds -----------------------------------------------------------------------------


def test_the_default_page_size(audit, clock):
    for _ in range(PAGE_SIZE + 1):
        audit.record("login.failure", "alice", "alice")
    events, cursor = audit.page()
    assert len(events) == PAGE_SIZE and cursor is not None
    rest, cursor = audit.page(cursor=cursor)
    assert len(rest) == 1 and cursor is None


def test_a_limit_out_of_bounds_is_invalid_input(audit):
    for limit in (0, -1, PAGE_MAX + 1, 10**9):
        with pytest.raises(InvalidInput, match="limit"):
            audit.page(limit=limit)


def test_the_limit_bounds_themselves_are_fine(audit, clock):
    seed(audit, clock)
    assert len(audit.page(limit=1)[0]) == 1
    assert len(audit.page(limit=PAGE_MAX)[0]) == 9


# -- refused records --------------------------------------------------------------------


def test_an_unknown_action_is_refused_and_nothing_written(audit, store):
    for action in ("login", "login.", "login.succes", "LOGIN.SUCCESS", "", "x", "user.*"):
        with pytest.raises(ValueError, match="unknown audit action"):
            audit.record(action, "admin", "bob")
    assert count(store) == 0


SECRET_KEYS = [
    "password",
    "new_password",
    "token",
    "plaintext_token",
    "tokens",
    "link",
    "invite_link",
    "secret",
    "client_secret",
    "hash",
    "password_hash",
]


def test_a_secret_looking_detail_key_is_refused_and_nothing_written(audit, store):
    for key in SECRET_KEYS:
        with pytest.raises(ValueError, match="secret"):
            audit.record("user.update", "admin", "bob", "10.0.0.2", active=False, **{key: "s3"})
    assert count(store) == 0
    assert audit.page() == ([], None)


def test_a_refused_record_logs_nothing(audit, caplog):
    with caplog.at_level(logging.INFO, logger="test.audit"):
        with pytest.raises(ValueError):
            audit.record("link.issue", "admin", "bob", link="http://x/?token=s3cr3t")
    assert not [r for r in caplog.records if r.name == "test.audit"]
    assert "s3cr3t" not in caplog.text
