"""Login throttling, counted per account name and per client address, in the database.

Failures live in a table so the count survives restarts and is shared by replicas.
Unknown names are counted like real ones, so throttling reveals nothing.

Every attempt is reserved before its password is checked (`reserve`): one transaction
counts the failures and records the attempt as one, serialised per name and address.
However many attempts run at once, at most the limit get to hash; a right password
then takes its attempt back (`clear`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .errors import LockedOut
from .models import LoginFailure
from .store import lock_keys


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

    def reserve(self, session: Session, name: str, address: str, now: datetime) -> None:
        """Count this attempt as a failure now, or raise LockedOut if it would pass a
        limit. Attempts on one name or from one address take turns here, so two of
        them never both see room for one more."""
        lock_keys(session, f"login-name:{name}", f"login-address:{address}")
        self.check(session, name, address, now)
        # Rows past the window are dead weight: prune them as new ones arrive.
        session.execute(delete(LoginFailure).where(LoginFailure.at <= now - self.window))
        session.add(LoginFailure(name=name, address=address[:64], at=now))

    def clear(self, session: Session, name: str) -> None:
        """Forget an account's failures (after a good login or a new password)."""
        session.execute(delete(LoginFailure).where(LoginFailure.name == name))
