"""Password hashing (Argon2id) and the password policy."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import InvalidInput

MAX_LENGTH = 1024

# Argon2id with RFC 9106's low-memory costs (t=3, m=64 MiB), well above OWASP's minimum
# (t=2, m=19 MiB). One lane (p=1) instead of four: an attacker parallelises anyway,
# and one hash then keeps to one core, so logins cannot take the CPU from the API.
_hasher = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=1)


@cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist or has no password, so an
    unknown name costs the same time as a wrong password. Made at first use: importing
    the core hashes nothing."""
    return _hasher.hash("no account has this password, it only burns time")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; always does one full Argon2 verification."""
    # No stored password is longer than MAX_LENGTH, so a cut one still fails, and a
    # megabyte of input costs no more than a normal guess.
    password = password[: MAX_LENGTH + 1]
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and bool(stored_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


@cache
def common_passwords() -> frozenset[str]:
    path = Path(__file__).with_name("common_passwords.txt")
    return frozenset(line.strip().lower() for line in path.read_text().splitlines() if line.strip())


def check_policy(password: str, username: str, min_length: int) -> None:
    """Raise InvalidInput with a message that says how to fix the password."""
    if len(password) < min_length:
        raise InvalidInput(f"Password is too short: use at least {min_length} characters.")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"Password is too long: use at most {MAX_LENGTH} characters.")
    if password.strip().lower() == username.lower():
        raise InvalidInput("Password must not be the same as the username.")
    if password.lower() in common_passwords():
        raise InvalidInput(
            "This password is on a list of commonly used passwords: choose another one."
        )


def check_confirmed(password: str, confirm: str) -> None:
    """The "type it again" field of a form must match."""
    if password != confirm:
        raise InvalidInput("The two new passwords do not match: type the same one twice.")
