"""The audit log: security events, readable by hub admins, never holding a secret.

Handlers record what they did once it succeeded (the caller and address come from the
request); the authenticator records logins. Each event is also one line in the hub log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select

from . import cursors
from .metrics import LOGINS
from .models import AuditEvent, utcnow
from .store import Store

ACTIONS = (
    "login.success",
    "login.failure",
    "login.locked",
    "login.deactivated",
    "link.issue",
    "link.use",
    "link.revoke",
    "password.change",
    "token.create",
    "token.revoke",
    "user.create",
    "user.update",
    "user.delete",
    "user.rename",
    "project.create",
    "project.update",
    "project.delete",
    "member.set",
    "member.remove",
)
# Detail keys that would name a secret: refused outright, so none slips in by mistake.
_SECRET_KEYS = ("password", "token", "link", "secret", "hash")


@dataclass(frozen=True)
class EventView:
    id: int
    at: datetime
    actor: str | None
    action: str
    target: str | None
    address: str | None
    details: dict

    def as_json(self) -> dict:
        return {**self.__dict__, "at": self.at.isoformat()}


class Audit:
    def __init__(
        self,
        store: Store,
        log: logging.Logger | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.log = log or logging.getLogger(__name__)
        self.clock = clock

    def record(
        self,
        action: str,
        actor: str | None,
        target: str | None = None,
        address: str | None = None,
        **details: object,
    ) -> None:
        """Keep one event (and log it). ``actor`` is who acted (or tried to)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        secret = [key for key in details if any(word in key for word in _SECRET_KEYS)]
        if secret:
            raise ValueError(f"audit details must not hold secrets: {secret}")
        with self.store.transaction(changes_access=False) as s:  # a record grants nothing
            s.execute(
                insert(AuditEvent).values(
                    at=self.clock(),
                    actor=actor,
                    action=action,
                    target=target,
                    address=address,
                    details=json.dumps(details, sort_keys=True, default=str),
                )
            )
        self.log.info(
            "audit: %s %s %s from %s %s", actor, action, target or "-", address or "-", details
        )
        family, _, outcome = action.partition(".")
        if family == "login":
            LOGINS.labels(outcome).inc()

    def page(
        self,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
        limit: int = cursors.PAGE_SIZE,
    ) -> tuple[list[EventView], str | None]:
        """Newest first; ``action`` without a dot names a family (``login``, ``token``)."""
        cursors.check_limit(limit)
        query = select(AuditEvent)
        if cursor is not None:
            (before,) = cursors.decode(cursor, int)
            query = query.where(AuditEvent.id < before)
        if actor is not None:
            query = query.where(AuditEvent.actor == actor)
        if target is not None:
            query = query.where(AuditEvent.target == target)
        if action is not None:
            if "." in action:
                query = query.where(AuditEvent.action == action)
            else:
                query = query.where(AuditEvent.action.startswith(f"{action}.", autoescape=True))
        if since is not None:
            query = query.where(AuditEvent.at >= since)
        with self.store.transaction(readonly=True) as s:
            rows = s.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)).all()
            views = [_view(row) for row in rows]
        return cursors.cut(views, limit, lambda view: (view.id,))


def _view(row: AuditEvent) -> EventView:
    return EventView(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        address=row.address,
        details=json.loads(row.details),
    )
