"""Base classes: one permission chokepoint (fail closed) and one error format per kind.

Every verb method declares what it needs with ``@requires(...)``; `prepare` resolves
the principal and calls `authorize` before the method runs. A method without a
declaration refuses everyone.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Iterator
from http.client import responses
from typing import Any, TypeVar

from jupyterhub.handlers import BaseHandler
from jupyterhub_annotations.authenticator.accounts import Accounts
from jupyterhub_annotations.authenticator.addresses import client_address
from jupyterhub_annotations.authenticator.core import Core
from jupyterhub_annotations.authenticator.cursors import PAGE_SIZE
from jupyterhub_annotations.authenticator.errors import (
    AnnotationError,
    InvalidInput,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from jupyterhub_annotations.authenticator.metrics import (
    CONFLICTS,
    REQUEST_SECONDS,
    TOKEN_AUTHENTICATIONS,
)
from jupyterhub_annotations.authenticator.models import Account
from jupyterhub_annotations.authenticator.permissions import (
    PROJECT_PERMISSIONS,
    PUBLIC,
    Principal,
    authorize,
    check_declaration,
    effective_role,
)
from jupyterhub_annotations.authenticator.projects import Projects
from jupyterhub_annotations.authenticator.redact import redact, without_secret_params
from jupyterhub_annotations.authenticator.tokens import PREFIX as TOKEN_PREFIX
from jupyterhub_annotations.authenticator.usernames import normalize
from tornado import httputil, web
from tornado.httputil import url_concat

from . import hub_compat, hub_mirror
from .document import check_body, field_name

T = TypeVar("T")
# The key of the application setting that holds the `Core` (set by whoever builds the
# Tornado application: the in-hub Authenticator).
CORE_SETTING = "annotations_core"
VERBS = ("get", "head", "post", "put", "patch", "delete", "options")
# Bodies up to this size are parsed on the event loop; bigger ones in a thread.
INLINE_PARSE_BYTES = 64 * 1024
# A refused request's body up to this size (twice the handler's limit for a body that
# is only too large) is read through and dropped before the answer: answering first
# makes Tornado close with unread data, the kernel then resets the connection, and
# the proxy turns our 4xx into a 503. A bigger body, or one of unknown length, is
# refused before any of it is read (SPEC 13: a 64 MiB import is never read).
READ_THEN_REFUSE_BYTES = 8 << 20
STOPPING = (
    "The hub is stopping (a restart?) and did not finish this request: it may have been "
    "applied. Read before repeating a write, or repeat it with If-Match."
)


class StoppingFilter(logging.Filter):
    """One line instead of Tornado's "Uncaught exception" traceback when JupyterHub, as it
    stops, cancels a connection that awaits a request's `prepare`: that request was
    answered with a 503 (`write_error`) or not at all, and nothing failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, asyncio.CancelledError) and record.msg == "Uncaught exception":
            record.msg, record.args = "A request was cut short: the hub is stopping", None
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


