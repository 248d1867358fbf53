"""HTML pages for users (hub admins), projects and tokens; forms post back with XSRF."""

from __future__ import annotations

import re
from collections.abc import Callable

from jupyterhub_annotations.authenticator.audit import ACTIONS
from jupyterhub_annotations.authenticator.errors import AnnotationError, Forbidden, InvalidInput
from jupyterhub_annotations.authenticator.links import link_url
from jupyterhub_annotations.authenticator.permissions import (
    AUTHENTICATED,
    PROJECT_MANAGE,
    PROJECT_READ,
    PROJECTS_CREATE,
    SCOPES,
    TOKENS_MANAGE,
    USERS_MANAGE,
)
from jupyterhub_annotations.authenticator.projects import SETTINGS
from jupyterhub_annotations.authenticator.tokens import (
    DEFAULT_SCOPES,
    TokenView,
    check_may_manage_others,
)
from jupyterhub_annotations.authenticator.usernames import SERVICE_PREFIX, normalize
from tornado.httputil import url_concat

from .api import audit_filters
from .base import PageHandler, no_store, requires, whole_number


class ProjectFormMixin:
    def settings_form(self) -> dict:
        """Project settings from a form: unchecked boxes are absent, so False; numbers
        a form does not have are left out (their defaults, or unchanged)."""
        settings = {
            "description": self.get_body_argument("description", ""),
            "share_annotations": bool(self.get_body_argument("share_annotations", "")),
            "api_access": bool(self.get_body_argument("api_access", "")),
            "blind": bool(self.get_body_argument("blind", "")),
        }
        for key in ("overlap", "lease_minutes"):
            value = self.get_body_argument(key, None)
            if value is not None:
                settings[key] = whole_number(key, value)
        return settings


class UsersPage(PageHandler):
    """``users``: hub admins create accounts, hand over links, (de)activate, set admin."""

    @requires(USERS_MANAGE)
    async def get(self) -> None:
        await self.show()

    @requires(USERS_MANAGE)
    async def post(self) -> None:
        action = self.get_body_argument("action", "")
        name = normalize(self.get_body_argument("name", ""))
        actions: dict[str, Callable[[], tuple[str, str | None]]] = {
            "create": lambda: self.create(name, admin=bool(self.get_body_argument("admin", ""))),
            "create-service": lambda: self.create(SERVICE_PREFIX + name, admin=False),
            "link": lambda: (f"New one-time link for {name}:", self.link(name)),
            "revoke-links": lambda: self.revoke_links(name),
            "deactivate": lambda: self.change("active", name, False, "deactivated"),
            "activate": lambda: self.change("active", name, True, "reactivated"),
            "grant-admin": lambda: self.change("admin", name, True, "made admin"),
            "revoke-admin": lambda: self.change("admin", name, False, "no longer admin"),
        }
        try:
            if action not in actions:
                raise InvalidInput(f"Unknown action {action!r}.")
            message, link = await self.act(actions[action])
        except AnnotationError as e:
            await self.show(status=e.status, error=e.message)
            return
        await self.show(message=message, link=link)

    # The actions run in the store's threads (`act`), their audit records with them.

    def create(self, name: str, admin: bool) -> tuple[str, str | None]:
        account = self.accounts.create(name, admin=admin)
        self.record("user.create", name, kind=account.kind, admin=admin)
        if account.kind == "service":
            return f"Created service account {name}. It logs in with tokens only.", None
        return f"Created {name}. Hand over this one-time invitation link:", self.link(name)

    def link(self, name: str) -> str:
        token = self.accounts.invite_or_reset_link(name)
        self.record("link.issue", name)
        return link_url(token, self.hub_url())

    def revoke_links(self, name: str) -> tuple[str, None]:
        self.accounts.revoke_links(name)
        self.record("link.revoke", name, reason="revoked")
        return f"{name}: links revoked. Any link issued before no longer works.", None

    def change(self, field: str, name: str, value: bool, done: str) -> tuple[str, None]:
        self.update_account(name, **{field: value})
        return f"{name}: {done}.", None

    async def show(self, status: int = 200, **ns) -> None:
        if ns.get("link"):
            no_store(self)
        await self.render_page(
            "annotations_users.html",
            status=status,
            accounts=(await self.run(self.accounts.listing))[0],
            is_admin=self.accounts.is_admin,
            **ns,
        )


