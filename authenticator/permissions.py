"""Roles, principals and the permission table: who may do what.

Pure functions and data, no database and no Tornado: handlers declare one of
`PERMISSIONS` per method, and `authorize` is the one place that decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .errors import Forbidden, InvalidInput, NotFound, Unauthenticated

# Per-project roles, lowest first: each can do everything the ones before it can.
ROLES = ("viewer", "annotator", "admin")

SCOPES = (
    "annotations:read",
    "annotations:write",
    "projects:manage",
    "tokens:manage",
    "users:manage",
)

# What a handler method may declare. The project-scoped ones need a ``slug`` in the route.
PUBLIC = "public"  # anyone, logged in or not
AUTHENTICATED = "authenticated"  # any active principal
USERS_MANAGE = "users:manage"  # hub admins
PROJECTS_CREATE = "projects:create"  # hub admins
PROJECT_READ = "project:read"  # members of the project (any role)
PROJECT_MANAGE = "project:manage"  # admins of the project
PROJECT_DELETE = "project:delete"  # hub admins, on an existing project
TOKENS_MANAGE = "tokens:manage"  # any principal, for their own tokens
ANNOTATIONS_READ = "annotations:read"  # members of the project, per the visibility rules
ANNOTATIONS_WRITE = "annotations:write"  # annotators and admins of the project
MEMBER_SELF = "member:self"  # any member of the project, changing their own preferences
# viewers and admins of the project: what everyone's annotations add up to (agreement)
ANNOTATIONS_REVIEW = "annotations:review"

PERMISSIONS = (
    PUBLIC,
    AUTHENTICATED,
    USERS_MANAGE,
    PROJECTS_CREATE,
    PROJECT_READ,
    PROJECT_MANAGE,
    PROJECT_DELETE,
    TOKENS_MANAGE,
    ANNOTATIONS_READ,
    ANNOTATIONS_WRITE,
    MEMBER_SELF,
    ANNOTATIONS_REVIEW,
)
PROJECT_PERMISSIONS = (
    PROJECT_READ,
    PROJECT_MANAGE,
    PROJECT_DELETE,
    ANNOTATIONS_READ,
    ANNOTATIONS_WRITE,
    MEMBER_SELF,
    ANNOTATIONS_REVIEW,
)
# What a token restricted to projects may still do outside them: look at itself and
# manage its own tokens (within the minting rules).
UNRESTRICTED = (PUBLIC, AUTHENTICATED, TOKENS_MANAGE)
# Scopes that read and never change anything (SPEC 13: every state change needs a
# write scope).
READ_ONLY_SCOPES = frozenset({"annotations:read"})

# The token scopes that carry each permission (any one of them will do). A session has
# every scope, so for sessions only roles count.
SCOPES_FOR = {
    USERS_MANAGE: {"users:manage"},
    PROJECTS_CREATE: {"projects:manage"},
    PROJECT_READ: {"annotations:read", "annotations:write", "projects:manage"},
    PROJECT_MANAGE: {"projects:manage"},
    PROJECT_DELETE: {"projects:manage"},
    TOKENS_MANAGE: {"tokens:manage"},
    # Writing implies reading: a writer needs the current version to write conditionally.
    ANNOTATIONS_READ: {"annotations:read", "annotations:write"},
    ANNOTATIONS_WRITE: {"annotations:write"},
    MEMBER_SELF: {"annotations:write", "projects:manage"},
    ANNOTATIONS_REVIEW: {"annotations:read", "annotations:write"},
}


def check_declaration(permission: str, verb: str) -> None:
    """Refuse, when a handler is defined, a declaration that could never be right: an
    unknown permission, or a state-changing verb that a read-only scope would carry."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}: use one of {PERMISSIONS}")
    if verb in ("post", "put", "patch", "delete") and SCOPES_FOR.get(permission, set()) & (
        READ_ONLY_SCOPES
    ):
        raise ValueError(
            f"{verb.upper()} cannot declare {permission!r}: a read-only scope carries it, "
            "and every state change needs a write scope"
        )