def _stopping() -> bool:
    """Whether this request's own task is being cancelled: JupyterHub cancels every task
    when it stops (after SIGTERM), and nothing else cancels a handler's."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def whole_number(name: str, value: str) -> int:
    """A form or query value that must be a whole number (ASCII digits: "²" is a digit
    too, and int() refuses it; at most 9, so no number is too long for int())."""
    value = value.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 9):
        raise InvalidInput(f"{name!r} must be a whole number.")
    return int(value)


def requires(permission: str, body: str | None = None) -> Callable:
    """Declare the permission a handler method needs (checked in `prepare`), and the
    schema of the OpenAPI document its JSON body must match (`json_object`), if any.

    Checked when the handler is defined (`check_declaration`). The method runs once
    the body has arrived: `prepare` refused the request before any of it was read if
    it had to (no right, or a declared length over the handler's `body_limit`).
    """

    def declare(method: Callable) -> Callable:
        check_declaration(permission, method.__name__)

        @functools.wraps(method)
        async def run(self, *args, **kwargs):
            if self._finished:  # refused while the body was arriving
                return
            if self._refusal is not None:  # decided in `prepare`, answered now
                self.refuse(self._refusal)
                return
            if self._received > self.body_limit():
                raise self.too_large()
            self.body_received()
            result = method(self, *args, **kwargs)
            if result is not None:
                await result

        run.permission = permission
        run.body_schema = body
        return run

    return declare


def declared_permission(handler_class: type, verb: str) -> str | None:
    return getattr(getattr(handler_class, verb, None), "permission", None)


def declared_body(handler_class: type, verb: str) -> str | None:
    """The name of the schema a verb's body must match (`requires`), if it takes one."""
    return getattr(getattr(handler_class, verb, None), "body_schema", None)


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


def _no_constant(name: str) -> None:
    # Python's json reads NaN and Infinity; JSON has no such values.
    raise ValueError(name)


def _strings_outside_data(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """The body's strings (keys too) with where they are, but for annotation ``data``:
    any JSON, which is checked where it is stored."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings_outside_data(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield path, key
            if key != "data":
                yield from _strings_outside_data(item, (*path, key))


def _is_text(value: str) -> bool:
    """False for a string with a lone surrogate: JSON's "\\ud800" parses to one, and no
    database driver can store it."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


class LoginRedirect(Exception):
    """A page's refusal of an anonymous visitor: off to the login page, then back."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def no_store(handler: web.RequestHandler) -> None:
    """Keep the answer out of every cache: it shows a secret (a link, a token) once."""
    handler.set_header("Cache-Control", "no-store")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose keys are each given once: of ``{"a": 1, "a": 2}`` parsers keep
    one or the other, so which one the sender meant is unknowable."""
    body = {}
    for key, value in pairs:
        if key in body:
            raise InvalidInput(f"{key!r} appears twice in one object of the body: send it once.")
        body[key] = value
    return body


def parse_json(body: bytes) -> Any:
    """The body as JSON (no NaN, no repeated keys), or InvalidInput saying why not."""
    try:
        return json.loads(body, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("The body is not valid JSON.") from None
    except RecursionError:
        raise InvalidInput("The body is nested too deeply: flatten it.") from None


def request_address(handler: web.RequestHandler, trusted_hops: int) -> str:
    """The client address of a request, as `client_address` trusts it. The peer is the
    socket's: Tornado's ``remote_ip`` already took ``X-Real-Ip`` (client-set) at its word."""
    request = handler.request
    address = getattr(getattr(request.connection, "context", None), "address", None)
    peer = address[0] if isinstance(address, tuple) else ""
    return client_address(request.headers.get("X-Forwarded-For"), peer, trusted_hops)


@web.stream_request_body
class AnnotationHandler(BaseHandler):
    """Every request's body is streamed: `prepare` decides on the request from its
    headers alone (who, which right, the declared length) before a byte of the body is
    read, and the body is kept only up to `body_limit`."""

    # Pages take only the hub session; the API also takes our tokens.
    accepts_tokens = False
    principal: Principal | None = None
    # The caller's role in the project the route names (hub admins: "admin").
    project_role: str | None = None
    # The route family of the request metrics (`metrics.FAMILIES`); every handler
    # class that is routed declares one (test_e2e_metrics.py checks).
    metric_family: str | None = None
    # The largest body a request may carry (see `body_limit`).
    max_body_bytes = 64 * 1024

    def initialize(self) -> None:
        self._chunks: list[bytes] | None = []
        self._received = 0
        # Why `prepare` refused the request, to answer once the (small) body is read.
        self._refusal: BaseException | None = None
        # What the changes recorded by this request's `act` mean for the hub's users.
        self._changes = hub_mirror.Changes()

    def body_limit(self) -> int:
        """The largest body this request may carry, in bytes."""
        return self.max_body_bytes

    def read_through_limit(self, refusal: BaseException | None) -> int:
        """The largest body read through (and dropped) before ``refusal`` is answered."""
        if isinstance(refusal, TooLarge):
            return max(READ_THEN_REFUSE_BYTES, 2 * self.body_limit())
        return READ_THEN_REFUSE_BYTES

    def data_received(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._refusal is not None or self._received > self.body_limit():
            refusal = self._refusal or self.too_large()
            if self._received > self.read_through_limit(refusal) and not self._finished:
                # A body of unknown length grew too big to read through: answer now.
                self.send_error(refusal.status, exc_info=(type(refusal), refusal, None))
            return  # dropped: the answer is a refusal either way
        self._chunks.append(chunk)

    def too_large(self) -> TooLarge:
        return TooLarge(f"The body is over {self.body_limit()} bytes: send less at once.")

    def declared_length(self) -> int | None:
        """The body's length as the request declares it (None: sent in chunks)."""
        length = self.request.headers.get("Content-Length")
        if length is not None:
            return int(length)  # Tornado refused a malformed one already
        chunked = "chunked" in self.request.headers.get("Transfer-Encoding", "").lower()
        return None if chunked else 0

    def body_received(self) -> None:
        """The whole body has arrived: keep it as ``request.body``."""
        self.request.body = b"".join(self._chunks or ())
        self._chunks = None

    def refuse(self, refusal: BaseException) -> None:
        """Answer a refusal decided in `prepare` (see `LoginRedirect`)."""
        if isinstance(refusal, LoginRedirect):
            self.redirect(refusal.url)
            return
        raise refusal

    @property
    def core(self) -> Core:
        """The domain core, from the application's settings (`CORE_SETTING`)."""
        return self.settings[CORE_SETTING]

    @property
    def accounts(self) -> Accounts:
        return self.core.accounts

    @property
    def projects(self) -> Projects:
        return self.core.projects

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the core off the event loop (`Core.run`): the one way handlers do."""
        return await self.core.run(fn, *args, **kwargs)

    async def act(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`run` for a change: ``fn`` with its audit records (`record`) is one
        transaction (`Core.act`). Then JupyterHub's own users and groups follow the
        accounts and projects it recorded changes of (`hub_mirror`)."""
        changed = hub_mirror.Changes()

        def action() -> tuple[T, list[hub_mirror.AccountMirror]]:
            self._changes = changed
            result = fn(*args, **kwargs)
            return result, changed.read(self.core)

        result, mirrors = await self.core.act(action)
        changed.apply(self.db, mirrors)
        return result

    async def prepare(self) -> None:
        """Decide on the request from its headers, before any of its body is read."""
        try:
            await self.decide()
            length = self.declared_length()
            if length is not None and length > self.body_limit():
                raise self.too_large()
        except Exception as refusal:
            length = self.declared_length()
            if length is None or length > self.read_through_limit(refusal):
                self.refuse(refusal)  # costly to read: refused at once
                return
            self._refusal = refusal

    async def decide(self) -> None:
        """Who is calling and whether they may: raises to refuse."""
        verb = self.request.method.lower()
        header = self.request.headers.get("Authorization")
        if header is None or not self.accepts_tokens:
            await super().prepare()  # the hub resolves its cookie and checks XSRF
            user = self.current_user
            token = None
        else:
            # A token request skips the hub's cookie and XSRF work entirely.
            hub_compat.skip_cookie_auth(self)
            user, token = None, header
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
        project = slug if permission in PROJECT_PERMISSIONS else None
        member_role, api_access = None, True
        if token is not None or user is not None:  # else nobody to look up: no store call
            try:
                self.principal, (member_role, api_access) = await self.core.run_cached(
                    self.resolve, token, user.name if user is not None else None, project
                )
            finally:
                if token is not None:
                    outcome = "accepted" if self.principal else "refused"
                    TOKEN_AUTHENTICATIONS.labels(outcome).inc()
        try:
            authorize(self.principal, permission, member_role, slug, api_access)
        except Unauthenticated:
            self.refuse_anonymous()
        if self.principal is not None:
            self.project_role = effective_role(self.principal, member_role)

    def resolve(
        self, token: str | None, hub_user: str | None, slug: str | None
    ) -> tuple[Principal | None, tuple[str | None, bool]]:
        """The principal (of the ``Authorization`` header's token, or the active account
        behind the hub session) and, for a project route, its (role, API access) there:
        from the access caches, else in the store's threads (`Core.run_cached`)."""
        if token is not None:
            principal = self.core.tokens.authenticate(bearer_token(token))
        else:
            account = self.accounts.get(hub_user) if hub_user is not None else None
            principal = (
                Principal(
                    name=account.name, admin=self.accounts.is_admin(account), kind=account.kind
                )
                if account is not None and account.active
                else None
            )
        if slug is None or principal is None:
            return principal, (None, True)
        return principal, self.projects.access(slug, principal.name)

    def refuse_anonymous(self) -> None:
        raise NotImplementedError

    def on_finish(self) -> None:
        super().on_finish()
        status = self.get_status()
        family = self.metric_family
        REQUEST_SECONDS.labels(family, self.request.method, status).observe(
            self.request.request_time()
        )
        if status == 412:
            CONFLICTS.inc()

    def whole_number_argument(self, name: str, default: int) -> int:
        """A query argument that must be a whole number."""
        value = self.get_argument(name, None)
        return default if value is None else whole_number(name, value)

    def page_arguments(self) -> tuple[str | None, int]:
        """A list's ``cursor`` (empty: the first page, as no cursor) and ``limit``
        (`cursors`: both checked in the core)."""
        cursor = self.get_argument("cursor", None) or None
        return cursor, self.whole_number_argument("limit", PAGE_SIZE)

    def record(self, action: str, target: str | None = None, **details: object) -> None:
        """Record a security event done by this request's principal (and log it), in the
        store's threads: within the action's own call to `act`, so both commit together."""
        actor = self.principal.name if self.principal is not None else None
        address = self.client_address()
        self.core.audit.record(action, actor, target=target, address=address, **details)
        self._changes.note(action, actor, target)

    def update_account(self, name: str, **changes: bool) -> Account:
        """`Core.update_account` by this request's principal, in the store's threads
        (within `act`): the one place for the API and the Users page."""
        actor = self.principal.name if self.principal is not None else None
        account = self.core.update_account(name, actor, self.client_address(), **changes)
        self._changes.note("user.update", actor, name)
        return account

    async def audit(self, action: str, target: str | None = None, **details: object) -> None:
        """`record`, off the event loop, for an event that is an action of its own."""
        await self.run(self.record, action, target, **details)

    def client_address(self) -> str:
        """Where the request came from, as the trusted proxies saw it."""
        return request_address(self, self.core.settings.trusted_proxy_hops)

    def hub_url(self) -> str:
        """The hub prefix as the caller reached it (for links to hand over)."""
        return f"{self.request.protocol}://{self.request.host}{self.hub.base_url}"

    def _request_summary(self) -> str:
        # A token in the URL never reaches the log.
        return f"{self.request.method} {redact(self.request.uri)} ({self.client_address()})"

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
        if self._chunks is not None:
            # Answered before the body was read (Tornado's 405 for a method we do not
            # route comes even before `prepare`): Tornado then drops the connection,
            # and saying so keeps the proxy from sending the next request down it.
            self.set_header("Connection", "close")
        exc_info = kwargs.get("exc_info")
        if status_code == 500 and exc_info is None and _stopping():
            # Tornado answers a cancelled request 500 with no exception: the hub is going
            # away, not broken, and the work may be done (the store's threads go on).
            exc_info = kwargs["exc_info"] = (Unavailable, Unavailable(STOPPING), None)
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

    metric_family = "pages"

    _xsrf_pending = False

    def check_xsrf_cookie(self) -> None:
        # A form carries its _xsrf in the body, which arrives after `prepare`: the
        # hub's check runs in `body_received` instead.
        if self.request.method not in ("GET", "HEAD", "OPTIONS") and self._chunks is not None:
            self._xsrf_pending = True
            return
        super().check_xsrf_cookie()

    def body_received(self) -> None:
        """A form's fields become arguments, as Tornado does for handlers that do not
        stream; then the hub's XSRF check, which needs the form's ``_xsrf``."""
        super().body_received()
        if self.request.body:
            try:
                httputil.parse_body_arguments(
                    self.request.headers.get("Content-Type", ""),
                    self.request.body,
                    self.request.body_arguments,
                    self.request.files,
                    self.request.headers,
                )
            except httputil.HTTPInputError as e:
                raise InvalidInput(f"The form could not be read: {e}.") from None
            for key, values in self.request.body_arguments.items():
                self.request.arguments.setdefault(key, []).extend(values)
        if self._xsrf_pending:
            self._xsrf_pending = False
            super().check_xsrf_cookie()

    def refuse_anonymous(self) -> None:
        if self.request.method in ("GET", "HEAD"):
            # Back here after login, without any secret the address carried (a token
            # in ``next=`` would reach every log that records the redirect).
            back = without_secret_params(self.request.uri)
            raise LoginRedirect(url_concat(self.settings["login_url"], {"next": back}))
        raise web.HTTPError(403, "Your session has ended: log in again.")

    async def render_page(self, template: str, status: int = 200, **ns: Any) -> None:
        self.set_status(status)
        ns.setdefault("min_length", self.core.settings.min_password_length)
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
        if hub_compat.hub_user_resolved(self):
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

    async def json_object(self) -> dict:
        """The body, checked against the schema its verb declares (`requires`), or a
        4xx saying what to fix. A big body is parsed in a thread, off the event loop."""
        schema = declared_body(type(self), self.request.method.lower())
        if schema is None:  # a handler bug, not the client's
            raise RuntimeError(f"{type(self).__name__} declares no body schema")
        self.check_json_type()
        raw = self.request.body or b"{}"
        if len(raw) <= INLINE_PARSE_BYTES:
            body = parse_json(raw)
        else:
            body = await asyncio.get_running_loop().run_in_executor(None, parse_json, raw)
        check_body(body, schema)
        for path, text in _strings_outside_data(body):
            if not _is_text(text):  # JSON Schema cannot say it; no driver stores one
                where = field_name(path) if path else "The body"
                raise InvalidInput(
                    f"{where} has an unpaired surrogate (like \\ud800): send valid Unicode."
                )
        return body

    def check_json_type(self) -> None:
        """A body declared as anything but JSON is a 415: it was not meant for us (and a
        cross-site form can send text/plain or form types, never JSON)."""
        declared = self.request.headers.get("Content-Type")
        if declared is None or not self.request.body:
            return
        media = declared.split(";", 1)[0].strip().lower()
        if media != "application/json" and not (
            media.startswith("application/") and media.endswith("+json")
        ):
            raise UnsupportedMediaType(
                f"The body is declared as {media!r}: send JSON with "
                "'Content-Type: application/json'."
            )

    def write_json(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(_JSON.encode(payload))

    def write_list(self, items: list, after: str | None) -> None:
        """One page of a list: its items and the cursor of the next page (null: the last)."""
        self.write_json({"items": items, "next": after})


class APINotFound(APIHandler):
    """Anything under api/ that is no route: a JSON 404, not the hub's HTML page."""

    metric_family = "other"

    async def decide(self) -> None:
        raise web.HTTPError(404, f"There is no API route {self.request.path!r}.")

    # Every verb, so the 404 is answered the same way as any refusal (`requires`).
    get = head = post = put = patch = delete = options = requires(PUBLIC)(lambda self: None)
