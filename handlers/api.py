"""The JSON API (``/hub/annotations/api/``): parse, call the core, render JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from jupyterhub.utils import maybe_future
from jupyterhub_annotations.authenticator.errors import InvalidInput, NotFound
from jupyterhub_annotations.authenticator.links import link_url
from jupyterhub_annotations.authenticator.models import Account
from jupyterhub_annotations.authenticator.permissions import (
    AUTHENTICATED,
    MEMBER_SELF,
    PROJECT_DELETE,
    PROJECT_MANAGE,
    PROJECT_READ,
    PROJECTS_CREATE,
    TOKENS_MANAGE,
    USERS_MANAGE,
)
from jupyterhub_annotations.authenticator.tokens import check_may_manage_others
from jupyterhub_annotations.authenticator.usernames import normalize
from tornado import web

from . import hub_compat
from .base import APIHandler, no_store, requires


class MeHandler(APIHandler):
    """``GET me``: who the caller is, as the API sees them."""

    metric_family = "me"

    @requires(AUTHENTICATED)
    async def get(self) -> None:
        p = self.principal
        projects = await self.core.run_cached(self.projects.visible_to_principal, p)
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
    metric_family = "users"

    def user_json(self, account: Account, link_token: str | None = None) -> dict:
        body = {
            "name": account.name,
            "admin": self.accounts.is_admin(account),
            "active": account.active,
            "kind": account.kind,
            "password_set": account.password_hash is not None,
            "password_changed_at": (
                account.password_changed_at.isoformat() if account.password_changed_at else None
            ),
            "created_at": account.created_at.isoformat(),
        }
        if link_token is not None:
            body["link"] = link_url(link_token, self.hub_url())
        return body

    def require_account(self, name: str) -> Account:
        """In the store's threads (within `run`): the account, or a 404."""
        account = self.accounts.get(name)
        if account is None:
            raise NotFound(f"There is no account named {name!r}.")
        return account


class UsersHandler(UserAPIHandler):
    """``GET/POST users``: hub admins list accounts and create them (with an invite link)."""

    @requires(USERS_MANAGE)
    async def get(self) -> None:
        accounts, after = await self.run(self.accounts.listing, *self.page_arguments())
        self.write_list([self.user_json(a) for a in accounts], after)

    @requires(USERS_MANAGE, body="NewUser")
    async def post(self) -> None:
        body = await self.json_object()

        def create() -> tuple[Account, str | None]:
            account = self.accounts.create(normalize(body["name"]), admin=body.get("admin", False))
            self.record("user.create", account.name, kind=account.kind, admin=account.admin)
            if account.kind != "user":
                return account, None  # a service account: no password, no link
            token = self.accounts.issue_link(account.name, "invite")
            self.record("link.issue", account.name, purpose="invite")
            return account, token

        account, token = await self.act(create)
        payload = self.user_json(account, token)
        payload.setdefault("link", None)
        no_store(self)
        self.write_json(payload, status=201)


class UserHandler(UserAPIHandler):
    """``GET/PATCH/DELETE users/{name}``."""

    @requires(USERS_MANAGE)
    async def get(self, name: str) -> None:
        self.write_json(self.user_json(await self.run(self.require_account, name)))

    @requires(USERS_MANAGE, body="UserChanges")
    async def patch(self, name: str) -> None:
        body = await self.json_object()
        self.write_json(self.user_json(await self.act(self.update_account, name, **body)))

    @requires(USERS_MANAGE)
    async def delete(self, name: str) -> None:
        user = self.find_user(name)  # the hub's own user, from its database as its handlers do
        if user is not None and (hub_compat.stop_pending(user.spawner) or user.running):
            raise web.HTTPError(409, f"Stop {name!r}'s server first, then delete them.")

        def delete() -> None:
            self.require_account(name)
            self.accounts.delete(name)  # refused (409) for a last admin; the hub user stays
            self.record("user.delete", name)

        await self.act(delete)
        if user is not None:
            # As JupyterHub's own DELETE /hub/api/users/{name} does, so the hub does not
            # re-create the account for a hub user left behind at its next start.
            await maybe_future(self.authenticator.delete_user(user))
            await user.delete_spawners()
            self.users.delete(user)
        self.set_status(204)
        self.finish()


