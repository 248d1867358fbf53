"""Base classes: one permission chokepoint (fail closed) and one error format per kind.

Every verb method declares what it needs with ``@requires(...)``; `prepare` resolves
the principal and calls `authorize` before the method runs. A method without a
declaration refuses everyone.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from http.client import responses
from typing import Any

from jupyterhub.handlers import BaseHandler
from jupyterhub.log import _scrub_uri
from tornado import web
from tornado.httputil import url_concat

from authenticator.errors import AnnotationError, InvalidInput, Unauthenticated
from authenticator.metrics import (
    CONFLICTS,
    REQUEST_SECONDS,
    TOKEN_AUTHENTICATIONS,
    route_family,
)
from authenticator.permissions import (
    PROJECT_PERMISSIONS,
    Principal,
    authorize,
    effective_role,
)
from authenticator.tokens import PREFIX as TOKEN_PREFIX
from authenticator.usernames import normalize

VERBS = ("get", "head", "post", "put", "patch", "delete", "options")


def requires(permission: str) -> Callable:
    """Declare the permission a handler method needs (checked in `prepare`)."""

    def declare(method: Callable) -> Callable:
        method.permission = permission
        return method

    return declare


def declared_permission(handler_class: type, verb: str) -> str | None:
    return getattr(getattr(handler_class, verb, None), "permission", None)


def implemented_verbs(handler_class: type) -> list[str]:
    """The verbs a handler class answers (not tornado's default 405)."""
    return [
        verb
        for verb in VERBS
        if getattr(handler_class, verb, None) is not getattr(web.RequestHandler, verb)
    ]


@functools.cache
def _verbs_of(handler_class: type) -> frozenset[str]:
    # Per class, once: `prepare` asks at every request.
    return frozenset(implemented_verbs(handler_class))


# One encoder for every response: json.dumps(..., default=str) builds a new one per call.
_JSON = json.JSONEncoder(default=str)


def bearer_token(header: str) -> str:
    """Our token from ``Authorization: Bearer|token <token>``.

    Any other credential there (JupyterHub's own API tokens included) is refused with
    401 rather than ignored, so a script learns what to send instead.
    """
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() not in ("bearer", "token") or not value:
        raise Unauthenticated("Send 'Authorization: Bearer <token>' with an annotation token.")
    if not value.startswith(TOKEN_PREFIX):
        raise Unauthenticated(
            "This is not an annotation token (JupyterHub's own API tokens are not accepted "
            "here): create one at /hub/annotations/tokens."
        )
    return value


_KINDS = {
    str: "a string",
    bool: "true or false",
    int: "a whole number",
    list: "a list",
    (list, type(None)): "a list or null",
}


def _no_constant(name: str) -> None:
    # Python's json reads NaN and Infinity; JSON has no such values.
    raise ValueError(name)


def _strings(value: Any) -> list[str]:
    """A field's text: a string, or the strings of a list of them."""
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _is_text(value: str) -> bool:
    """False for a string with a lone surrogate: JSON's "\\ud800" parses to one, and no
    database driver can store it."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _as_tuple(kind: type | tuple) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def no_store(handler: web.RequestHandler) -> None:
    """Keep the answer out of every cache: it shows a secret (a link, a token) once."""
    handler.set_header("Cache-Control", "no-store")


class AnnotationHandler(BaseHandler):
    # Pages take only the hub session; the API also takes our tokens.
    accepts_tokens = False
    principal: Principal | None = None
    # The caller's role in the project the route names (hub admins: "admin").
    project_role: str | None = None

    @property
    def accounts(self):
        return self.authenticator.accounts

    @property
    def projects(self):
        return self.authenticator.project_service

    async def prepare(self) -> None:
        verb = self.request.method.lower()
        header = self.request.headers.get("Authorization")
        if header is None or not self.accepts_tokens:
            await super().prepare()  # the hub resolves its cookie and checks XSRF
            self.principal = self.resolve_principal()
        else:
            # A token request skips the hub's cookie and XSRF work entirely.
            self._jupyterhub_user = None
            try:
                self.principal = self.authenticator.tokens.authenticate(bearer_token(header))
            except Unauthenticated:
                TOKEN_AUTHENTICATIONS.labels("refused").inc()
                raise
            TOKEN_AUTHENTICATIONS.labels("accepted").inc()
        if verb not in _verbs_of(type(self)):
            raise web.HTTPError(405)
        permission = declared_permission(type(self), verb)
        if any("\x00" in value for value in self.path_kwargs.values()):
            # No name, slug or item holds one, and PostgreSQL text cannot.
            raise InvalidInput("The address contains a NUL character (%00): remove it.")
        for key in ("name", "owner"):  # account names in URLs, as JupyterHub normalises them
            if key in self.path_kwargs:
                self.path_kwargs[key] = normalize(self.path_kwargs[key])
        slug = self.path_kwargs.get("slug")
        member_role, api_access = None, True
        if permission in PROJECT_PERMISSIONS and self.principal is not None:
            member_role, api_access = self.projects.access(slug, self.principal.name)
        try:
            authorize(self.principal, permission, member_role, slug, api_access)
        except Unauthenticated:
            self.refuse_anonymous()
        if self.principal is not None:
            self.project_role = effective_role(self.principal, member_role)

    def resolve_principal(self) -> Principal | None:
        """The active account behind the hub session, or None."""
        user = self.current_user
        account = self.accounts.get(user.name) if user is not None else None
        if account is None or not account.active:
            return None
        return Principal(
            name=account.name, admin=self.accounts.is_admin(account), kind=account.kind
        )

    def refuse_anonymous(self) -> None:
        raise NotImplementedError

    def on_finish(self) -> None:
        super().on_finish()
        status = self.get_status()
        family = route_family(self.request.path)
        REQUEST_SECONDS.labels(family, self.request.method, status).observe(
            self.request.request_time()
        )
        if status == 412:
            CONFLICTS.inc()

    def whole_number_argument(self, name: str, default: int) -> int:
        """A query argument that must be a whole number (ASCII digits: "²" is a digit too)."""
        value = self.get_argument(name, None)
        if value is None:
            return default
        if not (value.isascii() and value.isdigit() and len(value) <= 9):
            raise InvalidInput(f"{name!r} must be a whole number.")
        return int(value)

    def audit(self, action: str, target: str | None = None, **details: object) -> None:
        """Record a security event done by this request's principal (and log it)."""
        actor = self.principal.name if self.principal is not None else None
        self.authenticator.audit.record(
            action, actor, target=target, address=self.request.remote_ip, **details
        )

    def hub_url(self) -> str:
        """The hub prefix as the caller reached it (for links to hand over)."""
        return f"{self.request.protocol}://{self.request.host}{self.hub.base_url}"

    def _request_summary(self) -> str:
        # As JupyterHub's access log does: a token in the URL never reaches the log.
        return f"{self.request.method} {_scrub_uri(self.request.uri)} ({self.request.remote_ip})"

    def log_exception(self, typ, value, tb) -> None:
        # A domain error is the user's mistake, not ours: one line, no traceback.
        if isinstance(value, AnnotationError):
            # The database's own words for a 503 (no values: the engine hides them).
            cause = f" ({value.__cause__})" if value.status >= 500 and value.__cause__ else ""
            level = logging.WARNING if value.status >= 500 else logging.INFO
            summary = self._request_summary()
            self.log.log(level, "%d %s: %s%s", value.status, summary, value.message, cause)
        elif isinstance(value, web.HTTPError):
            super().log_exception(typ, value, tb)
        else:
            # Tornado's own line adds repr(request), whose raw URI can hold a link token.
            self.log.error(
                "Uncaught exception %s", self._request_summary(), exc_info=(typ, value, tb)
            )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], AnnotationError):
            error = exc_info[1]
            status_code = error.status
            self.set_status(status_code)
            # The standard phrase as the reason, so pages title "403 : Forbidden" and
            # show our message once, below it.
            http_error = web.HTTPError(status_code, error.message, reason=responses[status_code])
            http_error.headers = error.headers
            kwargs["exc_info"] = (web.HTTPError, http_error, None)
            kwargs["details"] = error.details
        self.render_error(status_code, **kwargs)

    def render_error(self, status_code: int, **kwargs: Any) -> None:
        super().write_error(status_code, **kwargs)


