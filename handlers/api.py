"""The JSON API (``/hub/annotations/api/``): parse, call the core, render JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from jupyterhub.utils import maybe_future
from tornado import web

from authenticator.audit import PAGE_SIZE as AUDIT_PAGE_SIZE
from authenticator.errors import InvalidInput, NotFound
from authenticator.models import Account
from authenticator.permissions import (
    AUTHENTICATED,
    MEMBER_SELF,
    PROJECT_DELETE,
    PROJECT_MANAGE,
    PROJECT_READ,
    PROJECTS_CREATE,
    TOKENS_MANAGE,
    USERS_MANAGE,
)
from authenticator.projects import SETTING_TYPES
from authenticator.tokens import check_may_manage_others
from authenticator.usernames import normalize

from .base import APIHandler, no_store, requires


def listing(items: list) -> dict:
    # Users, projects and members are short lists: one page, no cursor needed yet.
    return {"items": items, "next": None}


class MeHandler(APIHandler):
    """``GET me``: who the caller is, as the API sees them."""

    @requires(AUTHENTICATED)
    def get(self) -> None:
        p = self.principal
        projects = self.projects.visible_to_principal(p)
        self.write_json(
            {
                "name": p.name,
                "admin": p.admin,
                "kind": p.kind,
                "auth": p.auth,
                "scopes": sorted(p.scopes),
                "projects": [{"slug": v.slug, "role": v.role} for v in projects],
            }
        )


class UserAPIHandler(APIHandler):
    def user_json(self, account: Account, link_token: str | None = None) -> dict:
        body = {
            "name": account.name,
            "admin": self.accounts.is_admin(account),
            "active": account.active,
            "kind": account.kind,
            "password_set": account.password_hash is not None,
            "created_at": account.created_at.isoformat(),
        }
        if link_token is not None:
            body["link"] = self.authenticator.link_url(link_token, self.hub_url())
        return body

    def require_account(self, name: str) -> Account:
        account = self.accounts.get(name)
        if account is None:
            raise NotFound(f"There is no account named {name!r}.")
        return account


class UsersHandler(UserAPIHandler):
    """``GET/POST users``: hub admins list accounts and create them (with an invite link)."""

    @requires(USERS_MANAGE)
    def get(self) -> None:
        self.write_json(listing([self.user_json(a) for a in self.accounts.listing()]))

    @requires(USERS_MANAGE)
    async def post(self) -> None:
        body = await self.json_object({"name": str, "admin": bool}, required=("name",))
        account = self.accounts.create(normalize(body["name"]), admin=body.get("admin", False))
        token = self.accounts.issue_link(account.name, "invite") if account.kind == "user" else None
        self.audit("user.create", account.name, kind=account.kind, admin=account.admin)
        if token is not None:
            self.audit("link.issue", account.name, purpose="invite")
        payload = self.user_json(account, token)
        payload.setdefault("link", None)  # service accounts: no password, no link
        no_store(self)
        self.write_json(payload, status=201)


class UserHandler(UserAPIHandler):
    """``GET/PATCH/DELETE users/{name}``."""

    @requires(USERS_MANAGE)
    def get(self, name: str) -> None:
        self.write_json(self.user_json(self.require_account(name)))

    @requires(USERS_MANAGE)
    async def patch(self, name: str) -> None:
        body = await self.json_object({"admin": bool, "active": bool})
        account = self.accounts.update(name, **body)
        self.audit("user.update", name, **body)
        if body.get("active") is False:
            self.audit("link.revoke", name, reason="deactivated")
        self.write_json(self.user_json(account))

    @requires(USERS_MANAGE)
    async def delete(self, name: str) -> None:
        self.require_account(name)
        user = self.find_user(name)
        if user is not None and (user.spawner._stop_pending or user.running):
            raise web.HTTPError(409, f"Stop {name!r}'s server first, then delete them.")
        self.accounts.delete(name)  # refused (409) for a last admin; the hub user stays
        if user is not None:
            # As JupyterHub's own DELETE /hub/api/users/{name} does, so the hub does not
            # re-create the account for a hub user left behind at its next start.
            await maybe_future(self.authenticator.delete_user(user))
            await user.delete_spawners()
            self.users.delete(user)
        self.audit("user.delete", name)
        self.set_status(204)
        self.finish()


class UserLinkHandler(UserAPIHandler):
    """``POST users/{name}/link``: a fresh invitation or reset link to hand over (older
    unused links die); ``DELETE``: revoke every unused link of the account."""

    @requires(USERS_MANAGE)
    def post(self, name: str) -> None:
        token = self.accounts.invite_or_reset_link(name)
        self.audit("link.issue", name)
        no_store(self)
        self.write_json(self.user_json(self.require_account(name), token), status=201)

    @requires(USERS_MANAGE)
    def delete(self, name: str) -> None:
        self.accounts.revoke_links(name)
        self.audit("link.revoke", name, reason="revoked")
        self.set_status(204)
        self.finish()


class ProjectsHandler(APIHandler):
    """``GET/POST projects``: your projects; hub admins create new ones."""

    @requires(AUTHENTICATED)
    def get(self) -> None:
        views = self.projects.visible_to_principal(self.principal)
        self.write_json(listing([v.as_json() for v in views]))

    @requires(PROJECTS_CREATE)
    async def post(self) -> None:
        body = await self.json_object({"slug": str, **SETTING_TYPES}, required=("slug",))
        slug = body.pop("slug")
        view = self.projects.create(slug, body, creator=self.principal.name)
        self.audit("project.create", slug, **body)
        self.write_json(view.as_json(), status=201)


class ProjectHandler(APIHandler):
    """``GET/PATCH/DELETE projects/{slug}``."""

    @requires(PROJECT_READ)
    def get(self, slug: str) -> None:
        self.write_json(self.projects.get(slug, self.project_role).as_json())

    @requires(PROJECT_MANAGE)
    async def patch(self, slug: str) -> None:
        body = await self.json_object(SETTING_TYPES)
        view = self.projects.update(slug, body, self.project_role)
        self.audit("project.update", slug, **body)
        self.write_json(view.as_json())

    @requires(PROJECT_DELETE)
    def delete(self, slug: str) -> None:
        self.projects.delete(slug)
        self.audit("project.delete", slug)
        self.set_status(204)
        self.finish()


class MembersHandler(APIHandler):
    """``GET projects/{slug}/members``."""

    @requires(PROJECT_READ)
    def get(self, slug: str) -> None:
        self.write_json(listing([m.as_json() for m in self.projects.members(slug)]))


class MemberHandler(APIHandler):
    """``PUT/DELETE projects/{slug}/members/{name}``: project admins manage roles;
    ``PATCH`` is a member's own preferences."""

    @requires(MEMBER_SELF)
    async def patch(self, slug: str, name: str) -> None:
        body = await self.json_object({"show_others": bool}, required=("show_others",))
        show = body["show_others"]
        self.projects.set_show_others(slug, name, show, caller=self.principal.name)
        member = next(m for m in self.projects.members(slug) if m.name == name)
        self.write_json(member.as_json())

    @requires(PROJECT_MANAGE)
    async def put(self, slug: str, name: str) -> None:
        role = (await self.json_object({"role": str}, required=("role",)))["role"]
        created = self.projects.set_member(slug, name, role, granter_role=self.project_role)
        self.audit("member.set", name, project=slug, role=role)
        member = next(m for m in self.projects.members(slug) if m.name == name)
        self.write_json(member.as_json(), status=201 if created else 200)

    @requires(PROJECT_MANAGE)
    def delete(self, slug: str, name: str) -> None:
        self.projects.remove_member(slug, name)
        self.audit("member.remove", name, project=slug)
        self.set_status(204)
        self.finish()


