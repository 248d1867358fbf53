"""Pages and their cursors: one opaque format and one page size for every list.

A cursor is the URL-safe base64 of a JSON array holding the sort key of the last row
given out (strings, whole numbers). Clients pass it back as they got it; one that this
API did not give out (malformed, of another list, or holding a NUL no database
compares) is a 400 that says to start again.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import literal, tuple_

from .errors import InvalidInput

T = TypeVar("T")

PAGE_SIZE = 100
PAGE_MAX = 1000
# Whole numbers in cursors are row ids: PostgreSQL's integer.
_MAX_ID = 2**31 - 1


def check_limit(limit: int) -> None:
    if not 1 <= limit <= PAGE_MAX:
        raise InvalidInput(f"'limit' must be 1 to {PAGE_MAX}.")


def cut(
    rows: Sequence[T], limit: int | None, key: Callable[[T], tuple]
) -> tuple[list[T], str | None]:
    """The page in ``rows``, fetched with one row more than ``limit`` to tell whether
    another follows, and the cursor after it (None on the last page). ``limit`` None:
    ``rows`` is the whole list."""
    if limit is None:
        return list(rows), None
    page = list(rows[:limit])
    return page, encode(*key(page[-1])) if len(rows) > limit else None


def after(query, cursor: str | None, limit: int | None, *columns):
    """``query`` (a select ordered by ``columns``) from after the row ``cursor`` names,
    and one row more than ``limit`` (`cut` tells from it whether another page follows).
    The cursor holds one value per column, as `cut` encoded it."""
    if limit is not None:
        check_limit(limit)
        query = query.limit(limit + 1)
    if cursor is None:
        return query
    kinds = [int if column.type.python_type is int else str for column in columns]
    key = decode(cursor, *kinds)
    if len(columns) == 1:
        return query.where(columns[0] > key[0])
    return query.where(tuple_(*columns) > tuple_(*(literal(v) for v in key)))


def encode(*key: str | int) -> str:
    """The cursor after a row whose sort key is ``key``."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode(cursor: str, *kinds: type) -> tuple:
    """The sort key a cursor holds, one value of each of ``kinds`` (str or int)."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error, RecursionError):
        value = None
    if isinstance(value, list) and len(value) == len(kinds) and all(map(_fits, value, kinds)):
        return tuple(value)
    raise InvalidInput("The cursor is not one this API gave out: start again without it.")


def _fits(value: object, kind: type) -> bool:
    if kind is int:  # JSON true is a Python int too
        return type(value) is int and 0 <= value <= _MAX_ID
    return isinstance(value, str) and "\x00" not in value
