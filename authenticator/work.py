"""Work distribution: a project's items and the queue that hands them to annotators.

Each item goes to the project's ``overlap`` annotators, never twice to one (one claim
per item and annotator, ever: a unique key), the items with the fewest annotations
first. A claim holds a slot until its lease ends, until its annotator releases it, or
until they write their annotation of the item (the annotation holds the slot then).
The claims of one project take turns (PostgreSQL: a transaction-scoped advisory lock;
SQLite: its one writer), so two annotators asking at once never both take an item's
last slot. Annotations of service accounts (model predictions) hold no slot.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, bindparam, exists, func, insert, select, update
from sqlalchemy.orm import Session, aliased

from . import cursors
from .accounts import require_account
from .annotations import check_item, json_text
from .errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge
from .models import Account, Annotation, Claim, Item, Membership, utcnow
from .projects import _require_project as _project
from .store import Store
from .usernames import SERVICE_PREFIX

# The JSON an annotator receives with an item: a URL or a text, not the item itself.
ITEM_DATA_MAX_BYTES = 16 * 1024
# The first key of the advisory locks of the queue (the second is the project's id).
_QUEUE_LOCK = 0x616E6E6F
_RECORD_KEYS = {"item", "data"}


@dataclass(frozen=True)
class ItemView:
    item: str
    data: str  # JSON text
    created_at: datetime

    def as_json(self) -> dict:
        return {
            "item": self.item,
            "data": json.loads(self.data),
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Registered:
    created: int
    unchanged: int

    def as_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ClaimView:
    item: str
    data: str  # JSON text
    lease_expires_at: datetime

    def as_json(self) -> dict:
        return {
            "item": self.item,
            "data": json.loads(self.data),
            "lease_expires_at": self.lease_expires_at.isoformat(),
        }


@dataclass(frozen=True)
class Next:
    """What `Work.next` did: the caller's claim (None: nothing left for them), whether
    it was one they held already, and how many lapsed leases it found."""

    claim: ClaimView | None
    renewed: bool
    expired: int


@dataclass(frozen=True)
class Progress:
    items: int
    overlap: int
    complete: int  # items with at least ``overlap`` annotations
    items_by_annotations: dict[int, int]  # number of annotations -> number of items
    annotators: list[dict]  # name, done, claimed

    def as_json(self) -> dict:
        return {
            **self.__dict__,
            "items_by_annotations": {str(k): v for k, v in self.items_by_annotations.items()},
        }


def _counted(annotation) -> ColumnElement[bool]:
    """An annotation that holds a slot: live, and not a service account's."""
    return and_(annotation.deleted_at.is_(None), ~annotation.owner.startswith(SERVICE_PREFIX))


def _completed(claim) -> ColumnElement[bool]:
    """Its annotator has written an annotation of the item (live or since deleted)."""
    theirs = aliased(Annotation)
    return exists().where(
        theirs.project_id == claim.project_id,
        theirs.item == claim.item,
        theirs.owner_id == claim.account_id,
    )


def _live(claim) -> ColumnElement[bool]:
    """A claim that holds a slot: claimed, its lease running (at ``now``), no annotation
    of its annotator on the item yet (one, even deleted, completed it)."""
    return and_(claim.state == "claimed", claim.expires_at > bindparam("now"), ~_completed(claim))


# The statements, built once with parameters (building one costs milliseconds, as much
# as running it on a small project): in_project (its id), now, me (account id), name, overlap.
_PROJECT = bindparam("in_project")
# Per item, its annotations that hold a slot and its live claims: one pass each over
# the project's rows, hash-joined to the items (no subquery per item).
_DONE = (
    select(Annotation.item.label("item"), func.count().label("n"))
    .where(Annotation.project_id == _PROJECT, _counted(Annotation))
    .group_by(Annotation.item)
    .subquery("done")
)
_HELD = (
    select(Claim.item_id.label("item_id"), func.count().label("n"))
    .where(Claim.project_id == _PROJECT, _live(Claim))
    .group_by(Claim.item_id)
    .subquery("held")
)
_DONE_N, _HELD_N = func.coalesce(_DONE.c.n, 0), func.coalesce(_HELD.c.n, 0)
_COUNTED_ITEMS = (
    select(Item.id, Item.item, Item.data, _DONE_N.label("done"), _HELD_N.label("held"))
    .outerjoin(_DONE, _DONE.c.item == Item.item)
    .outerjoin(_HELD, _HELD.c.item_id == Item.id)
    .where(Item.project_id == _PROJECT)
)
# The next item for ``me``: a free slot, never theirs before (claimed or annotated).
_CANDIDATE = (
    _COUNTED_ITEMS.where(
        Item.id.not_in(
            select(Claim.item_id).where(
                Claim.account_id == bindparam("me"), Claim.project_id == _PROJECT
            )
        ),
        Item.item.not_in(
            select(Annotation.item).where(
                Annotation.project_id == _PROJECT, Annotation.owner == bindparam("name")
            )
        ),
        _DONE_N + _HELD_N < bindparam("overlap"),
    )
    .order_by(_DONE_N, _HELD_N, Item.id)
    .limit(1)
)
_EXPIRE = (
    update(Claim)
    .where(
        Claim.project_id == _PROJECT,
        Claim.state == "claimed",
        Claim.expires_at <= bindparam("now"),
        ~_completed(Claim),
    )
    .values(state="expired")
    .execution_options(synchronize_session=False)
)
_HELD_BY_ME = (
    select(Claim.id, Claim.item, Item.data, Claim.expires_at)
    .join(Item, Item.id == Claim.item_id)
    .where(Claim.project_id == _PROJECT, Claim.account_id == bindparam("me"), _live(Claim))
    .order_by(Claim.expires_at)
)


