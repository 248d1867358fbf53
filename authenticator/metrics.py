"""Prometheus metrics, on the default registry that JupyterHub serves at /hub/metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LOGIN_OUTCOMES = ("success", "failure", "locked", "deactivated")
LOGINS = Counter(
    "annotations_logins",
    f"Logins through the annotation authenticator, by outcome ({', '.join(LOGIN_OUTCOMES)})",
    ["outcome"],
)
TOKEN_OUTCOMES = ("accepted", "refused")
TOKEN_AUTHENTICATIONS = Counter(
    "annotations_token_authentications",
    "API requests carrying a personal access token, by outcome (accepted, refused)",
    ["outcome"],
)
WRITE_KINDS = ("put", "delete", "import")
ANNOTATION_WRITES = Counter(
    "annotations_writes",
    "Annotations written, by kind (put, delete, import: one per record)",
    ["kind"],
)
CLAIM_OUTCOMES = ("claimed", "renewed", "empty", "released", "expired")
CLAIMS = Counter(
    "annotations_claims",
    "The work queue, by outcome: claimed (an item handed out), renewed (a held claim "
    "asked for again), empty (nothing left: 204), released, expired (a lease lapsed)",
    ["outcome"],
)
# Every label value exists from the start, at 0: a rate or an alert on failed logins
# works before the first failure (absent series are not 0 to Prometheus).
for _counter, _values in (
    (LOGINS, LOGIN_OUTCOMES),
    (TOKEN_AUTHENTICATIONS, TOKEN_OUTCOMES),
    (ANNOTATION_WRITES, WRITE_KINDS),
    (CLAIMS, CLAIM_OUTCOMES),
):
    for _value in _values:
        _counter.labels(_value)
CONFLICTS = Counter(
    "annotations_conflicts",
    "Conditional annotation writes refused with 412 (a newer version existed)",
)
REQUEST_SECONDS = Histogram(
    "annotations_request_duration_seconds",
    "Duration of requests to the annotation pages and API, by route family",
    ["family", "method", "code"],
)

# The route families of REQUEST_SECONDS, a closed set: each handler declares its own
# (`handlers.base.AnnotationHandler.metric_family`), so no path makes a new label value.
FAMILIES = (
    "me",
    "users",
    "projects",
    "members",
    "annotations",
    "work",
    "tokens",
    "audit",
    "openapi.json",
    "pages",
    "other",
)