class ProjectsPage(ProjectFormMixin, PageHandler):
    """``projects``: your projects and your role; hub admins create projects."""

    @requires(AUTHENTICATED)
    async def get(self) -> None:
        await self.show()

    @requires(PROJECTS_CREATE)
    async def post(self) -> None:
        slug = self.get_body_argument("slug", "").strip()
        settings = self.settings_form()

        def create() -> None:
            self.projects.create(slug, settings, creator=self.principal.name)
            self.record("project.create", slug, **settings)

        try:
            await self.act(create)
        except AnnotationError as e:
            await self.show(status=e.status, error=e.message)
            return
        self.redirect(f"{self.hub.base_url}annotations/projects/{slug}", status=303)

    async def show(self, status: int = 200, **ns) -> None:
        p = self.principal
        await self.render_page(
            "annotations_projects.html",
            status=status,
            projects=await self.run(self.projects.visible_to, p.name, p.admin),
            **ns,
        )


class ProjectPage(ProjectFormMixin, PageHandler):
    """``projects/{slug}``: members and settings; project admins change them."""

    @requires(PROJECT_READ)
    async def get(self, slug: str) -> None:
        await self.show(slug)

    @requires(PROJECT_MANAGE)
    async def post(self, slug: str) -> None:
        try:
            message = await self.act(self.apply, slug, self.get_body_argument("action", ""))
        except AnnotationError as e:
            await self.show(slug, status=e.status, error=e.message)
            return
        await self.show(slug, message=message)

    def apply(self, slug: str, action: str) -> str:
        """The form's action, in the store's threads; what to tell the user."""
        name = normalize(self.get_body_argument("name", ""))
        if action == "settings":
            # Settings declared in the config are shown read-only and not posted.
            declared = self.projects.declared.get(slug, {})
            changes = {k: v for k, v in self.settings_form().items() if k not in declared}
            self.projects.update(slug, changes, self.project_role)
            self.record("project.update", slug, **changes)
            return "Settings saved."
        if action == "set-member":
            role = self.get_body_argument("role", "")
            self.projects.set_member(slug, name, role, granter_role=self.project_role)
            self.record("member.set", name, project=slug, role=role)
            return f"{name} is now {role}."
        if action == "remove-member":
            self.projects.remove_member(slug, name)
            self.record("member.remove", name, project=slug)
            return f"{name} is no longer a member."
        raise InvalidInput(f"Unknown action {action!r}.")

    async def show(self, slug: str, status: int = 200, **ns) -> None:
        declared = self.projects.declared.get(slug, {})
        project, members, progress = await self.run(
            lambda: (
                self.projects.get(slug, self.project_role),
                self.projects.members(slug)[0],
                self.core.work.progress(slug),
            )
        )
        await self.render_page(
            "annotations_project.html",
            status=status,
            project=project,
            members=members,
            progress=progress,
            declared=declared,
            can_manage=self.project_role == "admin",
            # Settings all set in the config: no form with nothing to save.
            can_edit_settings=self.project_role == "admin" and not set(SETTINGS) <= set(declared),
            **ns,
        )


