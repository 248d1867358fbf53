"""Projects, memberships, and the projects declared in jupyterhub_config.py."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import cursors, usernames
from .access_cache import AccessCache
from .accounts import find_account, require_account
from .errors import Conflict, Forbidden, InvalidInput, NotFound
from .models import Account, Membership, Project
from .permissions import PROJECT_READ, SCOPES_FOR, Principal, check_grant, check_role
from .store import Store

_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
SETTING_TYPES = {
    "description": str,
    "share_annotations": bool,
    "api_access": bool,
    "overlap": int,
    "lease_minutes": int,
    "blind": bool,
}
SETTINGS = tuple(SETTING_TYPES)
# The bounds of the integer settings (docs/work.md): up to 100 annotators per item, and
# a lease from a minute to a week.
SETTING_BOUNDS = {"overlap": (1, 100), "lease_minutes": (1, 7 * 24 * 60)}
_KINDS = {str: "a string", bool: "true or false", int: "a whole number"}
_DECLARED_KEYS = (*SETTINGS, "members")


@dataclass(frozen=True)
class ProjectView:
    slug: str
    description: str
    share_annotations: bool
    api_access: bool
    overlap: int
    lease_minutes: int
    blind: bool
    role: str | None  # the caller's

    def as_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MemberView:
    name: str
    role: str
    source: str
    show_others: bool

    def as_json(self) -> dict:
        return dict(self.__dict__)


def check_slug(slug: str) -> None:
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        raise InvalidInput(
            f"Invalid project slug {slug!r}: use 1 to 64 lower-case letters, digits and "
            "'-', starting with a letter or digit."
        )


def check_settings(settings: dict, where: str) -> None:
    """Types of the project settings in ``settings`` (any subset of SETTINGS)."""
    for key, value in settings.items():
        wanted = SETTING_TYPES.get(key)
        if wanted is None:
            continue
        # bool is an int to Python, never a number of annotators to a user
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise InvalidInput(f"{where}: {key!r} must be {_KINDS[wanted]}.")
        if key in SETTING_BOUNDS:
            low, high = SETTING_BOUNDS[key]
            if not low <= value <= high:
                raise InvalidInput(f"{where}: {key!r} must be from {low} to {high}.")


def parse_declared(projects: dict) -> dict[str, dict]:
    """Check the ``projects`` config and return it with normalised member names."""
    parsed = {}
    for slug, spec in projects.items():
        where = f"c.AnnotationAuthenticator.projects[{slug!r}]"
        check_slug(slug)
        if not isinstance(spec, dict):
            raise InvalidInput(f"{where} must be a dict.")
        unknown = set(spec) - set(_DECLARED_KEYS)
        if unknown:
            raise InvalidInput(
                f"{where} has unknown keys {sorted(unknown)}: use {', '.join(_DECLARED_KEYS)}."
            )
        check_settings(spec, where)
        declared_members = spec.get("members") or {}
        if not isinstance(declared_members, dict):
            raise InvalidInput(f"{where}['members'] must be a dict of name: role.")
        members = {}
        for name, role in declared_members.items():
            try:
                if not isinstance(name, str) or not isinstance(role, str):
                    raise InvalidInput("names and roles are strings")
                name = usernames.normalize(name)
                usernames.account_kind(name)
                check_role(role)
            except InvalidInput as e:
                raise InvalidInput(f"{where}['members'][{name!r}]: {e.message}") from None
            members[name] = role
        if "admin" not in members.values():
            raise InvalidInput(f"{where}['members'] needs at least one 'admin'.")
        parsed[slug] = {**{k: spec[k] for k in SETTINGS if k in spec}, "members": members}
    return parsed


class Projects:
    def __init__(
        self, store: Store, declared: dict[str, dict], cache: AccessCache | None = None
    ) -> None:
        """``declared``: the output of `parse_declared` (config projects); ``cache``:
        where `access` and `visible_to` keep what they read (None: no caching)."""
        self.store = store
        self.declared = declared
        self.cache = cache if cache is not None else AccessCache(store, 0)

    # -- config -----------------------------------------------------------------

    def apply_declared(self) -> list[str]:
        """Create or update config projects and re-apply their memberships.

        Called at every hub start. Members without an account get a password-less
        one; config memberships no longer declared are removed; runtime ones stay.
        Returns the names of the accounts it created.
        """
        created = []
        with self.store.transaction() as s:
            for slug, spec in self.declared.items():
                project = _project(s, slug) or Project(slug=slug)
                for key in SETTINGS:
                    if key in spec:
                        setattr(project, key, spec[key])
                s.add(project)
                s.flush()
                current = {
                    m.account_id: m
                    for m in s.scalars(
                        select(Membership).where(Membership.project_id == project.id)
                    )
                }
                wanted = set()
                for name, role in spec["members"].items():
                    account = find_account(s, name)
                    if account is None:
                        account = Account(name=name, kind=usernames.account_kind(name))
                        s.add(account)
                        s.flush()
                        created.append(name)
                    wanted.add(account.id)
                    member = current.get(account.id) or Membership(
                        project_id=project.id, account_id=account.id
                    )
                    member.role, member.source = role, "config"
                    s.add(member)
                for account_id, member in current.items():
                    if member.source == "config" and account_id not in wanted:
                        s.delete(member)
        return created

    def _declared_conflict(self, slug: str, what: str) -> Conflict:
        return Conflict(
            f"{what} is declared in jupyterhub_config.py "
            f"(c.AnnotationAuthenticator.projects[{slug!r}]): change it there and restart "
            "the hub."
        )

    # -- projects -----------------------------------------------------------------

    def access(self, slug: str, name: str) -> tuple[str | None, bool]:
        """``name``'s membership role in ``slug`` (None if either does not exist), and
        the project's ``api_access`` switch (True when there is no such project)."""
        return self.cache.lookup(("access", slug, name), lambda: self._access(slug, name))

    def _access(self, slug: str, name: str) -> tuple[str | None, bool]:
        with self.store.reading() as conn:  # on every project request: one Core query
            row = conn.execute(
                select(Project.api_access, Membership.role)
                .outerjoin(
                    Membership,
                    (Membership.project_id == Project.id)
                    & (
                        Membership.account_id
                        == select(Account.id).where(Account.name == name).scalar_subquery()
                    ),
                )
                .where(Project.slug == slug)
            ).first()
        return (None, True) if row is None else (row.role, row.api_access)

    def visible_to(self, name: str, admin: bool) -> list[ProjectView]:
        """Hub admins see every project (as admin); others the ones they belong to."""
        views = self.cache.lookup(("visible", name, admin), lambda: self._visible_to(name, admin))
        return list(views)

    def _visible_to(self, name: str, admin: bool) -> tuple[ProjectView, ...]:
        columns = (
            Project.slug,
            Project.description,
            Project.share_annotations,
            Project.api_access,
            Project.overlap,
            Project.lease_minutes,
            Project.blind,
        )
        if admin:
            query = select(*columns, literal("admin").label("role"))
        else:
            query = (
                select(*columns, Membership.role)
                .join(Membership, Membership.project_id == Project.id)
                .join(Account, Account.id == Membership.account_id)
                .where(Account.name == name)
            )
        with self.store.reading() as conn:  # on every `me`: one Core query, no ORM objects
            rows = conn.execute(query.order_by(Project.slug)).all()
        return tuple(ProjectView(**row._mapping) for row in rows)

    def roles(self, name: str | None = None) -> dict[str, dict[str, str]]:
        """Memberships as name -> slug -> role, of every account or of ``name`` alone,
        read from the database (never the cache: inside an action it sees the action's
        own writes)."""
        query = (
            select(Account.name, Project.slug, Membership.role)
            .join(Membership, Membership.account_id == Account.id)
            .join(Project, Project.id == Membership.project_id)
        )
        if name is not None:
            query = query.where(Account.name == name)
        roles: dict[str, dict[str, str]] = {}
        with self.store.reading() as conn:
            for member, slug, role in conn.execute(query):
                roles.setdefault(member, {})[slug] = role
        return roles

    def visible_to_principal(self, principal: Principal) -> list[ProjectView]:
        """The projects a request may see: for a token, only within its projects, with
        a reading scope, and where the project's ``api_access`` is on."""
        if principal.auth == "token" and not SCOPES_FOR[PROJECT_READ] & principal.scopes:
            return []  # decided before any query
        views = self.visible_to(principal.name, principal.admin)
        if principal.auth != "token":
            return views
        return [
            v
            for v in views
            if v.api_access and (principal.projects is None or v.slug in principal.projects)
        ]

    def visible_page(
        self, principal: Principal, cursor: str | None, limit: int
    ) -> tuple[list[ProjectView], str | None]:
        """A page of `visible_to_principal` by slug, from ``cursor``, and the next
        page's cursor (from the cached list: sorted here, as the cursor compares)."""
        cursors.check_limit(limit)
        views = sorted(self.visible_to_principal(principal), key=lambda view: view.slug)
        if cursor is not None:
            (after,) = cursors.decode(cursor, str)
            views = [view for view in views if view.slug > after]
        return cursors.cut(views, limit, lambda view: (view.slug,))

    def get(self, slug: str, role: str | None) -> ProjectView:
        with self.store.transaction(readonly=True) as s:
            return _view(_require_project(s, slug), role)

    def create(self, slug: str, settings: dict, creator: str) -> ProjectView:
        """A new project, with ``creator`` as its first admin (a project needs one)."""
        check_slug(slug)
        check_settings(settings, "project")
        try:
            with self.store.transaction() as s:
                if _project(s, slug) is not None:
                    raise Conflict(f"A project {slug!r} exists already: choose another slug.")
                project = Project(slug=slug, **settings)
                s.add(project)
                s.flush()
                account = require_account(s, creator)
                s.add(Membership(project_id=project.id, account_id=account.id, role="admin"))
                return _view(project, "admin")
        except IntegrityError:
            raise Conflict(f"A project {slug!r} exists already: choose another slug.") from None

    def update(self, slug: str, changes: dict, role: str | None) -> ProjectView:
        check_settings(changes, "project")
        locked = set(changes) & set(self.declared.get(slug, {})) - {"members"}
        if locked:
            raise self._declared_conflict(slug, f"The setting {sorted(locked)[0]!r}")
        with self.store.transaction() as s:
            project = _require_project(s, slug)
            for key, value in changes.items():
                setattr(project, key, value)
            return _view(project, role)

    def delete(self, slug: str) -> None:
        if slug in self.declared:
            raise self._declared_conflict(slug, f"The project {slug!r}")
        with self.store.transaction() as s:
            s.delete(_require_project(s, slug))

    # -- members ------------------------------------------------------------------

    def members(
        self, slug: str, cursor: str | None = None, limit: int | None = None
    ) -> tuple[list[MemberView], str | None]:
        """Members by name, a page of ``limit`` from ``cursor`` and the next page's
        cursor; ``limit`` None: all of them."""
        query = (
            select(Account.name, Membership.role, Membership.source, Membership.show_others)
            .join(Account, Account.id == Membership.account_id)
            .order_by(Account.name)
        )
        with self.store.transaction(readonly=True) as s:
            project = _require_project(s, slug)
            query = cursors.after(query, cursor, limit, Account.name)
            rows = s.execute(query.where(Membership.project_id == project.id)).all()
        return cursors.cut([MemberView(*row) for row in rows], limit, lambda m: (m.name,))

    def set_member(self, slug: str, name: str, role: str, granter_role: str | None) -> bool:
        """Give ``name`` ``role`` in ``slug``; True if they were not a member before."""
        check_grant(granter_role, role)
        with self.store.transaction() as s:
            project = _require_project(s, slug, lock=True)
            account = require_account(s, name)
            member = _membership(s, project.id, account.id)
            if member is not None and member.source == "config":
                raise self._declared_conflict(slug, f"The membership of {name!r}")
            if member is not None and member.role == "admin" and role != "admin":
                _keep_one_admin(s, project)
            created = member is None
            if created:
                member = Membership(project_id=project.id, account_id=account.id)
                s.add(member)
            member.role = role
            return created

    def remove_member(self, slug: str, name: str) -> None:
        with self.store.transaction() as s:
            project = _require_project(s, slug, lock=True)
            account = find_account(s, name)
            member = _membership(s, project.id, account.id) if account else None
            if member is None:
                raise NotFound(f"{name!r} is not a member of project {slug!r}.")
            if member.source == "config":
                raise self._declared_conflict(slug, f"The membership of {name!r}")
            if member.role == "admin":
                _keep_one_admin(s, project)
            s.delete(member)

    def set_show_others(self, slug: str, name: str, show_others: bool, caller: str) -> None:
        """A member's own choice to see others' annotations where the project shares them."""
        if name != caller:
            raise Forbidden("Only the member themself can change their 'show_others'.")
        with self.store.transaction() as s:
            project = _require_project(s, slug)
            account = find_account(s, name)
            member = _membership(s, project.id, account.id) if account else None
            if member is None:
                raise NotFound(
                    f"You are not a member of project {slug!r} (hub admins see every "
                    "annotation anyway)."
                )
            member.show_others = show_others


