"""Username rules shared by the authenticator, the CLI and (later) the admin API."""

from __future__ import annotations

import re

from .errors import InvalidInput

MAX_LENGTH = 128
_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@+-]*")


def normalize(name: str) -> str:
    """JupyterHub's own normalisation: lower case (and no surrounding space)."""
    return name.strip().lower()


def is_reserved(name: str) -> bool:
    """Names with ``:`` belong to service accounts, ``__`` names to the system."""
    return ":" in name or name.startswith("__")


def check_username(name: str) -> None:
    """Raise InvalidInput unless ``name`` (already normalised) may name a person."""
    if is_reserved(name):
        raise InvalidInput(
            f"The name {name!r} is reserved: names with ':' are service accounts and "
            "names starting with '__' belong to the system."
        )
    if not 1 <= len(name) <= MAX_LENGTH or not _PATTERN.fullmatch(name):
        raise InvalidInput(
            "A username is 1 to 128 characters: lower-case letters, digits and . _ @ + -, "
            "starting with a letter or digit."
        )


SERVICE_PREFIX = "svc:"


def account_kind(name: str) -> str:
    """Check ``name`` (already normalised) as a person's or a service account's name.

    Returns ``"service"`` for ``svc:<name>`` and ``"user"`` otherwise.
    """
    if name.startswith(SERVICE_PREFIX):
        rest = name[len(SERVICE_PREFIX) :]
        if is_reserved(rest) or not _PATTERN.fullmatch(rest) or len(name) > MAX_LENGTH:
            raise InvalidInput(
                "A service account is named svc:<name>, where <name> is lower-case letters, "
                "digits and . _ @ + -, starting with a letter or digit."
            )
        return "service"
    check_username(name)
    return "user"
