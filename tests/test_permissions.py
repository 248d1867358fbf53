"""The permission table, written out as a table: who may do what (SPEC section 5)."""

from __future__ import annotations

import pytest
from jupyterhub_annotations.authenticator.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from jupyterhub_annotations.authenticator.permissions import (
    PERMISSIONS,
    ROLES,
    Principal,
    authorize,
    check_declaration,
    check_grant,
    effective_role,
    rank,
)

OK = "ok"
MEMBER_ROLES = (None, "viewer", "annotator", "admin")
PRINCIPALS = {
    "anonymous": None,
    "user": Principal(name="alice", admin=False),
    "hub admin": Principal(name="root", admin=True),
}

# For each (principal, permission): the outcome when the principal's membership role
# in the project named by the request is None, viewer, annotator, admin (in that order).
TABLE = {
    ("anonymous", "public"): (OK, OK, OK, OK),
    ("anonymous", "authenticated"): (Unauthenticated,) * 4,
    ("anonymous", "users:manage"): (Unauthenticated,) * 4,
    ("anonymous", "projects:create"): (Unauthenticated,) * 4,
    ("anonymous", "project:read"): (Unauthenticated,) * 4,
    ("anonymous", "project:manage"): (Unauthenticated,) * 4,
    ("anonymous", "project:delete"): (Unauthenticated,) * 4,
    ("anonymous", "tokens:manage"): (Unauthenticated,) * 4,
    ("anonymous", "annotations:read"): (Unauthenticated,) * 4,
    ("anonymous", "annotations:write"): (Unauthenticated,) * 4,
    ("anonymous", "member:self"): (Unauthenticated,) * 4,
    ("anonymous", "annotations:review"): (Unauthenticated,) * 4,
    ("user", "public"): (OK, OK, OK, OK),
    ("user", "authenticated"): (OK, OK, OK, OK),
    ("user", "users:manage"): (Forbidden, Forbidden, Forbidden, Forbidden),
    ("user", "projects:create"): (Forbidden, Forbidden, Forbidden, Forbidden),
    ("user", "project:read"): (NotFound, OK, OK, OK),
    ("user", "project:manage"): (NotFound, Forbidden, Forbidden, OK),
    ("user", "project:delete"): (NotFound, Forbidden, Forbidden, Forbidden),
    ("user", "tokens:manage"): (OK, OK, OK, OK),
    ("user", "annotations:read"): (NotFound, OK, OK, OK),
    ("user", "annotations:write"): (NotFound, Forbidden, OK, OK),
    ("user", "member:self"): (NotFound, OK, OK, OK),
    ("user", "annotations:review"): (NotFound, OK, Forbidden, OK),
    ("hub admin", "public"): (OK, OK, OK, OK),
    ("hub admin", "authenticated"): (OK, OK, OK, OK),
    ("hub admin", "users:manage"): (OK, OK, OK, OK),
    ("hub admin", "projects:create"): (OK, OK, OK, OK),
    ("hub admin", "project:read"): (OK, OK, OK, OK),
    ("hub admin", "project:manage"): (OK, OK, OK, OK),
    ("hub admin", "project:delete"): (OK, OK, OK, OK),
    ("hub admin", "tokens:manage"): (OK, OK, OK, OK),
    ("hub admin", "annotations:read"): (OK, OK, OK, OK),
    ("hub admin", "annotations:write"): (OK, OK, OK, OK),
    ("hub admin", "member:self"): (OK, OK, OK, OK),
    ("hub admin", "annotations:review"): (OK, OK, OK, OK),
}

CASES = [
    pytest.param(who, role, permission, outcome, id=f"{who}-{role}-{permission}")
    for (who, permission), outcomes in TABLE.items()
    for role, outcome in zip(MEMBER_ROLES, outcomes, strict=True)
]


@pytest.mark.parametrize("verb", ["post", "put", "patch", "delete"])
def test_a_state_change_cannot_declare_a_permission_a_read_only_scope_carries(verb):
    for permission in ("project:read", "annotations:read"):
        with pytest.raises(ValueError, match="every state change needs a write scope"):
            check_declaration(permission, verb)
    check_declaration("project:read", "get")
    check_declaration("member:self", verb)


def test_an_unknown_permission_is_refused_when_the_handler_is_defined():
    with pytest.raises(ValueError, match="unknown permission 'project:reed'"):
        check_declaration("project:reed", "get")


def test_the_table_covers_every_permission_for_every_principal():
    assert set(TABLE) == {(who, p) for who in PRINCIPALS for p in PERMISSIONS}
    assert len(CASES) == len(PRINCIPALS) * len(MEMBER_ROLES) * len(PERMISSIONS)


