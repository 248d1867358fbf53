"""The OpenAPI document (``share/openapi.yaml``), and the checks of request bodies
against the schemas it declares.

A handler's verb names its body's schema (``@requires(..., body="NewUser")``), so the
document is the one description of what a body may hold; `tests/test_openapi.py`
proves that every documented body is the one its handler checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError
from jupyterhub_annotations.authenticator.errors import InvalidInput
from jupyterhub_annotations.authenticator.paths import share_dir
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT = "openapi.yaml"
_URI = "urn:jupyterhub-annotations:openapi"
# The pattern of the document's strings that refuse NUL (PostgreSQL text holds none).
NO_NUL = r"^[^\x00]*$"
# What a type is called in a message.
_KINDS = {
    "string": "a string",
    "boolean": "true or false",
    "integer": "a whole number",
    "number": "a number",
    "array": "a list",
    "object": "a JSON object",
    "null": "null",
}
# Which of several errors of one place is told first.
_ORDER = {"type": 0, "additionalProperties": 1, "required": 2}


@cache
def load_document() -> dict:
    """The document as shipped, read and parsed once per process."""
    with (share_dir() / DOCUMENT).open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@cache
def body_validator(schema: str) -> Draft202012Validator:
    """A validator of ``#/components/schemas/<schema>`` (OpenAPI 3.1 schemas are JSON
    Schema 2020-12); KeyError for a schema the document does not declare."""
    document = load_document()
    if schema not in document["components"]["schemas"]:
        raise KeyError(f"share/{DOCUMENT} declares no schema {schema!r}")
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return Draft202012Validator(
        {"$ref": f"{_URI}#/components/schemas/{schema}"},
        registry=Registry().with_resource(_URI, resource),
    )


def check_body(body: Any, schema: str) -> None:
    """Raise InvalidInput, naming the field and what it must be, unless ``body``
    matches ``schema``; of several errors, the first in the body's order."""
    errors = sorted(
        body_validator(schema).iter_errors(body),
        key=lambda e: (len(e.absolute_path), _ORDER.get(e.validator, 9), str(e.absolute_path)),
    )
    if errors:
        raise InvalidInput(message(errors[0], _record_fields(schema)))


@cache
def _record_fields(schema: str) -> frozenset[str]:
    """The fields of ``schema`` that are lists of objects: a batch's records."""
    schemas = load_document()["components"]["schemas"]

    def resolved(node: dict) -> dict:
        while "$ref" in node:
            node = schemas[node["$ref"].rsplit("/", 1)[1]]
        return node

    properties = resolved(schemas[schema]).get("properties", {})
    return frozenset(
        name
        for name, node in properties.items()
        if resolved(resolved(node).get("items", {})).get("type") == "object"
    )


def field_name(path: Sequence[str | int]) -> str:
    """``['annotations', 2, 'owner']`` -> ``'annotations[2].owner'``."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else part
    return repr(name)


def message(error: ValidationError, record_fields: frozenset[str] = frozenset()) -> str:
    """What to fix, for the client; ``record_fields``: the body's lists of records,
    whose errors start with the record's index, as the import's other refusals do."""
    path = list(error.absolute_path)
    record = ""
    if len(path) >= 2 and path[0] in record_fields:
        record, path = f"Record {path[1]}: ", path[2:]
        whole = "The record"
    else:
        whole = "The body"
    return record + _what_is_wrong(error, field_name(path) if path else whole, path)


def _what_is_wrong(error: ValidationError, where: str, path: list) -> str:
    within = f" in {field_name(path)}" if path else ""
    rule, value, instance = error.validator, error.validator_value, error.instance
    if rule == "type":
        kinds = [value] if isinstance(value, str) else value
        return f"{where} must be {' or '.join(_KINDS[k] for k in kinds)}."
    if rule == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(instance) - set(allowed))
        return f"Unknown fields {unknown}{within}: allowed are {allowed}."
    if rule == "required":
        return f"Missing fields {[key for key in value if key not in instance]}{within}."
    if rule == "pattern" and value == NO_NUL:
        return f"{where} contains a NUL character (\\u0000): remove it."
    if rule == "pattern":
        return f"{where} must be {error.schema.get('description', 'valid').rstrip('.')}."
    if rule == "enum":
        return f"{where} must be one of {', '.join(map(str, value))}."
    if rule in ("minimum", "maximum"):
        low, high = error.schema.get("minimum"), error.schema.get("maximum")
        if low is not None and high is not None:
            return f"{where} must be {low} to {high}."
        return f"{where} must be at {'least' if rule == 'minimum' else 'most'} {value}."
    if rule == "minItems" and value == 1:
        return f"{where} must be a non-empty list."
    if rule == "minItems":
        return f"{where} must hold at least {value} items."
    # Not the validator's own message: it quotes the value, which may be large.
    return f"{where} does not match the API document ({rule}): see openapi.json."