class UserLinkHandler(UserAPIHandler):
    """``POST users/{name}/link``: a fresh invitation or reset link to hand over (older
    unused links die); ``DELETE``: revoke every unused link of the account."""

    @requires(USERS_MANAGE)
    async def post(self, name: str) -> None:
        def issue() -> tuple[Account, str]:
            token = self.accounts.invite_or_reset_link(name)
            self.record("link.issue", name)
            return self.require_account(name), token

        account, token = await self.act(issue)
        no_store(self)
        self.write_json(self.user_json(account, token), status=201)

    @requires(USERS_MANAGE)
    async def delete(self, name: str) -> None:
        def revoke() -> None:
            self.accounts.revoke_links(name)
            self.record("link.revoke", name, reason="revoked")

        await self.act(revoke)
        self.set_status(204)
        self.finish()


class ProjectsHandler(APIHandler):
    """``GET/POST projects``: your projects; hub admins create new ones."""

    metric_family = "projects"

    @requires(AUTHENTICATED)
    async def get(self) -> None:
        page = self.projects.visible_page
        views, after = await self.run(page, self.principal, *self.page_arguments())
        self.write_list([v.as_json() for v in views], after)

    @requires(PROJECTS_CREATE, body="NewProject")
    async def post(self) -> None:
        body = await self.json_object()
        slug = body.pop("slug")

        def create():
            view = self.projects.create(slug, body, creator=self.principal.name)
            self.record("project.create", slug, **body)
            return view

        self.write_json((await self.act(create)).as_json(), status=201)


class ProjectHandler(APIHandler):
    """``GET/PATCH/DELETE projects/{slug}``."""

    metric_family = "projects"

    @requires(PROJECT_READ)
    async def get(self, slug: str) -> None:
        view = await self.run(self.projects.get, slug, self.project_role)
        self.write_json(view.as_json())

    @requires(PROJECT_MANAGE, body="ProjectSettings")
    async def patch(self, slug: str) -> None:
        body = await self.json_object()

        def update():
            view = self.projects.update(slug, body, self.project_role)
            self.record("project.update", slug, **body)
            return view

        self.write_json((await self.act(update)).as_json())

    @requires(PROJECT_DELETE)
    async def delete(self, slug: str) -> None:
        def delete() -> None:
            self.projects.delete(slug)
            self.record("project.delete", slug)

        await self.act(delete)
        self.set_status(204)
        self.finish()


class MembersHandler(APIHandler):
    """``GET projects/{slug}/members``."""

    metric_family = "members"

    @requires(PROJECT_READ)
    async def get(self, slug: str) -> None:
        members, after = await self.run(self.projects.members, slug, *self.page_arguments())
        self.write_list([m.as_json() for m in members], after)


class MemberHandler(APIHandler):
    """``PUT/DELETE projects/{slug}/members/{name}``: project admins manage roles;
    ``PATCH`` is a member's own preferences."""

    metric_family = "members"

    def member(self, slug: str, name: str):
        return next(m for m in self.projects.members(slug)[0] if m.name == name)

    @requires(MEMBER_SELF, body="MemberPreferences")
    async def patch(self, slug: str, name: str) -> None:
        body = await self.json_object()

        def change():
            show = body["show_others"]
            self.projects.set_show_others(slug, name, show, caller=self.principal.name)
            return self.member(slug, name)

        self.write_json((await self.act(change)).as_json())

    @requires(PROJECT_MANAGE, body="MemberRole")
    async def put(self, slug: str, name: str) -> None:
        role = (await self.json_object())["role"]

        def grant():
            created = self.projects.set_member(slug, name, role, granter_role=self.project_role)
            self.record("member.set", name, project=slug, role=role)
            return created, self.member(slug, name)

        created, member = await self.act(grant)
        self.write_json(member.as_json(), status=201 if created else 200)

    @requires(PROJECT_MANAGE)
    async def delete(self, slug: str, name: str) -> None:
        def remove() -> None:
            self.projects.remove_member(slug, name)
            self.record("member.remove", name, project=slug)

        await self.act(remove)
        self.set_status(204)
        self.finish()


