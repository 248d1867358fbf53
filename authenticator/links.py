"""Signed one-time links (setup, invitation, password reset) with PyJWT.

A link names its account, the account's ``credential_version`` and ``link_generation``
at issue time, and a stamp of that one account (``acct``, see
``accounts.account_stamp``). Setting a password bumps the version, so a link dies once
used, once the password changes any other way, or at expiry: no table of used links is
needed. Issuing a link, deactivating the account and revoking its links bump the
generation, so only the newest link works and none outlives a revocation. The stamp
kills a link when its account is deleted, even if an account of the same name (whose
counters start at 0 again) is created later.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import jwt

from .errors import LinkError

# Where a link is opened, under the hub prefix (handlers.passwords.SetPasswordHandler).
SET_PASSWORD_PATH = "annotations/set-password"  # noqa: S105 - a URL path, not a secret


def link_url(token: str, hub_url: str) -> str:
    """The one-time URL for a link token, under ``hub_url`` (ending in ``/``)."""
    return f"{hub_url}{SET_PASSWORD_PATH}?{urlencode({'token': token})}"


AUDIENCE = "jupyterhub-annotations/link"
PURPOSES = ("setup", "invite", "reset")
_ALGORITHM = "HS256"


@dataclass(frozen=True)
class LinkClaims:
    name: str
    purpose: str
    version: int
    account: str
    generation: int


def load_or_create_secret(path: Path) -> bytes:
    """The signing key kept in ``path`` (mode 0600), generated on first use."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(64)
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: when two processes race, the loser reads the winner's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return key


class LinkSigner:
    def __init__(self, key: bytes, lifetime: timedelta) -> None:
        if len(key) < 32:
            raise ValueError("the link signing secret must be at least 32 bytes")
        self._key = key
        self.lifetime = lifetime

    def issue(self, name: str, purpose: str, version: int, account: str, generation: int) -> str:
        """A link token for ``name``; ``account`` is the stamp of that very account."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown link purpose {purpose!r}")
        now = datetime.now(UTC)
        claims = {
            "sub": name,
            "purpose": purpose,
            "ver": version,
            "acct": account,
            "gen": generation,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + self.lifetime,
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def verify(self, token: str) -> LinkClaims:
        """Check signature, audience and expiry; the caller checks version and account."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                audience=AUDIENCE,
                options={"require": ["sub", "exp", "iat", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise LinkError("This link has expired. Ask an administrator for a new one.") from None
        except jwt.InvalidTokenError:
            raise LinkError(
                "This link is not valid: it may be incomplete or altered. "
                "Copy the whole link, or ask an administrator for a new one."
            ) from None
        purpose, account = claims.get("purpose"), claims.get("acct")
        version, generation = claims.get("ver"), claims.get("gen")
        # A link without the account stamp or the generation (issued before they
        # existed) could outlive its account or a revocation: refuse it like any other
        # malformed link.
        if (
            purpose not in PURPOSES
            or not all(type(n) is int for n in (version, generation))
            or not isinstance(account, str)
        ):
            raise LinkError("This link is not valid. Ask an administrator for a new one.")
        return LinkClaims(
            name=claims["sub"],
            purpose=purpose,
            version=version,
            account=account,
            generation=generation,
        )
