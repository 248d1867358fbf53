"""Signed one-time links (setup, invitation, password reset) with PyJWT.

A link names its account and the account's ``credential_version`` at issue time.
Setting a password bumps that version, so a link dies once used, once the password
changes any other way, or at expiry: no table of used links is needed.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from .errors import LinkError

AUDIENCE = "jupyterhub-annotations/link"
PURPOSES = ("setup", "invite", "reset")
_ALGORITHM = "HS256"


@dataclass(frozen=True)
class LinkClaims:
    name: str
    purpose: str
    version: int


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

    def issue(self, name: str, purpose: str, version: int) -> str:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown link purpose {purpose!r}")
        now = datetime.now(UTC)
        claims = {
            "sub": name,
            "purpose": purpose,
            "ver": version,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + self.lifetime,
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def verify(self, token: str) -> LinkClaims:
        """Check signature, audience and expiry; the caller checks the version."""
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
        purpose, version = claims.get("purpose"), claims.get("ver")
        if purpose not in PURPOSES or not isinstance(version, int):
            raise LinkError("This link is not valid. Ask an administrator for a new one.")
        return LinkClaims(name=claims["sub"], purpose=purpose, version=version)
