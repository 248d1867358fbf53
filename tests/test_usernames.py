"""Username normalisation and rules."""

from __future__ import annotations

import pytest
from jupyterhub_annotations.authenticator import usernames
from jupyterhub_annotations.authenticator.errors import InvalidInput


@pytest.mark.parametrize(
    ("raw", "normal"),
    [("Alice", "alice"), ("  Alice ", "alice"), ("\tBOB\n", "bob"), ("a.B-c", "a.b-c")],
)
def test_normalize_lowercases_and_strips(raw, normal):
    assert usernames.normalize(raw) == normal


@pytest.mark.parametrize("name", ["svc:x", "a:b", ":x", "x:", "__sys", "__", "__a:b"])
def test_reserved_names_are_refused_pointing_at_service_accounts(name):
    assert usernames.is_reserved(name)
    with pytest.raises(InvalidInput) as e:
        usernames.check_username(name)
    assert "reserved" in e.value.message
    assert "service accounts" in e.value.message
    assert repr(name) in e.value.message


@pytest.mark.parametrize("name", ["alice", "a__b", "a_"])
def test_double_underscore_is_reserved_only_at_the_start(name):
    assert not usernames.is_reserved(name)
    usernames.check_username(name)


@pytest.mark.parametrize(
    "name", ["alice", "a.b-c_d@x.org", "a+tag", "0day", "x", "a" * usernames.MAX_LENGTH]
)
def test_valid_names_pass(name):
    usernames.check_username(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a" * (usernames.MAX_LENGTH + 1),
        "Alice",
        "a b",
        "a/b",
        "a\\b",
        "alice\n",
        " alice",
        "-alice",
        ".alice",
        "_alice",
        "@x.org",
        "zoë",
        "a#b",
        "a%2fb",
    ],
)
def test_invalid_names_are_refused_with_the_rules(name):
    with pytest.raises(InvalidInput) as e:
        usernames.check_username(name)
    assert "1 to 128 characters" in e.value.message
    assert "lower-case letters, digits and . _ @ + -" in e.value.message
    assert "starting with a letter or digit" in e.value.message