def _view(project: Project, role: str | None) -> ProjectView:
    return ProjectView(
        slug=project.slug,
        description=project.description,
        share_annotations=project.share_annotations,
        api_access=project.api_access,
        overlap=project.overlap,
        lease_minutes=project.lease_minutes,
        blind=project.blind,
        role=role,
    )


def _project(s: Session, slug: str) -> Project | None:
    return s.scalars(select(Project).where(Project.slug == slug)).first()


def _require_project(s: Session, slug: str, lock: bool = False) -> Project:
    """The project row; ``lock`` it so membership changes of one project take turns."""
    query = select(Project).where(Project.slug == slug)
    project = s.scalars(query.with_for_update() if lock else query).first()
    if project is None:
        raise NotFound(f"There is no project {slug!r}, or you are not a member of it.")
    return project


def _membership(s: Session, project_id: int, account_id: int) -> Membership | None:
    return s.scalars(
        select(Membership).where(
            Membership.project_id == project_id, Membership.account_id == account_id
        )
    ).first()


def _keep_one_admin(s: Session, project: Project) -> None:
    """Refuse a change that would take away the project's last admin."""
    admins = s.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.project_id == project.id, Membership.role == "admin")
    )
    if admins <= 1:
        raise Conflict(
            f"Project {project.slug!r} must keep at least one admin: make someone else admin first."
        )
