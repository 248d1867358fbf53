"""Argon2id hashing and the password policy."""

from __future__ import annotations

import argon2
import pytest
from jupyterhub_annotations.authenticator import passwords
from jupyterhub_annotations.authenticator.errors import InvalidInput

GOOD = "correct horse 4 annotations"


class CountingHasher:
    """Wraps the real hasher (whose ``__slots__`` forbid patching a method) to count."""

    def __init__(self, real: argon2.PasswordHasher) -> None:
        self.real = real
        self.verified: list[str] = []

    def verify(self, stored_hash: str, password: str) -> bool:
        self.verified.append(stored_hash)
        return self.real.verify(stored_hash, password)

    def __getattr__(self, name: str):
        return getattr(self.real, name)


@pytest.fixture
def counting(monkeypatch) -> CountingHasher:
    hasher = CountingHasher(passwords._hasher)
    monkeypatch.setattr(passwords, "_hasher", hasher)
    return hasher


def test_hash_then_verify_accepts_the_same_password():
    stored = passwords.hash_password(GOOD)
    assert stored.startswith("$argon2id$")
    assert GOOD not in stored
    assert passwords.verify_password(stored, GOOD) is True


def test_wrong_password_is_refused():
    stored = passwords.hash_password(GOOD)
    assert passwords.verify_password(stored, GOOD + "!") is False
    assert passwords.verify_password(stored, GOOD.upper()) is False


def test_two_hashes_of_one_password_differ_by_salt():
    assert passwords.hash_password(GOOD) != passwords.hash_password(GOOD)


def test_garbage_hash_is_refused_not_raised():
    assert passwords.verify_password("not an argon2 hash", GOOD) is False


def test_missing_hash_is_refused():
    assert passwords.verify_password(None, GOOD) is False


def test_missing_hash_still_costs_one_argon2_verification(counting):
    assert passwords.verify_password(None, GOOD) is False
    assert counting.verified == [passwords._dummy_hash()]


def test_missing_hash_refuses_even_the_dummy_hash_password(counting):
    # The dummy hash's own password verifies against it, yet no account has it.
    phrase = "no account has this password, it only burns time"
    assert passwords.verify_password(None, phrase) is False
    assert counting.verified == [passwords._dummy_hash()]


@pytest.mark.parametrize("stored", [None, ""])
def test_empty_hash_refuses_the_dummy_hash_password(stored):
    phrase = "no account has this password, it only burns time"
    assert passwords.verify_password(stored, phrase) is False


def test_password_longer_than_the_maximum_never_matches(counting):
    stored = passwords.hash_password(GOOD)
    assert passwords.verify_password(stored, GOOD + "x" * 1_000_000) is False
    assert passwords.verify_password(stored, GOOD) is True


def test_real_hash_costs_exactly_one_verification(counting):
    stored = passwords.hash_password(GOOD)
    assert passwords.verify_password(stored, "wrong password 123") is False
    assert counting.verified == [stored]


def test_hash_with_weaker_parameters_needs_rehash():
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(GOOD)
    assert passwords.needs_rehash(weak) is True
    # Still verifies, so a login can upgrade it.
    assert passwords.verify_password(weak, GOOD) is True


def test_fresh_hash_needs_no_rehash():
    assert passwords.needs_rehash(passwords.hash_password(GOOD)) is False


def test_good_password_passes_policy():
    passwords.check_policy(GOOD, "alice", 10)


def test_password_of_exactly_min_length_passes_policy():
    passwords.check_policy("x7#kq9!mzr", "alice", 10)


def test_short_password_is_refused_with_the_minimum():
    with pytest.raises(InvalidInput) as e:
        passwords.check_policy("x7#kq9!mz", "alice", 10)
    assert "too short" in e.value.message
    assert "at least 10 characters" in e.value.message


def test_short_password_message_follows_the_configured_minimum():
    with pytest.raises(InvalidInput, match="at least 16 characters"):
        passwords.check_policy("fifteen chars!!", "alice", 16)


def test_long_password_is_refused_with_the_maximum():
    passwords.check_policy("a" * passwords.MAX_LENGTH, "alice", 10)
    with pytest.raises(InvalidInput) as e:
        passwords.check_policy("a" * (passwords.MAX_LENGTH + 1), "alice", 10)
    assert "too long" in e.value.message
    assert "at most 1024 characters" in e.value.message


@pytest.mark.parametrize("password", ["annotator1", "ANNOTATOR1", "Annotator1", " annotator1 "])
def test_password_equal_to_username_is_refused_ignoring_case(password):
    with pytest.raises(InvalidInput, match="must not be the same as the username"):
        passwords.check_policy(password, "Annotator1", 10)


@pytest.mark.parametrize("password", ["password123", "qwertyuiop", "PASSWORD123", "QwertyUiop"])
def test_common_password_is_refused(password):
    with pytest.raises(InvalidInput) as e:
        passwords.check_policy(password, "alice", 10)
    assert "commonly used passwords" in e.value.message
    assert "choose another one" in e.value.message
