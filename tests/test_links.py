"""Signed one-time links: signature, audience, expiry, and the signing key file."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from jupyterhub_annotations.authenticator import links
from jupyterhub_annotations.authenticator.errors import LinkError
from jupyterhub_annotations.authenticator.links import (
    AUDIENCE,
    LinkClaims,
    LinkSigner,
    load_or_create_secret,
)

KEY = b"k" * 32
HOUR = timedelta(hours=1)
STAMP = "0123456789abcdef"  # an account's stamp (accounts.account_stamp)


def signer(key: bytes = KEY, lifetime: timedelta = HOUR) -> LinkSigner:
    return LinkSigner(key, lifetime)


def refused_as_invalid(token: str, key: bytes = KEY) -> str:
    with pytest.raises(LinkError) as e:
        signer(key).verify(token)
    assert "not valid" in e.value.message
    assert "expired" not in e.value.message
    return e.value.message


def issued_at(monkeypatch, when: datetime) -> None:
    """Make LinkSigner.issue believe it is ``when``."""

    class Then(datetime):
        @classmethod
        def now(cls, tz=None):
            return when

    monkeypatch.setattr(links, "datetime", Then)


def claims(**changes) -> dict:
    """Valid link claims, with ``changes`` (a None value drops the claim)."""
    now = datetime.now(UTC)
    base = {"sub": "alice", "purpose": "reset", "ver": 0, "acct": STAMP, "gen": 0}
    base["aud"] = AUDIENCE
    base.update(iat=now, exp=now + HOUR)
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("purpose", ["setup", "invite", "reset"])
def test_issued_link_verifies_with_its_claims(purpose):
    token = signer().issue("alice", purpose, 3, STAMP, 2)
    assert signer().verify(token) == LinkClaims(
        name="alice", purpose=purpose, version=3, account=STAMP, generation=2
    )


def test_link_carries_audience_and_lifetime():
    token = signer(lifetime=timedelta(hours=2)).issue("alice", "reset", 0, STAMP, 0)
    claims = jwt.decode(token, KEY, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["exp"] - claims["iat"] == 2 * 3600


def test_link_with_lifetime_in_the_past_is_expired():
    token = signer(lifetime=timedelta(seconds=-1)).issue("alice", "reset", 0, STAMP, 0)
    with pytest.raises(LinkError) as e:
        signer().verify(token)
    assert "expired" in e.value.message
    assert "not valid" not in e.value.message
    assert "Ask an administrator for a new one" in e.value.message


def test_stale_link_is_refused_as_expired(monkeypatch):
    issued_at(monkeypatch, datetime.now(UTC) - HOUR - timedelta(minutes=1))
    token = signer().issue("alice", "invite", 0, STAMP, 0)
    with pytest.raises(LinkError, match="expired"):
        signer().verify(token)


def test_link_within_its_lifetime_is_accepted(monkeypatch):
    issued_at(monkeypatch, datetime.now(UTC) - HOUR + timedelta(minutes=1))
    token = signer().issue("alice", "invite", 0, STAMP, 0)
    assert signer().verify(token).name == "alice"


def test_link_with_tampered_signature_is_refused():
    token = signer().issue("alice", "reset", 0, STAMP, 0)
    head, body, sig = token.split(".")
    # A middle character: the last one may only carry padding bits.
    flipped = "A" if sig[10] != "A" else "B"
    refused_as_invalid(f"{head}.{body}.{sig[:10]}{flipped}{sig[11:]}")


def test_link_with_tampered_claims_is_refused():
    token = signer().issue("alice", "reset", 0, STAMP, 0)
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["sub"] = "admin"
    refused_as_invalid(f"{head}.{b64(payload)}.{sig}")


def test_link_signed_with_another_key_is_refused():
    token = signer(b"o" * 32).issue("alice", "reset", 0, STAMP, 0)
    refused_as_invalid(token)


def test_truncated_link_is_refused():
    token = signer().issue("alice", "reset", 0, STAMP, 0)
    refused_as_invalid(token[:-5])


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "..", "ey.ey.ey"])
def test_malformed_link_is_refused(token):
    refused_as_invalid(token)


def test_token_for_another_audience_is_refused():
    refused_as_invalid(jwt.encode(claims(aud="someone-else"), KEY, algorithm="HS256"))


def test_unsigned_token_is_refused():
    refused_as_invalid(jwt.encode(claims(), None, algorithm="none"))


def test_token_with_the_right_key_and_audience_is_accepted():
    # The control for the forged tokens above: the same recipe, properly signed.
    token = jwt.encode(claims(), KEY, algorithm="HS256")
    assert signer().verify(token) == LinkClaims(
        name="alice", purpose="reset", version=0, account=STAMP, generation=0
    )


@pytest.mark.parametrize("missing", ["sub", "exp", "iat", "aud"])
def test_signed_token_without_a_required_claim_is_refused(missing):
    refused_as_invalid(jwt.encode(claims(**{missing: None}), KEY, algorithm="HS256"))


@pytest.mark.parametrize(
    "changes",
    [
        {"purpose": "admin"},
        {"purpose": None},
        {"ver": "0"},
        {"ver": None},
        {"acct": None},
        {"acct": 7},
        {"gen": None},
        {"gen": True},
    ],
    ids=[
        "unknown-purpose",
        "no-purpose",
        "string-version",
        "no-version",
        "no-account-stamp",
        "number-account-stamp",
        "no-generation",
        "boolean-generation",
    ],
)
def test_signed_token_without_valid_purpose_version_account_or_generation_is_refused(changes):
    refused_as_invalid(jwt.encode(claims(**changes), KEY, algorithm="HS256"))


def test_unknown_purpose_is_refused_at_issue():
    with pytest.raises(ValueError, match="unknown link purpose"):
        signer().issue("alice", "admin", 0, STAMP, 0)


def test_key_shorter_than_32_bytes_is_refused():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        LinkSigner(b"k" * 31, HOUR)
    LinkSigner(b"k" * 32, HOUR)


def test_secret_file_is_created_private_and_reused(tmp_path):
    path = tmp_path / "state" / "annotations_link_secret"
    key = load_or_create_secret(path)
    assert len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key.hex()
    assert load_or_create_secret(path) == key
    # The key is usable by a signer.
    link = LinkSigner(key, HOUR)
    assert link.verify(link.issue("a", "setup", 0, STAMP, 0)).name == "a"


def test_existing_secret_file_is_read_not_replaced(tmp_path):
    path = tmp_path / "annotations_link_secret"
    path.write_text(("ab" * 40) + "\n")
    assert load_or_create_secret(path) == bytes.fromhex("ab" * 40)
    assert path.read_text() == ("ab" * 40) + "\n"


def test_secret_files_in_different_places_hold_different_keys(tmp_path):
    assert load_or_create_secret(tmp_path / "a") != load_or_create_secret(tmp_path / "b")