class TokensHandler(APIHandler):
    """``GET/POST tokens``: your tokens (hub admins: everyone's with ``?all=1``)."""

    @requires(TOKENS_MANAGE)
    def get(self) -> None:
        owner = self.principal.name
        if self.get_argument("all", "") in ("1", "true"):
            check_may_manage_others(self.principal)
            owner = None
        self.write_json(listing([t.as_json() for t in self.authenticator.tokens.listing(owner)]))

    @requires(TOKENS_MANAGE)
    async def post(self) -> None:
        body = await self.json_object(
            {
                "name": str,
                "scopes": list,
                "projects": (list, type(None)),
                "expires_in_days": int,
                "owner": str,
            },
            required=("name",),
        )
        for key in ("scopes", "projects"):
            if not all(isinstance(item, str) for item in body.get(key) or []):
                raise InvalidInput(f"{key!r} must be a list of strings.")
        owner = self.principal
        if normalize(body.get("owner", owner.name)) != owner.name:
            # A service account has no password, so no session: a hub admin mints for it.
            check_may_manage_others(self.principal)
            owner = self.accounts.service_principal(normalize(body["owner"]))
        plaintext, view = self.authenticator.tokens.create(
            owner,
            body["name"],
            scopes=body.get("scopes"),
            projects=body.get("projects"),
            expires_in_days=body.get("expires_in_days"),
            via=self.principal,
        )
        self.audit("token.create", view.owner, id=view.id, name=view.name, scopes=view.scopes)
        no_store(self)
        self.write_json({**view.as_json(), "token": plaintext}, status=201)


