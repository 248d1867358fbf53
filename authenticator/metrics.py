"""Prometheus metrics, on the default registry that JupyterHub serves at /hub/metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LOGINS = Counter(
    "annotations_logins",
    "Logins through the annotation authenticator, by outcome "
    "(success, failure, locked, deactivated)",
    ["outcome"],
)
TOKEN_AUTHENTICATIONS = Counter(
    "annotations_token_authentications",
    "API requests carrying a personal access token, by outcome (accepted, refused)",
    ["outcome"],
)
ANNOTATION_WRITES = Counter(
    "annotations_writes",
    "Annotations written, by kind (put, delete, import: one per record)",
    ["kind"],
)
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
    "tokens",
    "audit",
    "openapi.json",
    "pages",
    "other",
)
