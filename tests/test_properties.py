"""Property tests (hypothesis): the scope algebra, the visibility rules, the token format.

Each checks the code against an oracle written here from SPEC sections 5 to 7, not
from the code, over generated inputs.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jupyterhub_annotations.authenticator.annotations import Annotations, sees_others
from jupyterhub_annotations.authenticator.errors import (
    AnnotationError,
    Forbidden,
    NotFound,
    Unauthenticated,
)
from jupyterhub_annotations.authenticator.models import Account, Membership, Project
from jupyterhub_annotations.authenticator.permissions import (
    PERMISSIONS,
    ROLES,
    SCOPES,
    Principal,
    authorize,
)
from jupyterhub_annotations.authenticator.store import Store
from jupyterhub_annotations.authenticator.tokens import PREFIX, _checksum, digest_of

# No example database on disk: the repository does not ignore .hypothesis/.
PROPERTY = settings(database=None, max_examples=500, deadline=None)
SLUGS = ("birds", "fish", "moths")
MEMBER_ROLES = (None, *ROLES)

# -- the scope algebra -------------------------------------------------------------------

# SPEC 5, 6 and 8, written out: which role each project permission needs, and which
# token scopes carry each permission.
NEEDS_ROLE = {
    "project:read": "viewer",
    "annotations:read": "viewer",
    "annotations:write": "annotator",
    "project:manage": "admin",
    "member:self": "viewer",
    "annotations:review": "viewer",  # and not annotator: see `expected`
}
CARRIED_BY = {
    "users:manage": {"users:manage"},
    "projects:create": {"projects:manage"},
    "project:read": {"annotations:read", "annotations:write", "projects:manage"},
    "project:manage": {"projects:manage"},
    "project:delete": {"projects:manage"},
    "tokens:manage": {"tokens:manage"},
    "annotations:read": {"annotations:read", "annotations:write"},
    "annotations:write": {"annotations:write"},
    "member:self": {"annotations:write", "projects:manage"},
    "annotations:review": {"annotations:read", "annotations:write"},
}


def expected(principal, permission, member_role, slug, api_access):
    """The outcome SPEC promises: "ok" or the error class."""
    if permission == "public":
        return "ok"
    if principal is None:
        return Unauthenticated
    outside = ("users:manage", "projects:create")  # SPEC 13: within its projects only
    if principal.projects is not None and permission in outside:
        return Forbidden
    role = "admin" if principal.admin else member_role
    if permission in NEEDS_ROLE or permission == "project:delete":
        if role is None or (principal.projects is not None and slug not in principal.projects):
            return NotFound
        if principal.auth == "token" and not api_access:
            return Forbidden
        if permission == "project:delete" and not principal.admin:
            return Forbidden
        if permission in NEEDS_ROLE and ROLES.index(role) < ROLES.index(NEEDS_ROLE[permission]):
            return Forbidden
        if permission == "annotations:review" and role == "annotator":
            return Forbidden  # everyone's annotations at once: viewers and admins
    elif permission in ("users:manage", "projects:create") and not principal.admin:
        return Forbidden
    if not CARRIED_BY.get(permission, {"*"}) & (principal.scopes | {"*"}):
        return Forbidden
    return "ok"


def outcome(principal, permission, member_role, slug, api_access):
    try:
        authorize(principal, permission, member_role, slug, api_access)
    except AnnotationError as e:
        assert e.message  # every refusal says why
        return type(e)
    return "ok"


sessions = st.builds(Principal, name=st.just("alice"), admin=st.booleans())
tokens = st.builds(
    Principal,
    name=st.just("alice"),
    admin=st.booleans(),
    auth=st.just("token"),
    scopes=st.frozensets(st.sampled_from(SCOPES)),
    projects=st.none() | st.frozensets(st.sampled_from(SLUGS), min_size=1),
)
principals = st.none() | sessions | tokens


@PROPERTY
@given(
    principals,
    st.sampled_from(PERMISSIONS),
    st.sampled_from(MEMBER_ROLES),
    st.sampled_from(SLUGS),
    st.booleans(),
)
def test_authorize_is_scopes_and_roles_and_projects_and_api_access(
    principal, permission, member_role, slug, api_access
):
    assert outcome(principal, permission, member_role, slug, api_access) == expected(
        principal, permission, member_role, slug, api_access
    )


@PROPERTY
@given(tokens, st.sampled_from(PERMISSIONS), st.sampled_from(MEMBER_ROLES), st.booleans())
def test_a_token_never_does_more_than_its_owners_session(token, permission, role, api_access):
    session = Principal(name=token.name, admin=token.admin)
    if outcome(token, permission, role, "birds", api_access) == "ok":
        assert outcome(session, permission, role, "birds", api_access) == "ok"


# -- the visibility rules ------------------------------------------------------------------


@PROPERTY
@given(st.sampled_from(MEMBER_ROLES), st.booleans(), st.booleans())
def test_others_are_seen_by_viewers_and_admins_and_by_annotators_only_when_shared(
    role, share, show
):
    annotator_sees = role == "annotator" and share and show
    assert sees_others(role, share, show) == (role in ("viewer", "admin") or annotator_sees)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    store = Store(f"sqlite:///{Path(tmp_path_factory.mktemp('props')) / 'a.sqlite'}")
    store.migrate()
    with store.transaction() as s:
        for name in ("ann", "bea", "cyd"):
            s.add(Account(name=name))
    yield store
    store.dispose()


people = st.sampled_from(("ann", "bea", "cyd"))


@settings(database=None, max_examples=60, deadline=None)
@given(
    notes=st.lists(st.tuples(st.sampled_from("xyz"), people), unique=True, max_size=9),
    reader=people,
    role=st.sampled_from(ROLES),
    share=st.booleans(),
    show=st.booleans(),
    limit=st.integers(1, 4),
)
def test_the_pages_a_reader_walks_hold_exactly_what_they_may_see(
    store, notes, reader, role, share, show, limit
):
    slug = f"p{abs(hash((tuple(notes), reader, role, share, show, limit))) % 10**9}"
    with store.transaction() as s:
        project = Project(slug=slug, share_annotations=share)
        s.add(project)
        s.flush()
        reader_id = s.query(Account.id).filter(Account.name == reader).scalar()
        s.add(Membership(project_id=project.id, account_id=reader_id, role=role, show_others=show))
    annotations = Annotations(store)
    for item, owner in notes:
        annotations.put(slug, item, owner, {"by": owner}, writer=owner)
    seen, cursor = [], None
    while True:
        page = annotations.page(slug, reader, role, cursor=cursor, limit=limit)
        seen += [(v.item, v.owner) for v in page.views]
        if page.next is None:
            break
        cursor = page.next
    may_see = sees_others(role, share, show)
    assert seen == sorted(n for n in notes if may_see or n[1] == reader)


# -- the token format ------------------------------------------------------------------------

BASE62 = string.digits + string.ascii_letters


@PROPERTY
@given(st.text(alphabet=BASE62, min_size=43, max_size=43), st.data())
def test_a_well_formed_token_passes_and_any_one_changed_character_is_refused(secret, data):
    token = f"{PREFIX}{secret}{_checksum(secret)}"  # as generate() makes them
    assert len(digest_of(token)) == 64
    position = data.draw(st.integers(len(PREFIX), len(token) - 1))
    other = data.draw(st.sampled_from(BASE62).filter(lambda c: c != token[position]))
    changed = token[:position] + other + token[position + 1 :]
    with pytest.raises(Unauthenticated) as e:
        digest_of(changed)
    assert changed not in e.value.message and token not in e.value.message


def _refusal(text: str) -> str:
    with pytest.raises(Unauthenticated) as e:
        digest_of(text)
    return e.value.message


# The only two answers to a token that is not one: malformed, or a checksum mismatch.
DIGEST_MESSAGES = {_refusal("x"), _refusal(PREFIX + "0" * (54 - len(PREFIX)))}


@PROPERTY
@given(st.text() | st.text(alphabet=BASE62).map(lambda t: PREFIX + t))
def test_any_string_is_a_digest_or_a_401_that_does_not_repeat_it(text):
    try:
        digest = digest_of(text)
    except Unauthenticated as e:
        # One of the fixed messages, so nothing of the input is repeated (a check for
        # the input inside the message would trip on words like "annotati").
        assert e.message in DIGEST_MESSAGES
    else:
        assert len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
