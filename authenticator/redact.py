"""Secrets out of URLs and log lines (SPEC 13: no secret in a URL reaches the log).

JupyterHub scrubs its access log with a case-sensitive list; we match without regard to
case, in raw and percent-encoded queries alike (a ``next=`` that carries a URL carries
its query too), and every line of the hub log passes through `SecretFilter`.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Parameter names that carry secrets: JupyterHub's list, plus ours.
SECRET_WORDS = ("token", "auth", "key", "code", "state", "xsrf", "password", "secret")
_WORDS = "|".join(SECRET_WORDS)
# key=value in a query, raw (?token=x&) or percent-encoded once (%3Ftoken%3Dx%26).
_PARAM = re.compile(
    rf"(?i)((?:[?&;]|%3F|%26)[^=&\s%]*(?:{_WORDS})[^=&\s%]*(?:=|%3D))((?:(?!%26)[^&\s\"'<>])*)"
)
REDACTED = "[secret]"


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def redact(text: str) -> str:
    """``text`` with the value of every secret-looking URL parameter replaced."""
    return _PARAM.sub(lambda m: m.group(1) + REDACTED, text)


def without_secret_params(uri: str) -> str:
    """``uri`` without its secret-looking query parameters, for a ``next=`` to carry."""
    parts = urlsplit(uri)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    kept = [(k, v) for k, v in kept if not is_secret_name(k)]
    return urlunsplit(parts._replace(query=urlencode(kept)))


class SecretFilter(logging.Filter):
    """Redacts every record passing a handler; a record logged with
    ``extra={"shows_secret": True}`` is left whole (the first-run setup link, which the
    log must show)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "shows_secret", False):
            return True
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install(logger: logging.Logger, kind: type[logging.Filter] = SecretFilter) -> None:
    """Put a filter of ``kind`` (a `SecretFilter`) on every handler of ``logger`` (once
    each): handlers see the records of the loggers that propagate to it, Tornado's too."""
    for handler in logger.handlers:
        if not any(isinstance(f, kind) for f in handler.filters):
            handler.addFilter(kind())
