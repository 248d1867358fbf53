"""Pages that set a password: from a one-time link, and the logged-in change form."""

from __future__ import annotations

from jupyterhub_annotations.authenticator import passwords
from jupyterhub_annotations.authenticator.errors import AnnotationError, LinkError
from jupyterhub_annotations.authenticator.links import LinkClaims
from jupyterhub_annotations.authenticator.permissions import AUTHENTICATED, PUBLIC

from .base import PageHandler, no_store, requires


class SetPasswordHandler(PageHandler):
    """``set-password?token=...``: first-run setup, invitations and resets."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        # The link token is in our URL (and in the form): never send it onwards as a
        # Referer, and let no cache keep a page that holds it.
        self.set_header("Referrer-Policy", "no-referrer")
        no_store(self)

    @requires(PUBLIC)
    async def get(self) -> None:
        token = self.get_argument("token", "")
        claims = await self._usable_link(token)
        if claims is not None:
            await self._render_form(claims, token)

    @requires(PUBLIC)
    async def post(self) -> None:
        token = self.get_body_argument("token", "")
        password = self.get_body_argument("password", "", strip=False)
        confirm = self.get_body_argument("confirm", "", strip=False)
        claims = await self._usable_link(token)
        if claims is None:
            return
        try:
            passwords.check_confirmed(password, confirm)
            name = await self.core.run_hashing(self.accounts.use_link, token, password)
        except AnnotationError as e:
            await self._render_form(claims, token, status=e.status, error=e.message)
            return
        address = self.client_address()
        await self.run(
            self.core.audit.record, "link.use", name, name, address, purpose=claims.purpose
        )
        await self.render_page("annotations_password_set.html", account_name=name)

    async def _usable_link(self, token: str) -> LinkClaims | None:
        """The link's claims, or None once a page saying why it is unusable is sent."""
        try:
            return await self.run(self.accounts.check_link, token)
        except LinkError as e:
            await self.render_page(
                "annotations_link_error.html", status=e.status, message=e.message
            )
            return None

    async def _render_form(self, claims: LinkClaims, token: str, **ns) -> None:
        await self.render_page(
            "annotations_set_password.html",
            account_name=claims.name,
            purpose=claims.purpose,
            token=token,
            **ns,
        )


class ChangePasswordHandler(PageHandler):
    """``change-password``: a logged-in user replaces their password."""

    @requires(AUTHENTICATED)
    async def get(self) -> None:
        await self.render_page("annotations_change_password.html")

    @requires(AUTHENTICATED)
    async def post(self) -> None:
        current = self.get_body_argument("current", "", strip=False)
        new = self.get_body_argument("password", "", strip=False)
        confirm = self.get_body_argument("confirm", "", strip=False)
        try:
            passwords.check_confirmed(new, confirm)
            await self.core.run_hashing(
                self.accounts.change_password,
                self.principal.name,
                current,
                new,
                self.client_address(),
            )
        except AnnotationError as e:
            await self.render_page(
                "annotations_change_password.html", status=e.status, error=e.message
            )
            return
        await self.audit("password.change", self.principal.name)
        await self.render_page("annotations_change_password.html", done=True)