class PageHandler(AnnotationHandler):
    """HTML pages under /hub/annotations/, rendered from share/templates."""

    def refuse_anonymous(self) -> None:
        if self.request.method in ("GET", "HEAD"):
            self.redirect(url_concat(self.settings["login_url"], {"next": self.request.uri}))
            raise web.Finish()
        raise web.HTTPError(403, "Your session has ended: log in again.")

    async def render_page(self, template: str, status: int = 200, **ns: Any) -> None:
        self.set_status(status)
        ns.setdefault("min_length", self.authenticator.min_password_length)
        self.finish(await self.render_template(template, **ns))


class APIHandler(AnnotationHandler):
    """JSON API under /hub/annotations/api/: JSON errors, 401 instead of redirects."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "application/json; charset=utf-8")

    accepts_tokens = True

    def check_xsrf_cookie(self) -> None:
        # Only a browser session can be forged across sites. Anonymous requests get 401
        # from `prepare` rather than failing XSRF with 403. (Tornado also calls this
        # before `prepare`, when no user is resolved yet; the hub checks again after.)
        if getattr(self, "_jupyterhub_user", None) is not None:
            super().check_xsrf_cookie()

    def refuse_anonymous(self) -> None:
        raise web.HTTPError(401, "Authentication required: log in to the hub first, then retry.")

    def render_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], web.HTTPError):
            error = exc_info[1]
            message = error.get_message() or message  # log_message doubles every %
            for key, value in (getattr(error, "headers", None) or {}).items():
                self.set_header(key, value)
        elif status_code >= 500:
            message = "Internal server error; the hub log has the details."
        if status_code == 405:
            # RFC 9110: a 405 names the methods the address does answer.
            self.set_header("Allow", ", ".join(v.upper() for v in implemented_verbs(type(self))))
        self.set_header("Content-Type", "application/json; charset=utf-8")
        body = {"error": {"status": status_code, "message": message}}
        self.finish(json.dumps({**body, **(kwargs.get("details") or {})}, default=str))

    max_body_bytes = 64 * 1024

    def json_object(
        self,
        fields: dict[str, type],
        required: tuple[str, ...] = (),
        max_bytes: int | None = None,
    ) -> dict:
        """The body as a JSON object of ``fields`` (name: type; ``object``: any JSON), or
        a 4xx saying why not."""
        max_bytes = max_bytes or self.max_body_bytes
        if len(self.request.body) > max_bytes:
            raise web.HTTPError(413, f"The body is over {max_bytes} bytes.")
        try:
            body = json.loads(self.request.body or b"{}", parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput("The body is not valid JSON.") from None
        except RecursionError:
            raise InvalidInput("The body is nested too deeply: flatten it.") from None
        if not isinstance(body, dict):
            raise InvalidInput("The body must be a JSON object.")
        unknown = sorted(set(body) - set(fields))
        if unknown:
            raise InvalidInput(f"Unknown fields {unknown}: allowed are {sorted(fields)}.")
        missing = [key for key in required if key not in body]
        if missing:
            raise InvalidInput(f"Missing fields {missing}.")
        for key, value in body.items():
            if fields[key] is object:
                continue
            # JSON true is a Python int too: a bool only passes where a bool is asked.
            wrong_bool = isinstance(value, bool) and bool not in _as_tuple(fields[key])
            if wrong_bool or not isinstance(value, fields[key]):
                raise InvalidInput(f"{key!r} must be {_KINDS.get(fields[key], 'valid')}.")
            # Names, slugs, descriptions: PostgreSQL text cannot hold NUL, and no name
            # needs one; refused the same on every backend. (Any-JSON fields are stored
            # as JSON text, where NUL is escaped.)
            for text in _strings(value):
                if "\x00" in text:
                    raise InvalidInput(f"{key!r} contains a NUL character (\\u0000): remove it.")
                if not _is_text(text):
                    raise InvalidInput(
                        f"{key!r} has an unpaired surrogate (like \\ud800): send valid Unicode."
                    )
        return body

    def write_json(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(_JSON.encode(payload))


class APINotFound(APIHandler):
    """Anything under api/ that is no route: a JSON 404, not the hub's HTML page."""

    def prepare(self) -> None:
        raise web.HTTPError(404, f"There is no API route {self.request.path!r}.")
