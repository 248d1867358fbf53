"""Inter-annotator agreement of one field: Krippendorff's alpha, nominal level.

Answers ``GET projects/{slug}/agreement?field=/label``: how far the annotators of a
project agree beyond chance on the value at one JSON pointer (RFC 6901) in their
annotations. The arithmetic is the `krippendorff` library's, and pointers are resolved
by `jsonpointer`: both are well kept and tested against the published examples, so this
module only decides which annotations count and turns them into a reliability matrix.

Values are nominal: two values agree when their canonical JSON text is the same, so
strings, numbers, booleans, lists and objects all work, and ``true`` is not ``1``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import krippendorff
import numpy as np
from jsonpointer import EndOfList, JsonPointer, JsonPointerException

from .errors import InvalidInput

# A value at the pointer, as canonical JSON text, by owner, by item.
_Values = dict[str, dict[str, str]]

_MISSING = object()


@dataclass(frozen=True)
class Agreement:
    """Alpha over the items with at least two annotations that have the field.

    ``alpha`` is None when it is undefined, and ``reason`` then says why in words a user
    can act on; the counts are given either way, so a user sees how much data there is.
    """

    field: str  # the JSON pointer asked for
    alpha: float | None
    items: int  # items used: at least two annotations having the field
    annotators: int  # distinct annotators among the used annotations
    annotations: int  # annotations used
    reason: str | None

    def as_json(self) -> dict:
        return {
            "field": self.field,
            "alpha": self.alpha,
            "items": self.items,
            "annotators": self.annotators,
            "annotations": self.annotations,
            "reason": self.reason,
        }


def check_pointer(pointer: str) -> None:
    """Refuse a field that is not a JSON pointer, before any annotation is read."""
    _parse(pointer)


def agreement(pointer: str, annotations: Iterable[tuple[str, str, object]]) -> Agreement:
    """Krippendorff's alpha (nominal) of the value at ``pointer`` in ``annotations``:
    ``(item, owner, data)`` triples, ``data`` the decoded JSON of a live annotation, at
    most one per item and owner. An annotation without a value at the pointer is
    missing data; an item left with fewer than two annotations has nothing to compare
    and is not counted."""
    values = _pairable(_values(_parse(pointer), annotations))
    owners = sorted({owner for by_owner in values.values() for owner in by_owner})
    used = sum(len(by_owner) for by_owner in values.values())
    if not values:
        return Agreement(pointer, None, 0, 0, 0, _no_items(pointer))
    domain = sorted({value for by_owner in values.values() for value in by_owner.values()})
    alpha = _alpha(_matrix(values, owners, domain), domain)
    reason = None if alpha is not None else _one_value(pointer)
    return Agreement(pointer, alpha, len(values), len(owners), used, reason)


def _parse(pointer: str) -> JsonPointer:
    try:
        return JsonPointer(pointer)
    except JsonPointerException:
        raise InvalidInput(
            "'field' must be a JSON pointer into an annotation's data, like /label "
            "(/ before each name; inside a name write ~ as ~0 and / as ~1)."
        ) from None


def _values(pointer: JsonPointer, annotations: Iterable[tuple[str, str, object]]) -> _Values:
    values: _Values = {}
    seen: set[tuple[str, str]] = set()
    for item, owner, data in annotations:
        if (item, owner) in seen:  # the store's key is (item, owner): a caller's mistake
            raise ValueError(f"two annotations of item {item!r} by {owner!r}")
        seen.add((item, owner))
        value = _resolve(pointer, data)
        if value is not _MISSING:
            values.setdefault(item, {})[owner] = json.dumps(value, sort_keys=True)
    return values


def _resolve(pointer: JsonPointer, data: object) -> object:
    """The value at ``pointer`` in ``data``, or _MISSING. Steps only into objects and
    arrays, as JSON has it (older jsonpointer releases indexed into strings too:
    "/label/0" of "cat" was "c")."""
    for part in pointer.parts:
        if not isinstance(data, dict | list):
            return _MISSING
        try:
            data = pointer.walk(data, part)
        except JsonPointerException:
            return _MISSING
    # "-" names the place after an array's last element, where no value is.
    return _MISSING if isinstance(data, EndOfList) else data


def _pairable(values: _Values) -> _Values:
    """The items with two values or more, in item order (so the result does not depend
    on the order the annotations came in)."""
    return {item: values[item] for item in sorted(values) if len(values[item]) >= 2}


def _matrix(values: _Values, owners: list[str], domain: list[str]) -> np.ndarray:
    """The reliability matrix: one row per annotator, one column per item, holding the
    code of the annotator's value (its place in ``domain``), NaN where there is none."""
    code = {value: i for i, value in enumerate(domain)}
    row = {owner: i for i, owner in enumerate(owners)}
    matrix = np.full((len(owners), len(values)), np.nan)
    for column, by_owner in enumerate(values.values()):
        for owner, value in by_owner.items():
            matrix[row[owner], column] = code[value]
    return matrix


def _alpha(matrix: np.ndarray, domain: list[str]) -> float | None:
    """Alpha of ``matrix``, or None when only one value was given: expected disagreement
    is then zero, and alpha 0/0."""
    try:
        return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))
    except ValueError:
        # The library refuses a domain of one value with a ValueError; any other
        # ValueError is a bug here, not a property of the data.
        if len(domain) > 1:
            raise
        return None


def _no_items(pointer: str) -> str:
    return (
        f"no item has two or more annotations with a value at {json.dumps(pointer)}: "
        "agreement needs at least two annotators on an item"
    )


def _one_value(pointer: str) -> str:
    return (
        f"every annotation has the same value at {json.dumps(pointer)}: agreement is "
        "undefined when there is nothing to disagree on"
    )
