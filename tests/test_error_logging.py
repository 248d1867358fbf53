"""What our handlers log when something fails: never the secret a URL may carry."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

from jupyterhub_annotations.authenticator import redact
from jupyterhub_annotations.authenticator.errors import InvalidInput
from jupyterhub_annotations.authenticator.tokens import generate
from jupyterhub_annotations.handlers.base import AnnotationHandler
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from tests.hub import Hub

LINK_TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.c2lnbmF0dXJl"  # the shape of a link token


def handler_for(uri: str) -> SimpleNamespace:
    """The parts of a handler that `log_exception` uses, for a request to ``uri``."""
    line = RequestStartLine("GET", uri, "HTTP/1.1")
    request = HTTPServerRequest(start_line=line, headers=HTTPHeaders({"Host": "127.0.0.1"}))
    fake = SimpleNamespace(request=request, log=logging.getLogger("test.handler"))
    fake._request_summary = lambda: AnnotationHandler._request_summary(fake)
    fake.client_address = lambda: "127.0.0.1"
    return fake


def log_of(caplog, uri: str, error: Exception) -> str:
    fake = handler_for(uri)
    with caplog.at_level(logging.INFO):
        try:
            raise error
        except Exception as e:
            AnnotationHandler.log_exception(fake, type(e), e, e.__traceback__)
    return caplog.text


def test_an_uncaught_exception_on_a_link_url_does_not_log_the_link_token(caplog):
    uri = f"/hub/annotations/set-password?token={LINK_TOKEN}"
    text = log_of(caplog, uri, RuntimeError("database went away"))
    assert "Uncaught exception GET /hub/annotations/set-password" in text
    assert "database went away" in text  # the traceback is still there to debug
    assert LINK_TOKEN not in text


def test_a_secret_in_a_url_is_redacted_whatever_the_case_of_its_name(caplog):
    for key in ("TOKEN", "Access_Token", "token"):
        text = log_of(caplog, f"/hub/annotations/tokens?{key}={LINK_TOKEN}", RuntimeError("x"))
        assert f"{key}=[secret]" in text
        assert LINK_TOKEN not in text


def test_the_log_filter_redacts_every_line_but_the_first_run_link(caplog):
    logger = logging.getLogger("test.filtered")
    handler = logging.StreamHandler(stream := io.StringIO())
    logger.addHandler(handler)
    redact.install(logger)
    redact.install(logger)  # once per handler
    assert len(handler.filters) == 1
    logger.warning("302 GET /hub/x -> /hub/login?next=%s", f"%2Fx%3FToken%3D{LINK_TOKEN}")
    logger.warning("First run: %s", f"?token={LINK_TOKEN}", extra={"shows_secret": True})
    first, second = stream.getvalue().splitlines()
    assert LINK_TOKEN not in first and "%3FToken%3D[secret]" in first
    assert LINK_TOKEN in second
    logger.removeHandler(handler)


def test_a_domain_error_is_one_line_without_the_link_token(caplog):
    uri = f"/hub/annotations/set-password?token={LINK_TOKEN}"
    text = log_of(caplog, uri, InvalidInput("Passwords do not match."))
    assert "400 GET /hub/annotations/set-password" in text
    assert "Traceback" not in text
    assert LINK_TOKEN not in text


def test_the_log_scan_finds_real_tokens_and_ignores_lookalikes(tmp_path):
    """The check every end-to-end fixture runs on its hub log can fail."""
    real = generate()
    lookalike = f"anno_{'x' * 49}"  # the shape, not the checksum
    hub = Hub(tmp_path, "sqlite://")
    hub.log_path.write_text(f"GET /x {lookalike}\nsomething {real} leaked\n")
    assert hub.tokens_in_log() == [f"{real[:9]}..."]


def test_the_log_scan_finds_link_tokens_outside_the_first_run_message(tmp_path):
    link = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl"
    hub = Hub(tmp_path, "sqlite://")
    first_run = f"    http://127.0.0.1:8000/hub/annotations/set-password?token={link}"
    hub.log_path.write_text(f"[W] First run: set the password\n\n{first_run}\n")
    assert hub.link_tokens_in_log() == []
    hub.log_path.write_text(f"{first_run}\n[I] 302 GET /hub/x?TOKEN={link} (1.2.3.4)\n")
    assert hub.link_tokens_in_log() == ["eyJhbGciOiJI..."]


def test_the_log_scan_finds_tracebacks(tmp_path):
    hub = Hub(tmp_path, "sqlite://")
    hub.log_path.write_text(
        "[I] fine\n[E app] Uncaught exception GET /hub/x\n"
        "Traceback (most recent call last):\n  File ...\nKeyError: 1\n"
    )
    assert hub.tracebacks() == ["[E app] Uncaught exception GET /hub/x"]
    hub.log_path.write_text("[I] fine\n")
    assert hub.tracebacks() == []