class TokenHandler(APIHandler):
    """``DELETE tokens/{id}``: revoke one of yours (hub admins: anyone's, by token only
    with ``users:manage``, as for listing everyone's)."""

    @requires(TOKENS_MANAGE)
    def delete(self, token_id: str) -> None:
        owner = self.authenticator.tokens.revoke(int(token_id), self.principal)
        self.audit("token.revoke", owner, id=int(token_id))
        self.set_status(204)
        self.finish()


class CurrentTokenHandler(APIHandler):
    """``DELETE tokens/current``: a token revokes itself (always allowed)."""

    @requires(AUTHENTICATED)
    def delete(self) -> None:
        if self.principal.token_id is None:
            raise InvalidInput("This request uses a browser session, not a token.")
        self.authenticator.tokens.revoke(self.principal.token_id, self.principal)
        self.audit("token.revoke", self.principal.name, id=self.principal.token_id)
        self.set_status(204)
        self.finish()


class AuditHandler(APIHandler):
    """``GET audit``: security events, newest first, for hub admins."""

    @requires(USERS_MANAGE)
    def get(self) -> None:
        events, cursor = self.authenticator.audit.page(**audit_filters(self))
        self.write_json({"items": [e.as_json() for e in events], "next": cursor})


def audit_filters(handler) -> dict:
    """The audit filters of a request's query (shared by the API and the page)."""
    since = handler.get_argument("since", None)
    filters = {
        key: handler.get_argument(key, None) or None
        for key in ("actor", "action", "target", "cursor")
    }
    try:
        filters["since"] = datetime.fromisoformat(since) if since else None
    except ValueError:
        raise InvalidInput("'since' must be an ISO 8601 time, like 2026-11-25T09:00:00Z.") from None
    if filters["since"] is not None:
        if filters["since"].tzinfo is None:
            filters["since"] = filters["since"].replace(tzinfo=UTC)
        try:
            filters["since"] = filters["since"].astimezone(UTC)
        except OverflowError:  # 0001-01-01 at +14:00 is before the first UTC day
            raise InvalidInput("'since' is out of range: use a time after year 1.") from None
    return {**filters, "limit": handler.whole_number_argument("limit", AUDIT_PAGE_SIZE)}
