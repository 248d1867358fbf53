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

# Route families, so an unknown path never makes a new label value.
_API_FAMILIES = ("me", "users", "projects", "tokens", "audit", "openapi.json")


def route_family(path: str) -> str:
    """``/hub/annotations/api/projects/demo/items/x/annotations`` -> ``annotations``."""
    _, _, rest = path.partition("/annotations/")
    parts = rest.split("/")
    if parts[0] != "api":
        return "pages"
    if len(parts) > 3 and parts[1] == "projects":
        return "members" if parts[3] == "members" else "annotations"
    return parts[1] if len(parts) > 1 and parts[1] in _API_FAMILIES else "other"
