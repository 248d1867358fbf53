"""Every use of JupyterHub's private attributes, in one place, with the versions it
was checked on. JupyterHub gives no public way to do these; a new major version must
be checked against this module (the end-to-end suite runs on 5.x and 6.x).
"""

from __future__ import annotations

from collections.abc import Callable

from jinja2 import FileSystemLoader
from jupyterhub import __version__ as JUPYTERHUB_VERSION
from jupyterhub import orm
from sqlalchemy import event
from sqlalchemy.orm import object_session

# The JupyterHub majors whose private attributes below were read and tested.
CHECKED_MAJORS = (5, 6)
MAJOR = int(JUPYTERHUB_VERSION.split(".")[0])
if MAJOR not in CHECKED_MAJORS:
    raise ImportError(
        f"jupyterhub-annotation-auth was checked on JupyterHub {CHECKED_MAJORS}, not "
        f"{JUPYTERHUB_VERSION}: see handlers/hub_compat.py before using it."
    )


def skip_cookie_auth(handler) -> None:
    """Tell the hub's BaseHandler that this request has no hub user: it carries our
    token instead, so the cookie and the hub's own token lookup are skipped.
    (``_jupyterhub_user`` caches ``current_user``; 5.x and 6.x alike.)"""
    handler._jupyterhub_user = None


def hub_user_resolved(handler) -> bool:
    """Whether the hub has resolved a user for this request (Tornado also calls
    ``check_xsrf_cookie`` before ``prepare``, when nothing is resolved yet)."""
    return getattr(handler, "_jupyterhub_user", None) is not None


def prepare_logout(handler) -> None:
    """Ready ``handler`` for `refresh_user` returning False. JupyterHub 6.1 reads
    ``_token_authenticated`` after a False but sets it only on token requests: without
    it, a cookie request ends in an AttributeError instead of "login is required"."""
    if not hasattr(handler, "_token_authenticated"):
        handler._token_authenticated = False


def stop_pending(spawner) -> bool:
    """Whether the spawner is stopping (``_stop_pending``; no public flag says so)."""
    return bool(spawner._stop_pending)


def add_template_path(tornado_settings: dict, path: str) -> None:
    """Search ``path`` just before the hub's own templates: ours override the hub's
    page.html (to add our navigation links), while the admin's
    ``c.JupyterHub.template_paths``, searched first, can still override ours. The hub
    builds its Jinja environments before any hook could add a path."""
    for env in ("jinja2_env", "jinja2_env_sync"):
        for loader in tornado_settings[env].loader.loaders:
            if isinstance(loader, FileSystemLoader) and path not in loader.searchpath:
                loader.searchpath.insert(len(loader.searchpath) - 1, path)


_rename_callback: Callable[[str, str], None] | None = None


def on_rename(callback: Callable[[str, str], None]) -> None:
    """Have ``callback(old, new)`` called whenever JupyterHub renames a user.

    JupyterHub has no hook for it: ``PATCH /hub/api/users/{name}`` sets
    ``orm.User.name`` and commits, telling no Authenticator (5.x and 6.x alike). So we
    listen to that attribute: the callback runs inside the assignment, on the event
    loop and before the commit, and an exception it raises refuses the rename (the
    hub's session is rolled back, so nothing of the request is committed). One
    callback per process, the last given: a hub has one Authenticator.
    """
    global _rename_callback
    _rename_callback = callback
    if not event.contains(orm.User.name, "set", _renamed):
        event.listen(orm.User.name, "set", _renamed, active_history=True)


def _renamed(target: orm.User, value: object, oldvalue: object, _initiator: object) -> None:
    # A new user's first name comes with a symbol (NO_VALUE) as its old value.
    if _rename_callback is None or not isinstance(oldvalue, str) or oldvalue == value:
        return
    try:
        _rename_callback(oldvalue, str(value))
    except Exception:
        session = object_session(target)
        if session is not None:
            session.rollback()
        raise