class TokensPage(PageHandler):
    """``tokens``: your personal access tokens: create (shown once), list, revoke.

    Hub admins also see everyone's tokens, each with a Revoke button posting the same
    ``revoke`` action: `Tokens.revoke` decides who may revoke whose (a non-admin gets
    404 for somebody else's token, as in the API).
    """

    DEFAULT_DAYS = 30

    @property
    def tokens(self):
        return self.core.tokens

    @requires(TOKENS_MANAGE)
    async def get(self) -> None:
        await self.show()

    @requires(TOKENS_MANAGE)
    async def post(self) -> None:
        action = self.get_body_argument("action", "")
        try:
            if action == "create":
                form = self.create_form()
                try:
                    plaintext, view = await self.act(self.create, form)
                except AnnotationError as e:
                    # Keep what was typed, so one mistake does not mean starting over.
                    await self.show(status=e.status, error=e.message, form=form)
                    return
                await self.show(
                    message=f"Created token {view.name!r}. Copy it now: it is not shown again.",
                    new_token=plaintext,
                )
                return
            if action != "revoke":
                raise InvalidInput(f"Unknown action {action!r}: use create or revoke.")
            message = await self.act(self.revoke, self.token_id())
        except AnnotationError as e:
            await self.show(status=e.status, error=e.message)
            return
        await self.show(message=message)

    def revoke(self, token_id: int) -> str:
        # For the message only: names of the tokens the caller can see on this page.
        names = {t.id: t.name for t in self.listing(everyone=self.sees_everyones())}
        owner = self.tokens.revoke(token_id, self.principal)
        self.record("token.revoke", owner, id=token_id)
        label = repr(names[token_id]) if token_id in names else str(token_id)
        whose = "" if owner == self.principal.name else f" of {owner}"
        return f"Token {label}{whose} revoked: it no longer works."

    def sees_everyones(self) -> bool:
        """Whether the caller may act on everyone's tokens (`check_may_manage_others`)."""
        try:
            check_may_manage_others(self.principal)
        except Forbidden:
            return False
        return True

    def listing(self, everyone: bool = False) -> list[TokenView]:
        """The caller's live tokens, or everyone's (only for `sees_everyones`)."""
        return self.tokens.listing(None if everyone else self.principal.name)[0]

    def create_form(self) -> dict:
        return {
            "name": self.get_body_argument("name", "").strip(),
            "scopes": self.get_body_arguments("scopes"),
            "projects": self.get_body_arguments("projects"),
            "days": self.get_body_argument("expires_in_days", "").strip(),
        }

    def create(self, form: dict):
        max_days = self.tokens.max_lifetime_days
        if not form["scopes"]:
            raise InvalidInput("Check at least one scope, e.g. annotations:read.")
        if not re.fullmatch(r"[0-9]{1,6}", form["days"]):
            raise InvalidInput(f"Expiry must be a whole number of days, 1 to {max_days}.")
        days = int(form["days"])
        if not 1 <= days <= max_days:
            raise InvalidInput(f"Expiry must be 1 to {max_days} days, not {days}.")
        plaintext, view = self.tokens.create(
            self.principal,
            form["name"],
            scopes=form["scopes"],
            # No project checked: the token works in all of the caller's projects.
            projects=form["projects"] or None,
            expires_in_days=days,
            via=self.principal,
        )
        # The plaintext is never logged: only the id and the name.
        self.record("token.create", view.owner, id=view.id, name=view.name, scopes=view.scopes)
        return plaintext, view

    def token_id(self) -> int:
        text = self.get_body_argument("id", "").strip()
        if not re.fullmatch(r"[0-9]{1,9}", text):
            raise InvalidInput(f"{text[:20]!r} is not a token id: use a Revoke button.")
        return int(text)

    async def show(self, status: int = 200, new_token: str | None = None, **ns) -> None:
        p = self.principal
        if new_token is not None:
            no_store(self)
        max_days = self.tokens.max_lifetime_days
        default_form = {
            "name": "",
            "scopes": list(DEFAULT_SCOPES),
            "projects": [],
            "days": str(min(self.DEFAULT_DAYS, max_days)),
        }
        ns.setdefault("form", default_form)

        def read() -> tuple:
            return (
                self.listing(),
                # Hub admins only; None: no such section on the page.
                self.listing(everyone=True) if self.sees_everyones() else None,
                [v.slug for v in self.projects.visible_to(p.name, p.admin)],
            )

        mine, everyones, my_projects = await self.run(read)
        await self.render_page(
            "annotations_tokens.html",
            status=status,
            tokens=mine,
            everyones_tokens=everyones,
            now=self.tokens.clock(),
            scopes=[s for s in SCOPES if s != USERS_MANAGE or p.admin],
            my_projects=my_projects,
            max_days=max_days,
            new_token=new_token,
            # For the notebook snippet: where the hub answers, without its /hub/ part.
            hub_origin=self.hub_url().removesuffix("/").removesuffix("/hub"),
            **ns,
        )


class AuditPage(PageHandler):
    """``audit``: the audit log for hub admins, filtered, newest first."""

    @requires(USERS_MANAGE)
    async def get(self) -> None:
        filters = audit_filters(self)
        events, cursor = await self.run(self.core.audit.page, **filters)
        older = None
        if cursor is not None:
            query = {k: v for k, v in filters.items() if v and k != "cursor"}
            older = url_concat(f"{self.hub.base_url}annotations/audit", {**query, "cursor": cursor})
        await self.render_page(
            "annotations_audit.html", events=events, next=older, filters=filters, actions=ACTIONS
        )
