"""Page cursors: one opaque format for every paged list.

A cursor is the URL-safe base64 of a JSON array holding the sort key of the last row
given out (strings, whole numbers). Clients pass it back as they got it; one that this
API did not give out (malformed, of another list, or holding a NUL no database
compares) is a 400 that says to start again.
"""

from __future__ import annotations

import base64
import binascii
import json

from .errors import InvalidInput

# Whole numbers in cursors are row ids: PostgreSQL's integer.
_MAX_ID = 2**31 - 1


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
