"""What JupyterHub's own database shows of our store (SPEC 16): a hub user for every
active person's account, with its admin flag, and one hub group per project and role,
so JupyterHub's admin page, RBAC, sharing and other services see them.

JupyterHub's `Authenticator.manage_groups` is not used: it hands every group of every
user to the Authenticator (each login replaces them all) and makes the hub refuse
`load_groups`. The mirror owns only the groups named by `project_group`; operators'
groups, `load_groups` and `load_roles` keep working beside them.

Writes go through the hub's own session, on the event loop, as JupyterHub's handlers
do; the callers commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jupyterhub import orm
from jupyterhub.roles import assign_default_roles
from jupyterhub_annotations.authenticator.core import Core
from jupyterhub_annotations.authenticator.models import Account
from jupyterhub_annotations.authenticator.permissions import ROLES
from sqlalchemy.orm import Session

GROUP_PREFIX = "annotations-"


def project_group(slug: str, role: str) -> str:
    """The hub group of a project's members with ``role``: ``annotations-<slug>-<role>``."""
    return f"{GROUP_PREFIX}{slug}-{role}"


@dataclass(frozen=True)
class AccountMirror:
    """What the hub shows of one account, read in the store's threads."""

    name: str
    person: bool
    active: bool
    admin: bool
    allowed: bool  # by JupyterHub's allow and block lists (`Core.may_use`)
    roles: Mapping[str, str]  # slug -> role

    @classmethod
    def of(cls, core: Core, account: Account, roles: Mapping[str, str]) -> AccountMirror:
        return cls(
            name=account.name,
            person=account.kind == "user",
            active=account.active,
            admin=core.accounts.is_admin(account),
            allowed=core.may_use(account.name),
            roles=roles,
        )


def read(core: Core, name: str) -> AccountMirror | None:
    """In the store's threads: what the hub should show of ``name`` (None: no account)."""
    account = core.accounts.get(name)
    if account is None:
        return None
    return AccountMirror.of(core, account, core.projects.roles(account.name).get(account.name, {}))


def set_groups(db: Session, user: orm.User, roles: Mapping[str, str]) -> None:
    """Make ``user``'s mirrored groups those of ``roles`` (slug -> role), creating
    missing groups; their other groups stay as they are."""
    wanted = {project_group(slug, role) for slug, role in roles.items()}
    kept = [g for g in user.groups if not g.name.startswith(GROUP_PREFIX) or g.name in wanted]
    missing = wanted - {g.name for g in kept}
    if len(kept) == len(user.groups) and not missing:
        return  # no write: this runs at every login and refresh
    for name in sorted(missing):
        group = orm.Group.find(db, name)
        if group is None:
            group = orm.Group(name=name)
            db.add(group)
        kept.append(group)
    user.groups = kept


def set_admin(db: Session, user: orm.User, admin: bool) -> None:
    if user.admin != admin:
        user.admin = admin
        assign_default_roles(db, entity=user)


def show(db: Session, mirror: AccountMirror) -> None:
    """The hub's user for an account: created for an active person the hub's lists
    allow, its admin flag and groups set; any other account's hub user (if any) is
    updated, not created. (With `allowed_users` set, JupyterHub lets every user in its
    database log in: a hub user for everyone would open that list.)"""
    if not mirror.person:
        return  # service accounts log in with tokens only: no hub user
    user = orm.User.find(db, mirror.name)
    if user is None:
        if not (mirror.active and mirror.allowed):
            return
        user = orm.User(name=mirror.name)
        db.add(user)
        assign_default_roles(db, entity=user)
    set_admin(db, user, mirror.admin)
    set_groups(db, user, mirror.roles)


# Audit actions that change what the hub shows of the account they name.
_ACCOUNT_ACTIONS = frozenset({"user.create", "user.update", "member.set", "member.remove"})


class Changes:
    """What one action changed for the hub: noted as the action records its audit
    events (in the store's threads), read in the same transaction, and applied to the
    hub's database once it has committed (on the event loop)."""

    def __init__(self) -> None:
        self.accounts: dict[str, None] = {}  # an ordered set
        self.dropped_projects: list[str] = []

    def note(self, action: str, actor: str | None, target: str | None) -> None:
        if action in _ACCOUNT_ACTIONS and target:
            self.accounts[target] = None
        elif action == "project.create" and actor:
            self.accounts[actor] = None  # the creator is its first admin
        elif action == "project.delete" and target:
            self.dropped_projects.append(target)

    def read(self, core: Core) -> list[AccountMirror]:
        mirrors = (read(core, name) for name in self.accounts)
        return [mirror for mirror in mirrors if mirror is not None]

    def apply(self, db: Session, mirrors: list[AccountMirror]) -> None:
        if not mirrors and not self.dropped_projects:
            return
        for mirror in mirrors:
            show(db, mirror)
        for slug in self.dropped_projects:
            drop_project(db, slug)
        db.commit()


def drop_project(db: Session, slug: str) -> None:
    """Delete a deleted project's groups."""
    for role in ROLES:
        group = orm.Group.find(db, project_group(slug, role))
        if group is not None:
            db.delete(group)


def show_all(db: Session, core: Core) -> None:
    """At hub start: every active person's account gets its hub user, every hub user
    its groups, and groups of projects that no longer exist go. Reads the store on the
    calling thread (the hub is not serving yet)."""
    roles = core.projects.roles()
    accounts, _ = core.accounts.listing()
    for account in accounts:
        show(db, AccountMirror.of(core, account, roles.get(account.name, {})))
    projects = core.projects.visible_to("", admin=True)
    existing = {project_group(p.slug, role) for p in projects for role in ROLES}
    for group in db.query(orm.Group).filter(orm.Group.name.startswith(GROUP_PREFIX)):
        if group.name not in existing:
            db.delete(group)