class Work:
    def __init__(
        self, store: Store, max_records: int = 10_000, clock: Callable[[], datetime] = utcnow
    ) -> None:
        """``max_records``: the most items one registration may carry."""
        self.store = store
        self.max_records = max_records
        self.clock = clock

    # -- items ------------------------------------------------------------------

    def register(self, slug: str, records: object) -> Registered:
        """Register items at once or not at all. An item registered before with the
        same data is left as it is (so a registration can be sent again); with other
        data the whole batch is a 409: annotators may hold the old data."""
        wanted = self._parse(records)
        with self.store.transaction() as s:
            project = _project(s, slug)
            self._lock(s, project.id)
            existing = {
                row.item: row.data
                for chunk in _chunks(list(wanted))
                for row in s.execute(
                    select(Item.item, Item.data).where(
                        Item.project_id == project.id, Item.item.in_(chunk)
                    )
                )
            }
            changed = [item for item, data in existing.items() if wanted[item] != data]
            if changed:
                raise Conflict(
                    f"{len(changed)} items are registered already with other data, like "
                    f"{sorted(changed)[0]!r}: an item's data never changes once annotators "
                    "may have it. Register those items under new names."
                )
            new = [
                {"project_id": project.id, "item": item, "data": data, "created_at": self.clock()}
                for item, data in wanted.items()
                if item not in existing
            ]
            if new:
                s.execute(insert(Item), new)
        return Registered(created=len(new), unchanged=len(existing))

    def _parse(self, records: object) -> dict[str, str]:
        if not isinstance(records, list) or not records:
            raise InvalidInput('\'items\' must be a non-empty list like [{"item": "img-1"}].')
        if len(records) > self.max_records:
            raise TooLarge(
                f"{len(records)} items are over the limit of {self.max_records} per "
                "request: split them."
            )
        wanted: dict[str, str] = {}
        for i, record in enumerate(records):
            where = f"Item {i}"
            if not isinstance(record, dict) or "item" not in record:
                raise InvalidInput(f'{where} must be an object like {{"item": "img-1"}}.')
            unknown = set(record) - _RECORD_KEYS
            if unknown:
                raise InvalidInput(f"{where} has unknown keys {sorted(unknown)}: use item, data.")
            try:
                check_item(record["item"])
            except InvalidInput as e:
                raise InvalidInput(f"{where}: {e.message}") from None
            if record["item"] in wanted:
                raise InvalidInput(f"{where}: item {record['item']!r} is in the list twice.")
            advice = "give annotators a URL or a key to the content, not the content."
            text = json_text(record.get("data"), f"{where}'s data", ITEM_DATA_MAX_BYTES, advice)
            wanted[record["item"]] = text
        return wanted

    def items(self, slug: str, cursor: str | None, limit: int) -> tuple[list[ItemView], str | None]:
        """A page of the project's items by name, from ``cursor``."""
        query = select(Item.item, Item.data, Item.created_at).order_by(Item.item)
        with self.store.transaction(readonly=True) as s:
            project = _project(s, slug)
            query = cursors.after(query, cursor, limit, Item.item)
            rows = s.execute(query.where(Item.project_id == project.id)).all()
        return cursors.cut([ItemView(*row) for row in rows], limit, lambda v: (v.item,))

    # -- the queue ----------------------------------------------------------------

    def next(self, slug: str, name: str, kind: str) -> Next:
        """The item ``name`` should annotate next, claimed for the project's lease.

        Someone who holds a live claim gets it back (a retried request claims nothing
        more); otherwise the item with the fewest annotations, then the fewest live
        claims, then the first registered, among those with a free slot that they
        never had. Lapsed leases are marked expired on the way.
        """
        if kind == "service":
            raise Forbidden(
                "The queue hands items to people; service accounts write their annotations "
                "(predictions) directly."
            )
        now = self.clock()
        with self.store.transaction() as s:
            project = _project(s, slug)
            self._lock(s, project.id)
            me = require_account(s, name).id
            params = {"in_project": project.id, "now": now, "me": me, "name": name}
            expired = s.execute(_EXPIRE, params).rowcount
            held = s.execute(_HELD_BY_ME, params).first()
            if held is not None:
                view = ClaimView(held.item, held.data, held.expires_at)
                return Next(view, renewed=True, expired=expired)
            row = s.execute(_CANDIDATE, {**params, "overlap": project.overlap}).first()
            if row is None:
                return Next(None, renewed=False, expired=expired)
            expires = now + timedelta(minutes=project.lease_minutes)
            s.add(
                Claim(
                    project_id=project.id,
                    item_id=row.id,
                    item=row.item,
                    account_id=me,
                    state="claimed",
                    claimed_at=now,
                    expires_at=expires,
                )
            )
        return Next(ClaimView(row.item, row.data, expires), renewed=False, expired=expired)

    def release(self, slug: str, item: str, name: str) -> None:
        """Give a live claim back: the slot is free at once (for others: nobody gets
        an item twice)."""
        check_item(item)
        now = self.clock()
        with self.store.transaction() as s:
            project = _project(s, slug)
            self._lock(s, project.id)
            me = require_account(s, name).id
            params = {"in_project": project.id, "now": now, "me": me}
            held = s.execute(_HELD_BY_ME.where(Claim.item == item), params).first()
            claim = None if held is None else s.get(Claim, held.id)
            if claim is None:
                raise NotFound(
                    f"You hold no claim on item {item!r} in project {slug!r}: it lapsed, "
                    "you released it, or your annotation completed it."
                )
            claim.state = "released"

    # -- reports ------------------------------------------------------------------

    def progress(self, slug: str) -> Progress:
        """Per annotator their annotations of registered items and their live claims;
        the items by their number of annotations."""
        now = self.clock()
        with self.store.transaction(readonly=True) as s:
            project = _project(s, slug)
            params = {"in_project": project.id, "now": now}
            counts = [(row.id, row.done) for row in s.execute(_COUNTED_ITEMS, params)]
            done = s.execute(
                select(Annotation.owner, func.count())
                .join(
                    Item,
                    and_(Item.project_id == Annotation.project_id, Item.item == Annotation.item),
                )
                .where(Annotation.project_id == project.id, _counted(Annotation))
                .group_by(Annotation.owner)
            ).all()
            claimed = s.execute(
                select(Account.name, func.count())
                .select_from(Claim)
                .join(Account, Account.id == Claim.account_id)
                .where(Claim.project_id == project.id, _live(Claim))
                .group_by(Account.name),
                params,
            ).all()
            workers = s.scalars(
                select(Account.name)
                .join(Membership, Membership.account_id == Account.id)
                .where(
                    Membership.project_id == project.id,
                    Membership.role.in_(("annotator", "admin")),
                    ~Account.name.startswith(SERVICE_PREFIX),
                )
            ).all()
        by_count = Counter(count for _, count in counts)
        done_by, claimed_by = dict(done), dict(claimed)
        names = sorted(set(workers) | set(done_by) | set(claimed_by))
        return Progress(
            items=len(counts),
            overlap=project.overlap,
            complete=sum(n for count, n in by_count.items() if count >= project.overlap),
            items_by_annotations=dict(sorted(by_count.items())),
            annotators=[
                {"name": n, "done": done_by.get(n, 0), "claimed": claimed_by.get(n, 0)}
                for n in names
            ],
        )

    def annotations_of(self, slug: str) -> Iterator[tuple[str, str, object]]:
        """(item, owner, data) of every live annotation of people in the project, for
        `agreement.agreement`."""
        with self.store.transaction(readonly=True) as s:
            project = _project(s, slug)
            rows = s.execute(
                select(Annotation.item, Annotation.owner, Annotation.data).where(
                    Annotation.project_id == project.id, _counted(Annotation)
                )
            ).all()
        for item, owner, data in rows:
            yield item, owner, json.loads(data)

    def _lock(self, s: Session, project_id: int) -> None:
        """The claims of one project take turns (SQLite: BEGIN IMMEDIATE did it)."""
        if self.store.engine.dialect.name == "postgresql":
            s.execute(select(func.pg_advisory_xact_lock(_QUEUE_LOCK, project_id)))


def _chunks(values: list, size: int = 500) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
