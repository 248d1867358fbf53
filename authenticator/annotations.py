"""Annotations: one owner's document per item of a project, versioned, never overwritten.

The owner is always the principal that writes (a project admin's import excepted), so
two people annotating the same item write two rows and cannot collide. The same owner
racing with itself is decided by the version: every write is one statement that
checks and bumps it, so of two writers holding the same version exactly one wins and
the other gets 412 with the current annotation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import Row, bindparam, case, exists, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from . import cursors
from .errors import (
    Conflict,
    Forbidden,
    ImportConflict,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    TooLarge,
)
from .models import Account, Annotation, Membership, Project, utcnow
from .store import Store
from .usernames import account_kind, normalize

_MAX_BYTES_TRAIT = "c.AnnotationAuthenticator.annotation_max_bytes"
_ITEM = re.compile(r"[A-Za-z0-9._:-]{1,256}")
# Rows per query of an export (`pages`): the biggest page a client may ask for.
EXPORT_PAGE = cursors.PAGE_MAX
# Roles that read every annotation of their project whatever its settings.
_READS_ALL = ("viewer", "admin")
# Roles whose members may own annotations.
_WRITES = ("annotator", "admin")


def check_item(item: str) -> None:
    if not isinstance(item, str) or not _ITEM.fullmatch(item):
        raise InvalidInput(f"Invalid item name {item!r}: use 1 to 256 letters, digits and . _ : -")


def sees_others(role: str | None, share_annotations: bool, show_others: bool) -> bool:
    """Whether a reader with ``role`` in a project (hub admins: "admin") sees other
    people's annotations: viewers and admins always; annotators when the project
    shares annotations and they have not switched ``show_others`` off."""
    if role in _READS_ALL:
        return True
    return role == "annotator" and share_annotations and show_others


def json_text(data: object, where: str, max_bytes: int, advice: str) -> str:
    """``data`` as compact JSON text, or a 400 naming ``where`` when it is no JSON, or
    a 413 with ``advice`` when it is over ``max_bytes`` (encoded once, for both checks)."""
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise InvalidInput(f"{where} must be JSON: NaN and Infinity are not.") from None
    except RecursionError:
        raise InvalidInput(f"{where} is nested too deeply: flatten it.") from None
    try:
        size = len(text.encode())
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") parses but is no text
        raise InvalidInput(
            f"{where} has an unpaired surrogate (like \\ud800) in a string: send valid Unicode."
        ) from None
    if size > max_bytes:
        raise TooLarge(f"{where} is over {max_bytes} bytes as JSON: {advice}")
    return text


def check_own(writer: str, owner: str) -> None:
    """A person writes only under their own name."""
    if owner != writer:
        raise Forbidden(
            f"You can only write your own annotations (owner {writer!r}), not {owner!r}'s; "
            "project admins write for others with the import."
        )


@dataclass(frozen=True)
class AnnotationView:
    project: str
    item: str
    owner: str
    data: str  # JSON text, spliced into responses as it is stored
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    def as_json(self) -> dict:
        return {**self.__dict__, "data": json.loads(self.data), **self._times()}

    def json_text(self) -> str:
        """The JSON of ``as_json`` without decoding and re-encoding ``data``."""
        head = {k: v for k, v in self.__dict__.items() if k != "data"}
        meta = json.dumps({**head, **self._times()})
        return f'{meta[:-1]}, "data": {self.data}}}'

    def _times(self) -> dict:
        return {
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class Page:
    views: list[AnnotationView]
    next: str | None  # the cursor of the next page


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int

    def as_json(self) -> dict:
        return {"imported": self.created + self.updated, **self.__dict__}


_RETURNED = (
    Annotation.item,
    Annotation.owner,
    Annotation.data,
    Annotation.version,
    Annotation.created_at,
    Annotation.updated_at,
)

# The statements of every request, built once with parameters: building a statement
# costs several times more than SQLite takes to run it.
_KEY = (
    Annotation.project_id
    == select(Project.id).where(Project.slug == bindparam("slug")).scalar_subquery(),
    Annotation.item == bindparam("key_item"),
    Annotation.owner == bindparam("key_owner"),
)
_GET = select(*_RETURNED, Annotation.owner_id).where(*_KEY, Annotation.deleted_at.is_(None))
_CURRENT = select(*_RETURNED, Annotation.owner_id, Annotation.deleted_at).where(*_KEY)
_READS_OTHERS = (
    select(Project.share_annotations, Project.blind, Membership.show_others)
    .outerjoin(
        Membership,
        (Membership.project_id == Project.id)
        & (
            Membership.account_id
            == select(Account.id).where(Account.name == bindparam("reader")).scalar_subquery()
        ),
    )
    .where(Project.slug == bindparam("slug"))
)
_MINE = aliased(Annotation)
# Blind projects: the reader's own annotation of the row's item, live (SPEC 17).
_WROTE_THE_ITEM = exists().where(
    _MINE.project_id == Annotation.project_id,
    _MINE.item == Annotation.item,
    _MINE.owner == bindparam("reader"),
    _MINE.owner_id.is_not(None),
    _MINE.deleted_at.is_(None),
)
_HAS_OWN = select(_MINE.id).where(
    _MINE.project_id == _KEY[0].right,
    _MINE.item == bindparam("key_item"),
    _MINE.owner == bindparam("reader"),
    _MINE.owner_id.is_not(None),
    _MINE.deleted_at.is_(None),
)
_CHANGE = (
    update(Annotation)
    .where(*_KEY, Annotation.owner_id.is_not(None), Annotation.deleted_at.is_(None))
    .values(data=bindparam("text"), version=Annotation.version + 1, updated_at=bindparam("now"))
    .returning(*_RETURNED)
)
_CHANGES = {False: _CHANGE, True: _CHANGE.where(Annotation.version == bindparam("expected"))}


@cache
def _page_statement(own_only: bool, by_item: bool, by_owner: bool, after: bool, blind: bool):
    """The page query for one combination of filters (32 at most, each built once)."""
    query = select(*_RETURNED).where(_KEY[0], Annotation.deleted_at.is_(None))
    if own_only:  # a deleted account's annotations are not a namesake's own
        query = query.where(Annotation.owner_id.is_not(None))
    if blind:  # others' annotations only of the items the reader has annotated
        own = (Annotation.owner == bindparam("reader")) & Annotation.owner_id.is_not(None)
        query = query.where(own | _WROTE_THE_ITEM)
    if by_item:
        query = query.where(_KEY[1])
    if by_owner:
        query = query.where(_KEY[2])
    if after:
        position = (bindparam("after_item"), bindparam("after_owner"))
        query = query.where(tuple_(Annotation.item, Annotation.owner) > tuple_(*position))
    return query.order_by(Annotation.item, Annotation.owner).limit(bindparam("limit"))


def _delete_statement(owner_only: bool, versioned: bool):
    query = (
        update(Annotation)
        .where(*_KEY, Annotation.deleted_at.is_(None))
        .values(
            data=None,
            deleted_at=bindparam("now"),
            updated_at=bindparam("now"),
            version=Annotation.version + 1,
        )
        .returning(Annotation.version)
    )
    if owner_only:  # an orphan (deleted account) is read-only but for project admins
        query = query.where(Annotation.owner_id.is_not(None))
    if versioned:
        query = query.where(Annotation.version == bindparam("expected"))
    return query


_DELETES = {(o, v): _delete_statement(o, v) for o in (False, True) for v in (False, True)}


def _upsert_statement(insert: Callable, create_only: bool):
    """Insert, or bump the existing row, in one statement (no read-then-write race).

    A tombstone comes back to life with the next version; an orphan (its account
    deleted) is never written; ``create_only`` writes only where nothing lives.
    """
    values = insert(Annotation).values(
        project_id=_KEY[0].right,
        item=bindparam("key_item"),
        owner=bindparam("key_owner"),
        owner_id=select(Account.id).where(Account.name == bindparam("key_owner")).scalar_subquery(),
        data=bindparam("text"),
        version=1,
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    writable = Annotation.owner_id.is_not(None)
    if create_only:
        writable &= Annotation.deleted_at.is_not(None)
    return values.on_conflict_do_update(
        index_elements=["project_id", "item", "owner"],
        set_={
            "data": values.excluded.data,
            "version": Annotation.version + 1,
            "updated_at": values.excluded.updated_at,
            "created_at": case(
                (Annotation.deleted_at.is_(None), Annotation.created_at),
                else_=values.excluded.created_at,
            ),
            "deleted_at": None,
        },
        where=writable,
    ).returning(*_RETURNED)


def _view(slug: str, row: Row) -> AnnotationView:
    return AnnotationView(
        project=slug,
        item=row.item,
        owner=row.owner,
        data=row.data,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class Annotations:
    def __init__(
        self,
        store: Store,
        max_bytes: int = 1 << 20,
        import_max_records: int = 10_000,
        clock: Callable[[], datetime] = utcnow,
        is_admin: Callable = lambda account: account.admin,
    ) -> None:
        """``is_admin``: whether an account (its ``name`` and ``admin`` flag) is a hub
        admin, who may own annotations in every project."""
        self.store = store
        self.is_admin = is_admin
        self.max_bytes = max_bytes
        self.import_max_records = import_max_records
        self.clock = clock
        insert = {"sqlite": sqlite, "postgresql": postgresql}[store.engine.dialect.name].insert
        self._upserts = {flag: _upsert_statement(insert, flag) for flag in (False, True)}

    def encode(self, data: object, where: str = "'data'") -> str:
        """``data`` as compact JSON text, within the size cap."""
        advice = "split it, or ask an admin to raise " + _MAX_BYTES_TRAIT + "."
        return json_text(data, where, self.max_bytes, advice)

    # -- reading ----------------------------------------------------------------

    def reads_others(self, slug: str, reader: str, role: str | None) -> bool:
        """Whether ``reader`` (with ``role`` in ``slug``) sees others' annotations there."""
        return self._visibility(slug, reader, role)[0]

    def _visibility(self, slug: str, reader: str, role: str | None) -> tuple[bool, bool]:
        """Whether ``reader`` sees others' annotations, and whether only of the items
        they have annotated themselves (a blind project, for annotators)."""
        if role in _READS_ALL:
            return True, False  # decided without a query
        with self.store.reading() as conn:
            row = conn.execute(_READS_OTHERS, {"reader": reader, "slug": slug}).first()
        if row is None:
            return False, False
        return sees_others(role, row.share_annotations, bool(row.show_others)), row.blind

    def get(
        self, slug: str, item: str, owner: str, reader: str, role: str | None
    ) -> AnnotationView:
        """One annotation; others' only where the reader sees them (404 otherwise, no leak)."""
        check_item(item)
        missing = NotFound(f"There is no annotation of {owner!r} on item {item!r}.")
        params = {"slug": slug, "key_item": item, "key_owner": owner, "reader": reader}
        with self.store.reading() as conn:
            row = conn.execute(_GET, params).first()
        if row is None:
            raise missing
        # A deleted account's annotation is nobody's own, not even a namesake's.
        if owner == reader and row.owner_id is not None:
            return _view(slug, row)
        others, blind = self._visibility(slug, reader, role)
        if not others:
            raise missing
        if blind:
            with self.store.reading() as conn:
                if conn.execute(_HAS_OWN, params).first() is None:
                    raise missing
        return _view(slug, row)

    def page(
        self,
        slug: str,
        reader: str,
        role: str | None,
        item: str | None = None,
        owner: str | None = None,
        cursor: str | None = None,
        limit: int = cursors.PAGE_SIZE,
    ) -> Page:
        """One page of the annotations ``reader`` sees, in (item, owner) order."""
        if item is not None:
            check_item(item)
        cursors.check_limit(limit)
        after = cursors.decode(cursor, str, str) if cursor else None
        others, blind = self._visibility(slug, reader, role)
        own_only = not others
        if own_only:
            if owner not in (None, reader):
                return Page([], None)  # the others are not there for this reader
            owner = reader
        query = _page_statement(
            own_only, item is not None, owner is not None, bool(after), blind and others
        )
        params = {"slug": slug, "key_item": item, "key_owner": owner, "limit": limit + 1}
        params["reader"] = reader
        if after:
            params["after_item"], params["after_owner"] = after
        with self.store.reading() as conn:
            rows = conn.execute(query, params).all()
        views = [_view(slug, row) for row in rows]
        return Page(*cursors.cut(views, limit, lambda view: (view.item, view.owner)))

    def pages(self, slug: str, reader: str, role: str | None, **filters) -> Iterator[list]:
        """Every page, one query each: an export holds one page in memory at a time."""
        cursor = filters.pop("cursor", None)
        while True:
            page = self.page(slug, reader, role, cursor=cursor, limit=EXPORT_PAGE, **filters)
            yield page.views
            if page.next is None:
                return
            cursor = page.next

    # -- writing ------------------------------------------------------------------

    def put(
        self,
        slug: str,
        item: str,
        owner: str,
        data: object,
        writer: str,
        if_match: int | str | None = None,
        create_only: bool = False,
    ) -> tuple[AnnotationView, bool]:
        """Write ``writer``'s own annotation; returns it and whether it was created.

        ``if_match``: the version the writer last saw (or "*": it must exist);
        ``create_only``: it must not exist. A lost condition is a 412 with the
        current annotation.
        """
        check_item(item)
        check_own(writer, owner)
        params = {"slug": slug, "key_item": item, "key_owner": owner, "text": self.encode(data)}
        params["now"] = self.clock()
        with self.store.one_statement() as conn:
            if if_match is None:
                row = self._upsert(conn, params, create_only)
            else:
                statement = _CHANGES[if_match != "*"]
                row = conn.execute(statement, {**params, "expected": if_match}).first()
            if row is None:
                self._refuse(conn, params, if_match, create_only)
        return _view(slug, row), row.created_at == row.updated_at

    def delete(
        self,
        slug: str,
        item: str,
        owner: str,
        deleter: str,
        role: str | None,
        if_match: int | str | None = None,
    ) -> int:
        """Delete (leave a tombstone); the owner, or a project admin. Returns its version."""
        check_item(item)
        if role != "admin":
            check_own(deleter, owner)
        params = {"slug": slug, "key_item": item, "key_owner": owner, "now": self.clock()}
        statement = _DELETES[role != "admin", if_match not in (None, "*")]
        with self.store.one_statement() as conn:
            version = conn.execute(statement, {**params, "expected": if_match}).scalar()
            if version is None:
                self._refuse(conn, params, if_match, create_only=False)
        return version

    def import_batch(self, slug: str, records: object, importer: str, role: str | None):
        """Write a batch at once or not at all; the first bad record names its index.

        A record may be owned by someone else only when a project admin imports it,
        and only by someone who may write in the project (SPEC 13: no forged owners).
        A record replaces an existing annotation only when it names the ``version`` it
        replaces, as ``If-Match`` does; otherwise (or on a stale version) the whole
        batch is a 412 listing every conflicting record, and nothing is written.
        """
        if not isinstance(records, list) or not records:
            raise InvalidInput("'annotations' must be a non-empty list of records.")
        if len(records) > self.import_max_records:
            raise TooLarge(
                f"{len(records)} records are over the limit of {self.import_max_records} "
                "per import: split the batch."
            )
        parsed = [self._parse_record(i, r, importer, role) for i, r in enumerate(records)]
        seen: dict[tuple[str, str], int] = {}
        for i, (item, owner, _, _) in enumerate(parsed):
            first = seen.setdefault((item, owner), i)
            if first != i:
                raise InvalidInput(
                    f"Record {i}: item {item!r} of {owner!r} is also record {first}; "
                    "send each annotation once."
                )
        created = 0
        conflicts = []
        now = self.clock()
        with self.store.transaction(changes_access=False) as s:
            self._check_owners(s, slug, [owner for _, owner, _, _ in parsed], importer)
            conn = s.connection()
            # Rows are locked in key order, whatever the batch's order: two imports over
            # the same annotations then queue behind each other instead of deadlocking.
            in_key_order = sorted(enumerate(parsed), key=lambda record: record[1][:2])
            for i, (item, owner, text, version) in in_key_order:
                params = {
                    "slug": slug,
                    "key_item": item,
                    "key_owner": owner,
                    "text": text,
                    "now": now,
                }
                if version is None:  # create only: an annotation that lives is kept
                    row = self._upsert(conn, params, create_only=True)
                else:
                    row = conn.execute(_CHANGES[True], {**params, "expected": version}).first()
                if row is None:
                    current = conn.execute(_CURRENT, params).first()
                    if current is not None and current.owner_id is None:
                        raise Conflict(
                            f"Record {i}: the annotation of {owner!r} on item {item!r} belongs "
                            "to a deleted account and is read-only."
                        )
                    live = current is not None and current.deleted_at is None
                    conflicts.append(
                        {
                            "record": i,
                            "item": item,
                            "owner": owner,
                            "version": current.version if live else None,
                        }
                    )
                    continue
                created += row.created_at == row.updated_at
            if conflicts:
                raise ImportConflict(sorted(conflicts, key=lambda c: c["record"]))
        return ImportResult(created=created, updated=len(parsed) - created)

    def _check_owners(self, s, slug: str, owners: list[str], importer: str) -> None:
        """Every owner but the importer (whose right the route checked) must be an
        account that may write in ``slug``: a hub admin, or an annotator or admin member."""
        others = set(owners) - {importer}
        if not others:
            return
        project_id = select(Project.id).where(Project.slug == slug).scalar_subquery()
        rows = s.execute(
            select(Account.name, Account.admin, Membership.role)
            .outerjoin(
                Membership,
                (Membership.account_id == Account.id) & (Membership.project_id == project_id),
            )
            .where(Account.name.in_(others))
        ).all()
        found = {row.name: row for row in rows}
        for i, owner in enumerate(owners):
            if owner == importer:
                continue
            row = found.get(owner)
            if row is None:
                raise InvalidInput(f"Record {i}: there is no account named {owner!r}.")
            if self.is_admin(row) or row.role in _WRITES:
                continue
            why = (
                f"is not a member of project {slug!r}"
                if row.role is None
                else f"is a {row.role} of project {slug!r}"
            )
            raise Forbidden(
                f"Record {i}: {owner!r} {why}, so no annotation can be theirs: only its "
                "annotators and admins own annotations. Give them a role first."
            )

    def _parse_record(self, i: int, record: object, importer: str, role: str | None):
        if not isinstance(record, dict):
            raise InvalidInput(f"Record {i}: must be an object with 'item' and 'data'.")
        unknown = sorted(set(record) - {"item", "owner", "data", "version"})
        if unknown:
            raise InvalidInput(
                f"Record {i}: unknown fields {unknown}: use item, owner, data, version."
            )
        if "item" not in record or "data" not in record:
            raise InvalidInput(f"Record {i}: needs 'item' and 'data'.")
        try:
            check_item(record["item"])
            owner = record.get("owner", importer)
            if not isinstance(owner, str):
                raise InvalidInput("'owner' must be a string.")
            owner = normalize(owner)
            account_kind(owner)  # a name an account can have, or InvalidInput
            if owner != importer and role != "admin":
                raise InvalidInput(
                    f"owner {owner!r} is not you: only project admins import on behalf of others."
                )
            version = record.get("version")
            if version is not None and (type(version) is not int or not 1 <= version < 2**31):
                raise InvalidInput(
                    "'version' must be the whole number of the version the record replaces "
                    "(leave it out to create)."
                )
            return record["item"], owner, self.encode(record["data"]), version
        except (InvalidInput, TooLarge) as e:
            raise type(e)(f"Record {i}: {e.message}") from None

    def _upsert(self, conn: Connection, params: dict, create_only: bool) -> Row | None:
        """The upserted row, or None when nothing was written (see _upsert_statement)."""
        try:
            return conn.execute(self._upserts[create_only], params).first()
        except IntegrityError:  # the project went away under us
            raise NotFound(f"There is no project {params['slug']!r}.") from None

    def _refuse(self, conn: Connection, params: dict, if_match, create_only: bool) -> None:
        """Why a write touched nothing: 409 (read-only orphan), 412 (lost condition) or 404."""
        slug, item, owner = params["slug"], params["key_item"], params["key_owner"]
        row = conn.execute(_CURRENT, params).first()
        live = row is not None and row.deleted_at is None
        if row is not None and row.owner_id is None:
            raise Conflict(
                f"The annotation of {owner!r} on item {item!r} belongs to a deleted account "
                "and is read-only."
            )
        current = _view(slug, row).as_json() if live else None
        if create_only:
            raise PreconditionFailed(
                f"{owner!r} has an annotation on item {item!r} already (version "
                f"{row.version}): drop If-None-Match to change it.",
                current,
            )
        if if_match is None:
            raise NotFound(f"There is no annotation of {owner!r} on item {item!r}.")
        if not live:
            raise PreconditionFailed(
                f"There is no annotation of {owner!r} on item {item!r} to match If-Match: "
                "create it without If-Match, or with If-None-Match: *.",
                None,
            )
        raise PreconditionFailed(
            f"The annotation is at version {row.version}, not {if_match}: somebody (maybe "
            "you, elsewhere) changed it. Merge with 'current' and retry with If-Match: "
            f'"{row.version}".',
            current,
        )
