"""The work queue's core (SPEC 17) on SQLite and PostgreSQL: registering items, claims
and their rules, leases, releases, progress, blind projects; concurrent claims; and
property tests of random claim, release, expire and write sequences."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from jupyterhub_annotations.authenticator.annotations import Annotations
from jupyterhub_annotations.authenticator.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooLarge,
)
from jupyterhub_annotations.authenticator.models import Account, Claim, Item, Membership, Project
from jupyterhub_annotations.authenticator.store import Store
from jupyterhub_annotations.authenticator.work import ITEM_DATA_MAX_BYTES, Work

SLUG = "demo"
START = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


def add_project(store: Store, slug: str = SLUG, members: dict[str, str] | None = None, **settings):
    """A project with ``members`` (name: role), accounts made as needed."""
    with store.transaction() as s:
        project = Project(slug=slug, **settings)
        s.add(project)
        s.flush()
        for name, role in (members or {}).items():
            account = s.scalars(sa.select(Account).where(Account.name == name)).first()
            if account is None:
                kind = "service" if name.startswith("svc:") else "user"
                account = Account(name=name, kind=kind)
                s.add(account)
                s.flush()
            s.add(Membership(project_id=project.id, account_id=account.id, role=role))


PEOPLE = {"ann": "annotator", "bea": "annotator", "cyd": "annotator", "ada": "admin"}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def work(store, clock) -> Work:
    return Work(store, max_records=50, clock=clock)


@pytest.fixture
def notes(store, clock) -> Annotations:
    return Annotations(store, clock=clock)


def register(work: Work, *names: str, slug: str = SLUG) -> None:
    work.register(slug, [{"item": name, "data": {"url": f"https://x/{name}"}} for name in names])


def claim(work: Work, name: str, slug: str = SLUG) -> str | None:
    result = work.next(slug, name, "user")
    return None if result.claim is None else result.claim.item


# -- registering items -------------------------------------------------------------------


def test_items_register_in_bulk_and_list_by_name_in_pages(store, work):
    add_project(store, members=PEOPLE)
    result = work.register(SLUG, [{"item": f"i{n:02}", "data": {"n": n}} for n in range(25)])
    assert result.as_json() == {"created": 25, "unchanged": 0}
    seen, cursor = [], None
    while True:
        page, cursor = work.items(SLUG, cursor, 10)
        seen += [(view.item, view.as_json()["data"]) for view in page]
        if cursor is None:
            break
    assert seen == [(f"i{n:02}", {"n": n}) for n in range(25)]


def test_registering_again_is_harmless_and_other_data_changes_nothing(store, work):
    add_project(store, members=PEOPLE)
    register(work, "a", "b")
    again = work.register(SLUG, [{"item": "a", "data": {"url": "https://x/a"}}, {"item": "c"}])
    assert again.as_json() == {"created": 1, "unchanged": 1}
    with pytest.raises(Conflict, match="other data, like 'b'"):
        work.register(SLUG, [{"item": "d"}, {"item": "b", "data": "changed"}])
    names = [view.item for view in work.items(SLUG, None, 100)[0]]
    assert names == ["a", "b", "c"]  # "d" was not written either: all or nothing
    assert work.items(SLUG, None, 100)[0][2].as_json()["data"] is None


@pytest.mark.parametrize(
    ("records", "error", "message"),
    [
        ([], InvalidInput, "non-empty list"),
        ({"item": "a"}, InvalidInput, "non-empty list"),
        (["a"], InvalidInput, "Item 0 must be an object"),
        ([{"data": 1}], InvalidInput, "Item 0 must be an object"),
        ([{"item": "a", "label": 1}], InvalidInput, "unknown keys"),
        ([{"item": "a b"}], InvalidInput, "Item 0: Invalid item name"),
        ([{"item": "a"}, {"item": "a"}], InvalidInput, "Item 1: item 'a' is in the list twice"),
        ([{"item": "a", "data": float("nan")}], InvalidInput, "NaN"),
        ([{"item": f"i{n}"} for n in range(51)], TooLarge, "limit of 50"),
        ([{"item": "a", "data": "x" * ITEM_DATA_MAX_BYTES}], TooLarge, "URL or a key"),
    ],
)
def test_bad_registrations_say_what_to_fix_and_write_nothing(store, work, records, error, message):
    add_project(store, members=PEOPLE)
    with pytest.raises(error, match=message):
        work.register(SLUG, records)
    assert work.items(SLUG, None, 100)[0] == []


def test_an_unknown_project_is_a_404(store, work):
    with pytest.raises(NotFound):
        work.register("nope", [{"item": "a"}])
    with pytest.raises(NotFound):
        work.next("nope", "ann", "user")


# -- the queue ---------------------------------------------------------------------------


def test_each_item_goes_to_overlap_annotators_never_twice_to_one(store, work):
    add_project(store, members=PEOPLE, overlap=2)
    register(work, "a", "b")
    first = {name: claim(work, name) for name in ("ann", "bea", "cyd", "ada")}
    assert Counter(first.values()) == {"a": 2, "b": 2}
    assert claim(work, "ann") == first["ann"]  # held: the same claim again


def test_nothing_left_is_none_and_a_written_annotation_completes_the_claim(store, work, notes):
    add_project(store, members=PEOPLE)
    register(work, "a", "b")
    assert claim(work, "ann") == "a"
    assert claim(work, "bea") == "b"
    assert claim(work, "cyd") is None
    notes.put(SLUG, "a", "ann", {"label": "cat"}, writer="ann")
    assert claim(work, "ann") is None  # b is bea's, a is done by ann
    assert claim(work, "cyd") is None  # a holds its one annotation: overlap 1


def test_items_with_the_fewest_annotations_come_first(store, work, notes):
    add_project(store, members=PEOPLE, overlap=2)
    register(work, "a", "b", "c")
    for item, writers in {"a": ["bea", "cyd"], "b": ["bea"]}.items():
        for writer in writers:
            notes.put(SLUG, item, writer, {}, writer=writer)
    assert claim(work, "ann") == "c"  # no annotation yet
    assert claim(work, "ada") == "c"  # still none: a live claim is no annotation
    assert claim(work, "cyd") == "b"  # c is full (two claims), a too (two annotations)
    assert claim(work, "bea") is None  # she annotated a and b; c is full


def test_service_annotations_hold_no_slot_and_service_accounts_cannot_claim(store, work, notes):
    add_project(store, members={**PEOPLE, "svc:model": "annotator"})
    register(work, "a")
    notes.put(SLUG, "a", "svc:model", {"label": "cat"}, writer="svc:model")
    assert claim(work, "ann") == "a"
    with pytest.raises(Forbidden, match="service accounts"):
        work.next(SLUG, "svc:model", "service")


def test_a_lapsed_lease_frees_its_slot_for_others_only(store, work, clock):
    add_project(store, members=PEOPLE, lease_minutes=10)
    register(work, "a")
    result = work.next(SLUG, "ann", "user")
    assert result.claim.lease_expires_at == START + timedelta(minutes=10)
    clock.advance(9.9)
    assert claim(work, "bea") is None
    clock.advance(0.2)
    result = work.next(SLUG, "bea", "user")
    assert (result.claim.item, result.expired) == ("a", 1)
    clock.advance(11)
    assert claim(work, "ann") is None  # ann had it once: never twice


def test_releasing_frees_the_slot_at_once_and_a_released_item_never_comes_back(store, work):
    add_project(store, members=PEOPLE)
    register(work, "a", "b")
    assert claim(work, "ann") == "a"
    work.release(SLUG, "a", "ann")
    assert claim(work, "ann") == "b"
    assert claim(work, "bea") == "a"
    with pytest.raises(NotFound, match="no claim on item 'a'"):
        work.release(SLUG, "a", "ann")


def test_a_late_annotation_on_a_lapsed_claim_is_kept_and_counts(store, work, notes, clock):
    add_project(store, members=PEOPLE, lease_minutes=1)
    register(work, "a", "b")
    assert claim(work, "ann") == "a"
    clock.advance(2)
    notes.put(SLUG, "a", "ann", {"late": True}, writer="ann")  # never refused: no work lost
    assert claim(work, "bea") == "b"  # a holds ann's annotation
    assert notes.get(SLUG, "a", "ann", "ann", "annotator").version == 1


def test_progress_counts_annotations_and_live_claims_of_registered_items(store, work, notes):
    add_project(store, members=PEOPLE, overlap=2)
    register(work, "a", "b", "c")
    assert claim(work, "ann") == "a"
    notes.put(SLUG, "a", "ann", {}, writer="ann")
    assert claim(work, "bea") == "b"
    notes.put(SLUG, "unregistered", "bea", {}, writer="bea")  # not in the counts
    assert work.progress(SLUG).as_json() == {
        "items": 3,
        "overlap": 2,
        "complete": 0,
        "items_by_annotations": {"0": 2, "1": 1},
        "annotators": [
            {"name": "ada", "done": 0, "claimed": 0},
            {"name": "ann", "done": 1, "claimed": 0},
            {"name": "bea", "done": 0, "claimed": 1},
            {"name": "cyd", "done": 0, "claimed": 0},
        ],
    }


# -- blind projects ----------------------------------------------------------------------


def test_blind_annotators_see_others_of_an_item_only_after_their_own(store, notes):
    add_project(store, members={**PEOPLE, "vic": "viewer"}, share_annotations=True, blind=True)
    notes.put(SLUG, "a", "bea", {"label": "dog"}, writer="bea")
    notes.put(SLUG, "b", "bea", {"label": "cat"}, writer="bea")

    def seen(reader: str, role: str) -> set[tuple[str, str]]:
        return {(v.item, v.owner) for v in notes.page(SLUG, reader, role).views}

    assert seen("ann", "annotator") == set()
    with pytest.raises(NotFound):
        notes.get(SLUG, "a", "bea", "ann", "annotator")
    notes.put(SLUG, "a", "ann", {"label": "cat"}, writer="ann")
    assert seen("ann", "annotator") == {("a", "ann"), ("a", "bea")}
    assert notes.get(SLUG, "a", "bea", "ann", "annotator").owner == "bea"
    with pytest.raises(NotFound):
        notes.get(SLUG, "b", "bea", "ann", "annotator")
    assert seen("vic", "viewer") == {("a", "ann"), ("a", "bea"), ("b", "bea")}
    notes.delete(SLUG, "a", "ann", deleter="ann", role="annotator")
    assert seen("ann", "annotator") == set()  # blind again without a live annotation


def test_blind_does_not_open_a_project_that_does_not_share(store, notes):
    add_project(store, members=PEOPLE, share_annotations=False, blind=True)
    notes.put(SLUG, "a", "bea", {}, writer="bea")
    notes.put(SLUG, "a", "ann", {}, writer="ann")
    assert [v.owner for v in notes.page(SLUG, "ann", "annotator").views] == ["ann"]


# -- concurrency -------------------------------------------------------------------------


def test_sixteen_annotators_at_once_fill_every_slot_exactly_once(store, work, notes):
    names = [f"p{n:02}" for n in range(16)]
    add_project(store, members=dict.fromkeys(names, "annotator"), overlap=3)
    register(work, *[f"i{n}" for n in range(10)])
    got: dict[str, list[str]] = {name: [] for name in names}
    errors: list[BaseException] = []
    start = threading.Barrier(len(names))

    def annotate(name: str) -> None:
        start.wait()
        try:
            while (item := claim(work, name)) is not None:
                got[name].append(item)
                notes.put(SLUG, item, name, {"by": name}, writer=name)
        except BaseException as e:  # a thread's failure must fail the test
            errors.append(e)

    threads = [threading.Thread(target=annotate, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for name, items in got.items():
        assert len(items) == len(set(items)), name  # never the same item twice
    # Slots only fill here (no release, no lapse): every item ends with exactly 3.
    assert Counter(item for items in got.values() for item in items) == {
        f"i{n}": 3 for n in range(10)
    }


def test_concurrent_claims_hold_at_most_overlap_slots(store, work):
    names = [f"p{n:02}" for n in range(16)]
    add_project(store, members=dict.fromkeys(names, "annotator"), overlap=2)
    register(work, *[f"i{n}" for n in range(5)])
    start = threading.Barrier(len(names))
    results: list[str | None] = []

    def ask(name: str) -> None:
        start.wait()
        results.append(claim(work, name))

    threads = [threading.Thread(target=ask, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(r for r in results if r is not None) == {f"i{n}": 2 for n in range(5)}
    assert results.count(None) == 6


# -- properties ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    store = Store(f"sqlite:///{Path(tmp_path_factory.mktemp('work')) / 'a.sqlite'}")
    store.migrate()
    yield store
    store.dispose()


WORKERS = ("ann", "bea", "cyd", "dan")
steps = st.lists(
    st.one_of(
        st.tuples(st.just("claim"), st.sampled_from(WORKERS)),
        st.tuples(st.just("release"), st.sampled_from(WORKERS)),
        st.tuples(st.just("write"), st.sampled_from(WORKERS)),
        st.tuples(st.just("delete"), st.sampled_from(WORKERS)),
        st.tuples(st.just("wait"), st.integers(1, 25)),
    ),
    max_size=40,
)
_projects = iter(range(10**9))


@settings(database=None, max_examples=80, deadline=None)
@given(steps=steps, overlap=st.integers(1, 3), items=st.integers(1, 5))
def test_no_sequence_of_claims_releases_lapses_and_writes_breaks_the_rules(
    shared_store, steps, overlap, items
):
    """Whatever annotators do (writing only what they hold, as the queue asks them):
    nobody gets an item twice, no item holds more than ``overlap`` live claims plus
    annotations, a claim is the least annotated item the caller may have, and "nothing
    left" means nothing is left for them."""
    store, clock = shared_store, Clock()
    slug = f"p{next(_projects)}"
    add_project(store, slug, dict.fromkeys(WORKERS, "annotator"), overlap=overlap, lease_minutes=20)
    work, notes = Work(store, clock=clock), Annotations(store, clock=clock)
    names = [f"i{n}" for n in range(items)]
    register(work, *names, slug=slug)
    handed: dict[str, set[str]] = {who: set() for who in WORKERS}
    for step, arg in steps:
        if step == "wait":
            clock.advance(arg)
            continue
        held = live_claims(store, slug, clock.now).get(arg)
        if step == "claim":
            expected = eligible(store, slug, arg, overlap, clock.now, handed[arg])
            item = claim(work, arg, slug)
            if held is not None:
                assert item == held
            elif item is None:
                assert expected == {}, f"{arg} was told nothing is left"
            else:
                assert item in expected and expected[item] == min(expected.values())
                handed[arg].add(item)
        elif step == "release" and held is not None:
            work.release(slug, held, arg)
        elif step == "write" and held is not None:
            notes.put(slug, held, arg, {"by": arg}, writer=arg)
        elif step == "delete":
            mine = [v.item for v in notes.page(slug, arg, "annotator", owner=arg).views]
            if mine:
                notes.delete(slug, mine[0], arg, deleter=arg, role="annotator")
        for item, taken in slots(store, slug, clock.now).items():
            assert taken <= overlap, (item, taken)
    with store.reading() as conn:
        pairs = conn.execute(
            sa.select(Claim.item, Claim.account_id).join(Project).where(Project.slug == slug)
        ).all()
    assert len(pairs) == len(set(pairs))


