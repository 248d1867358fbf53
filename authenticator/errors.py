"""Domain errors: each carries the message a user reads and the HTTP status it maps to.

The core raises these; handlers turn them into a page or a JSON error. Messages never
contain a secret (password, token, link).
"""

from __future__ import annotations


class AnnotationError(Exception):
    status = 400
    # More JSON for an API client, beside the error (never a secret).
    details: dict | None = None
    # Response headers that belong with the error.
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(AnnotationError):
    status = 400


class LinkError(AnnotationError):
    """A one-time link that cannot be used (malformed, tampered, expired, used)."""

    status = 400


class Unauthenticated(AnnotationError):
    status = 401


class NotFound(AnnotationError):
    status = 404


class Conflict(AnnotationError):
    status = 409


class Forbidden(AnnotationError):
    status = 403


class LockedOut(AnnotationError):
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PreconditionFailed(AnnotationError):
    """A conditional write lost: ``current`` is the stored annotation (JSON), or None."""

    status = 412

    def __init__(self, message: str, current: dict | None) -> None:
        super().__init__(message)
        self.details = {"current": current}
        if current is not None:  # the version to retry with, as every response carries it
            self.headers = {"ETag": f'"{current["version"]}"'}


class ImportConflict(AnnotationError):
    """An import would have replaced annotations without naming their current version."""

    status = 412

    def __init__(self, conflicts: list[dict]) -> None:
        listed = ", ".join(str(c["record"]) for c in conflicts[:10])
        more = f" and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
        records = "Record" if len(conflicts) == 1 else "Records"
        super().__init__(
            f"{records} {listed}{more} would replace an annotation without naming the version "
            "it replaces (or name an older one): give each its current 'version' (listed "
            "in 'conflicts'; null: it no longer exists, leave 'version' out). Nothing was "
            "imported."
        )
        self.details = {"conflicts": conflicts}


class TooLarge(AnnotationError):
    status = 413


class Unavailable(AnnotationError):
    """The database did not answer in time (locked, deadlocked, restarting): retry."""

    status = 503
    headers = {"Retry-After": "1"}


class UnsupportedMediaType(AnnotationError):
    status = 415