@pytest.mark.parametrize(("who", "role", "permission", "outcome"), CASES)
def test_authorize_follows_the_permission_table(who, role, permission, outcome):
    principal = PRINCIPALS[who]
    if outcome == OK:
        assert authorize(principal, permission, role, "demo") is None
    else:
        with pytest.raises(outcome) as e:
            authorize(principal, permission, role, "demo")
        assert type(e.value) is outcome
        assert e.value.message


@pytest.mark.parametrize("permission", ["project:read", "project:manage", "project:delete"])
def test_not_being_a_member_is_not_found_and_names_the_slug(permission):
    with pytest.raises(NotFound) as e:
        authorize(PRINCIPALS["user"], permission, None, "secret-project")
    assert e.value.status == 404
    assert "'secret-project'" in e.value.message


def test_member_without_the_right_is_forbidden_and_told_their_role():
    with pytest.raises(Forbidden) as e:
        authorize(PRINCIPALS["user"], "project:manage", "annotator", "demo")
    assert e.value.status == 403
    assert "annotator" in e.value.message


def test_service_principal_is_authorized_like_a_user():
    service = Principal(name="svc:model-x", admin=False, kind="service", auth="token")
    authorize(service, "project:read", "viewer", "demo")
    with pytest.raises(Forbidden):
        authorize(service, "project:manage", "annotator", "demo")
    with pytest.raises(NotFound):
        authorize(service, "project:read", None, "demo")


UNKNOWN_PERMISSIONS = [
    None,
    "",
    "PUBLIC",
    "public ",
    "admin",
    "annotations:delete",  # no such permission (deleting is annotations:write)
    "project:write",
    "*",
]


@pytest.mark.parametrize("who", list(PRINCIPALS))
@pytest.mark.parametrize("role", MEMBER_ROLES)
@pytest.mark.parametrize("permission", UNKNOWN_PERMISSIONS)
def test_unknown_permission_fails_closed_for_everyone(who, role, permission):
    with pytest.raises(Forbidden) as e:
        authorize(PRINCIPALS[who], permission, role, "demo")
    assert type(e.value) is Forbidden


# -- granting roles ------------------------------------------------------------------

# (granter's role, role granted) -> outcome. Nobody grants above their own role.
GRANTS = {
    (None, "viewer"): Forbidden,
    (None, "annotator"): Forbidden,
    (None, "admin"): Forbidden,
    ("viewer", "viewer"): OK,
    ("viewer", "annotator"): Forbidden,
    ("viewer", "admin"): Forbidden,
    ("annotator", "viewer"): OK,
    ("annotator", "annotator"): OK,
    ("annotator", "admin"): Forbidden,
    ("admin", "viewer"): OK,
    ("admin", "annotator"): OK,
    ("admin", "admin"): OK,
}


@pytest.mark.parametrize(
    ("granter", "role", "outcome"),
    [pytest.param(g, r, o, id=f"{g}-grants-{r}") for (g, r), o in GRANTS.items()],
)
def test_check_grant_refuses_a_role_above_the_granters(granter, role, outcome):
    if outcome == OK:
        assert check_grant(granter, role) is None
    else:
        with pytest.raises(Forbidden) as e:
            check_grant(granter, role)
        assert repr(role) in e.value.message


@pytest.mark.parametrize("granter", MEMBER_ROLES)
@pytest.mark.parametrize("role", ["owner", "Admin", "", "superuser"])
def test_check_grant_refuses_an_unknown_role_as_invalid_input(granter, role):
    with pytest.raises(InvalidInput) as e:
        check_grant(granter, role)
    assert repr(role) in e.value.message
    assert "viewer, annotator, admin" in e.value.message


def test_roles_are_ranked_lowest_first():
    assert ROLES == ("viewer", "annotator", "admin")
    assert rank(None) == 0
    assert rank(None) < rank("viewer") < rank("annotator") < rank("admin")
    assert [rank(r) for r in ROLES] == [1, 2, 3]


@pytest.mark.parametrize("role", ["owner", "", "ADMIN"])
def test_unknown_role_ranks_like_no_role(role):
    assert rank(role) == 0


@pytest.mark.parametrize("role", MEMBER_ROLES)
def test_hub_admin_is_an_implicit_admin_of_every_project(role):
    assert effective_role(PRINCIPALS["hub admin"], role) == "admin"


@pytest.mark.parametrize("role", MEMBER_ROLES)
def test_a_users_effective_role_is_their_membership_role(role):
    assert effective_role(PRINCIPALS["user"], role) == role