def annotated(store: Store, slug: str) -> dict[str, set[str]]:
    """item -> owners with an annotation row (live or deleted)."""
    with store.reading() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT a.item, a.owner, a.deleted_at IS NULL AS live FROM annotations a"
                " JOIN projects p ON p.id = a.project_id WHERE p.slug = :slug"
            ),
            {"slug": slug},
        ).all()
    out: dict[str, set[str]] = {}
    for item, owner, live in rows:
        out.setdefault(item, set()).add((owner, bool(live)))
    return out


def live_claims(store: Store, slug: str, now: datetime) -> dict[str, str]:
    """annotator -> the item of their live claim (claimed, running, not yet written)."""
    written = annotated(store, slug)
    with store.reading() as conn:
        rows = conn.execute(
            sa.select(Account.name, Claim.item, Claim.expires_at)
            .join(Account, Account.id == Claim.account_id)
            .join(Project, Project.id == Claim.project_id)
            .where(Project.slug == slug, Claim.state == "claimed")
        ).all()
    return {
        name: item
        for name, item, expires in rows
        if expires > now and not any(owner == name for owner, _ in written.get(item, ()))
    }


def slots(store: Store, slug: str, now: datetime) -> dict[str, int]:
    """item -> live claims plus live annotations."""
    written = annotated(store, slug)
    taken = Counter(live_claims(store, slug, now).values())
    with store.reading() as conn:
        items = conn.scalars(sa.select(Item.item).join(Project).where(Project.slug == slug)).all()
    return {i: taken[i] + sum(live for _, live in written.get(i, ())) for i in items}


def eligible(
    store: Store, slug: str, who: str, overlap: int, now: datetime, had: set[str]
) -> dict[str, int]:
    """The items ``who`` may be given now, with their numbers of live annotations."""
    written = annotated(store, slug)
    free = slots(store, slug, now)
    return {
        item: sum(live for _, live in written.get(item, ()))
        for item, taken in free.items()
        if taken < overlap
        and item not in had
        and not any(owner == who for owner, _ in written.get(item, ()))
    }
