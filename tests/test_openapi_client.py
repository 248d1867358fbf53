"""A client generated from ``share/openapi.yaml`` by openapi-python-client works (SPEC 16).

The document is generated into a typed client as a user would (`openapi-python-client
generate`); the generator must parse all of it, without a warning (a warning means a
schema or a response it dropped), and the client, with a personal access token against
a real hub, reads `me`, creates a token, writes an annotation and reads lists whose
items are typed models.
"""

from __future__ import annotations

import compileall
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from jupyterhub_annotations.authenticator.paths import share_dir
from jupyterhub_annotations.authenticator.permissions import SCOPES

from tests.test_e2e_accounts import logged_in_admin
from tests.test_e2e_tokens import READ, TOKEN

pytestmark = pytest.mark.e2e

PACKAGE = "annotations_client"
# No post hooks: by default the generator runs whatever `ruff` is on PATH over the
# client, so its output would depend on the machine; what is tested is the code
# generated from the document alone.
CONFIG = "post_hooks: []\n"


def generate_client(folder: Path) -> Path:
    """Generate the client package into ``folder``; fail on any generator warning."""
    config = folder / "openapi-python-client.yaml"
    config.write_text(CONFIG)
    package = folder / PACKAGE
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "openapi-python-client"),
            "generate",
            "--path",
            str(share_dir() / "openapi.yaml"),
            "--output-path",
            str(package),
            "--meta",
            "none",
            "--config",
            str(config),
            # Warnings are what the generator could not parse and left out of the
            # client (a list response without its item type was one): none are allowed.
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0 and "Warning(s) encountered" not in output, output
    assert compileall.compile_dir(package, quiet=1), "the generated client does not compile"
    return package


@pytest.fixture(scope="module")
def client_package(tmp_path_factory) -> Iterator[ModuleType]:
    """The generated client, importable for this module's tests (generated once)."""
    package = generate_client(tmp_path_factory.mktemp("openapi-client"))
    sys.path.insert(0, str(package.parent))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(package.parent))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def generated(name: str) -> ModuleType:
    """A module of the generated client: ``generated("api.me.get_me")``."""
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_reads_me_creates_a_token_writes_and_lists(client_package, hub):
    models = generated("models")
    get_me = generated("api.me.get_me")
    create_token = generated("api.tokens.create_token")
    list_tokens = generated("api.tokens.list_tokens")
    put_annotation = generated("api.annotations.put_annotation")
    list_annotations = generated("api.annotations.list_project_annotations")

    admin = logged_in_admin(hub)
    # Every scope: the token lists users and the audit log too.
    minted = admin.api("POST", "tokens", {"name": "client", "scopes": list(SCOPES)})
    assert minted.status_code == 201, minted.text
    client = client_package.AuthenticatedClient(
        base_url=f"{hub.url}/hub/annotations/api",
        token=minted.json()["token"],
        raise_on_unexpected_status=True,  # a status the document does not list fails
    )

    me = get_me.sync(client=client)
    assert isinstance(me, models.Me), me
    assert (me.name, me.auth, me.kind) == ("admin", models.MeAuth.TOKEN, models.Kind.USER)
    assert sorted(me.scopes) == sorted(models.Scope(s) for s in SCOPES)
    assert [(p.slug, p.role) for p in me.projects] == [("demo", models.Role.ADMIN)]

    created = create_token.sync(
        client=client, body=models.NewToken(name="made by the client", scopes=[models.Scope(READ)])
    )
    assert isinstance(created, models.TokenWithSecret), created
    assert TOKEN.fullmatch(created.token) and created.scopes == [models.Scope(READ)]

    data = {"label": "cat", "box": [1, 2, 3, 4], "note": None}
    written = put_annotation.sync(
        "demo", "img1", "admin", client=client, body=models.AnnotationWrite(data=data)
    )
    assert isinstance(written, models.Annotation), written
    assert (written.owner, written.version, written.data) == ("admin", 1, data)

    # Lists: typed items, and `next` a cursor the client passes back as it is.
    first = list_tokens.sync(client=client, limit=1)
    assert isinstance(first, models.TokenPage), first
    assert isinstance(first.next_, str)
    rest = list_tokens.sync(client=client, cursor=first.next_, limit=1)
    assert isinstance(rest, models.TokenPage) and rest.next_ is None, rest
    tokens = [*first.items, *rest.items]
    assert all(isinstance(t, models.Token) for t in tokens), tokens
    assert [(t.name, t.owner) for t in tokens] == [
        ("client", "admin"),
        ("made by the client", "admin"),
    ]
    assert tokens[1].id == created.id and tokens[1].created_at == created.created_at

    page = list_annotations.sync("demo", client=client, owner="admin")
    assert isinstance(page, models.AnnotationPage), page
    assert page.next_ is None and len(page.items) == 1
    (annotation,) = page.items
    assert isinstance(annotation, models.Annotation), annotation
    assert (annotation.project, annotation.item, annotation.version) == ("demo", "img1", 1)
    assert annotation.data == data and annotation.updated_at == written.updated_at

    # Every other list: its page parses, into items of its own type.
    users = generated("api.users.list_users").sync(client=client)
    projects = generated("api.projects.list_projects").sync(client=client)
    members = generated("api.members.list_members").sync("demo", client=client)
    audit = generated("api.audit.list_audit_events").sync(client=client, action="token")
    for listed, kind, item in (
        (users, models.UserPage, models.User),
        (projects, models.ProjectPage, models.Project),
        (members, models.MemberPage, models.Member),
        (audit, models.AuditPage, models.AuditEvent),
    ):
        assert isinstance(listed, kind) and listed.items, listed
        assert all(isinstance(one, item) for one in listed.items), listed.items
    assert "admin" in [user.name for user in users.items]
    assert [(p.slug, p.role) for p in projects.items] == [("demo", models.Role.ADMIN)]
    assert {(m.name, m.role) for m in members.items} >= {("admin", models.Role.ADMIN)}
    assert [e.action for e in audit.items] == ["token.create", "token.create"]
