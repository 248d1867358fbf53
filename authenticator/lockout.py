"""Login throttling, counted per account name and per client address, in the database.

Failures live in a table so the count survives restarts and is shared by replicas.
Unknown names are counted like real ones, so throttling reveals nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .errors import LockedOut
from .models import LoginFailure


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    max_address_failures: int = 50
    window: timedelta = timedelta(minutes=15)

    def check(self, session: Session, name: str, address: str, now: datetime) -> None:
        """Raise LockedOut when either counter is at its limit inside the window."""
        since = now - self.window
        for column, value, limit, whom in (
            (LoginFailure.name, name, self.max_failures, "this account"),
            (LoginFailure.address, address, self.max_address_failures, "your address"),
        ):
            times = session.scalars(
                select(LoginFailure.at)
                .where(column == value, LoginFailure.at > since)
                .order_by(LoginFailure.at.desc())
                .limit(limit)
            ).all()
            if len(times) >= limit:
                # Allowed again once the limit-th most recent failure leaves the window.
                retry_after = max(1, math.ceil((times[-1] + self.window - now).total_seconds()))
                minutes = math.ceil(retry_after / 60)
                raise LockedOut(
                    f"Too many failed login attempts for {whom}. Try again in {minutes} "
                    f"minute{'s' if minutes != 1 else ''}, or ask an administrator for a "
                    "password reset link.",
                    retry_after=retry_after,
                )

    def record_failure(self, session: Session, name: str, address: str, now: datetime) -> None:
        # Rows past the window are dead weight: prune them as new ones arrive.
        session.execute(delete(LoginFailure).where(LoginFailure.at <= now - self.window))
        session.add(LoginFailure(name=name, address=address[:64], at=now))

    def clear(self, session: Session, name: str) -> None:
        """Forget an account's failures (after a good login or a new password)."""
        session.execute(delete(LoginFailure).where(LoginFailure.name == name))
