"""The client address: what the trusted proxies saw, never what the client wrote."""

from __future__ import annotations

import pytest
from jupyterhub_annotations.authenticator.addresses import client_address
from jupyterhub_annotations.authenticator.redact import redact, without_secret_params

PROXY = "127.0.0.1"


@pytest.mark.parametrize(
    ("forwarded_for", "hops", "expected"),
    [
        (None, 1, PROXY),  # straight to the hub: whoever connected
        ("203.0.113.5", 1, "203.0.113.5"),  # what our proxy appended
        ("6.6.6.6, 203.0.113.5", 1, "203.0.113.5"),  # a forged left part is ignored
        ("6.6.6.6,203.0.113.5", 1, "203.0.113.5"),
        ("6.6.6.6, 10.0.0.7, 203.0.113.5", 2, "10.0.0.7"),  # a front proxy appended 10.0.0.7
        ("203.0.113.5", 2, "203.0.113.5"),  # fewer hops than trusted: the leftmost
        ("6.6.6.6, 203.0.113.5", 0, PROXY),  # no proxy trusted
        ("::ffff:203.0.113.5", 1, "203.0.113.5"),  # IPv4-mapped IPv6 as IPv4
        ("2001:db8::1", 1, "2001:db8::1"),
        ("not an address", 1, PROXY),  # garbage where a proxy writes: the peer
    ],
)
def test_the_address_is_the_one_the_outermost_trusted_proxy_saw(forwarded_for, hops, expected):
    assert client_address(forwarded_for, PROXY, hops) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GET /x?token=abc&y=1", "GET /x?token=[secret]&y=1"),
        ("GET /x?TOKEN=abc", "GET /x?TOKEN=[secret]"),
        ("GET /x?y=1&Access_Token=abc", "GET /x?y=1&Access_Token=[secret]"),
        (
            "-> /hub/login?next=%2Fx%3Ftoken%3Dabc%26y%3D1",
            "-> /hub/login?next=%2Fx%3Ftoken%3D[secret]%26y%3D1",
        ),
        ("GET /x?_xsrf=abc", "GET /x?_xsrf=[secret]"),
        ("GET /x?next=/y", "GET /x?next=/y"),
    ],
)
def test_secret_parameters_are_redacted_whatever_their_case(line, expected):
    assert redact(line) == expected


def test_a_next_address_keeps_everything_but_the_secrets():
    assert without_secret_params("/a?TOKEN=1&x=2&auth_code=3") == "/a?x=2"
    assert without_secret_params("/a") == "/a"