@dataclass(frozen=True)
class Principal:
    """Who is calling: an active account, and how it authenticated."""

    name: str
    admin: bool
    kind: str = "user"
    auth: str = "session"  # or "token"
    # A session acts with every scope; a token with the ones it was given.
    scopes: frozenset[str] = field(default=frozenset(SCOPES))
    # The projects a token is restricted to; None: all the owner's projects.
    projects: frozenset[str] | None = None
    token_id: int | None = None
    expires_at: datetime | None = None


def rank(role: str | None) -> int:
    """0 for no role, then 1.. in ROLES order."""
    return ROLES.index(role) + 1 if role in ROLES else 0


def effective_role(principal: Principal, member_role: str | None) -> str | None:
    """Hub admins are implicit admins of every project."""
    return "admin" if principal.admin else member_role


def check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")


def authorize(
    principal: Principal | None,
    permission: str,
    project_role: str | None = None,
    project_slug: str | None = None,
    api_access: bool = True,
) -> None:
    """Return if ``principal`` may act; raise otherwise. Unknown permissions fail closed.

    The effective right is the principal's scopes (a token's; a session has all) ∩ its
    roles (hub admin; ``project_role``, its membership in the project the request
    names, None when not a member) ∩ the token's projects ∩ the project's
    ``api_access`` switch (tokens only). Not seeing the project is a 404, so its
    existence does not leak; seeing it without the right is a 403.
    """
    if permission == PUBLIC:
        return
    if permission not in PERMISSIONS:
        raise Forbidden("This address declares no known permission.")
    if principal is None:
        raise Unauthenticated("Authentication required.")
    if principal.projects is not None and permission not in (*UNRESTRICTED, *PROJECT_PERMISSIONS):
        raise Forbidden(
            f"This token is restricted to the projects {sorted(principal.projects)}: it "
            "can only be used within them. Use a token without a project restriction."
        )
    if permission in PROJECT_PERMISSIONS:
        _authorize_project(principal, permission, project_role, project_slug, api_access)
    elif permission in (USERS_MANAGE, PROJECTS_CREATE) and not principal.admin:
        raise Forbidden("Only hub admins may do this.")
    needed = SCOPES_FOR.get(permission)
    if needed and not needed & principal.scopes:
        raise Forbidden(
            f"This token lacks the scope for this: one of {sorted(needed)}. Create a token with it."
        )


def _authorize_project(
    principal: Principal, permission: str, member_role, slug, api_access: bool
) -> None:
    role = effective_role(principal, member_role)
    hidden = principal.projects is not None and slug not in principal.projects
    if role is None or hidden:
        raise NotFound(f"There is no project {slug!r}, or you are not a member of it.")
    if principal.auth == "token" and not api_access:
        raise Forbidden(f"API access to project {slug!r} is switched off by its admins.")
    if permission == PROJECT_MANAGE and role != "admin":
        raise Forbidden(f"Only admins of project {slug!r} may do this; you are {role}.")
    if permission == PROJECT_DELETE and not principal.admin:
        raise Forbidden("Only hub admins may delete a project.")
    if permission == ANNOTATIONS_REVIEW and role not in ("viewer", "admin"):
        raise Forbidden(
            f"Only viewers and admins of project {slug!r} may see what everyone's "
            f"annotations add up to; you are {role}."
        )
    if permission == ANNOTATIONS_WRITE and role == "viewer":
        raise Forbidden(
            f"Viewers of project {slug!r} cannot write annotations: ask its admins for the "
            "annotator role."
        )


def check_grant(granter_role: str | None, role: str) -> None:
    """Nobody grants a role above their own."""
    check_role(role)
    if rank(role) > rank(granter_role):
        raise Forbidden(f"You cannot grant the role {role!r}: it is above your own.")