class TokensHandler(APIHandler):
    """``GET/POST tokens``: your tokens (hub admins: everyone's with ``?all=1``)."""

    metric_family = "tokens"

    @requires(TOKENS_MANAGE)
    async def get(self) -> None:
        owner = self.principal.name
        if self.get_argument("all", "") in ("1", "true"):
            check_may_manage_others(self.principal)
            owner = None
        views, after = await self.run(self.core.tokens.listing, owner, *self.page_arguments())
        self.write_list([t.as_json() for t in views], after)

    @requires(TOKENS_MANAGE, body="NewToken")
    async def post(self) -> None:
        body = await self.json_object()
        others = normalize(body.get("owner", self.principal.name)) != self.principal.name
        if others:
            # A service account has no password, so no session: a hub admin mints for it.
            check_may_manage_others(self.principal)

        def create():
            owner = (
                self.accounts.service_principal(normalize(body["owner"]))
                if others
                else self.principal
            )
            plaintext, view = self.core.tokens.create(
                owner,
                body["name"],
                scopes=body.get("scopes"),
                projects=body.get("projects"),
                expires_in_days=body.get("expires_in_days"),
                via=self.principal,
            )
            self.record("token.create", view.owner, id=view.id, name=view.name, scopes=view.scopes)
            return plaintext, view

        plaintext, view = await self.act(create)
        no_store(self)
        self.write_json({**view.as_json(), "token": plaintext}, status=201)


class TokenHandler(APIHandler):
    """``DELETE tokens/{id}``: revoke one of yours (hub admins: anyone's, by token only
    with ``users:manage``, as for listing everyone's)."""

    metric_family = "tokens"

    @requires(TOKENS_MANAGE)
    async def delete(self, token_id: str) -> None:
        def revoke() -> None:
            owner = self.core.tokens.revoke(int(token_id), self.principal)
            self.record("token.revoke", owner, id=int(token_id))

        await self.act(revoke)
        self.set_status(204)
        self.finish()


class CurrentTokenHandler(APIHandler):
    """``DELETE tokens/current``: a token revokes itself (always allowed)."""

    metric_family = "tokens"

    @requires(AUTHENTICATED)
    async def delete(self) -> None:
        if self.principal.token_id is None:
            raise InvalidInput("This request uses a browser session, not a token.")

        def revoke() -> None:
            self.core.tokens.revoke(self.principal.token_id, self.principal)
            self.record("token.revoke", self.principal.name, id=self.principal.token_id)

        await self.act(revoke)
        self.set_status(204)
        self.finish()


class AuditHandler(APIHandler):
    """``GET audit``: security events, newest first, for hub admins."""

    metric_family = "audit"

    @requires(USERS_MANAGE)
    async def get(self) -> None:
        events, cursor = await self.run(self.core.audit.page, **audit_filters(self))
        self.write_list([e.as_json() for e in events], cursor)


def audit_filters(handler) -> dict:
    """The audit filters of a request's query (shared by the API and the page)."""
    since = handler.get_argument("since", None)
    filters = {
        key: handler.get_argument(key, None) or None for key in ("actor", "action", "target")
    }
    try:
        filters["since"] = datetime.fromisoformat(since.upper()) if since else None
    except ValueError:
        raise InvalidInput("'since' must be an ISO 8601 time, like 2026-11-25T09:00:00Z.") from None
    if filters["since"] is not None:
        if filters["since"].tzinfo is None:
            filters["since"] = filters["since"].replace(tzinfo=UTC)
        try:
            filters["since"] = filters["since"].astimezone(UTC)
        except OverflowError:  # 0001-01-01 at +14:00 is before the first UTC day
            raise InvalidInput("'since' is out of range: use a time after year 1.") from None
    filters["cursor"], filters["limit"] = handler.page_arguments()
    return filters
