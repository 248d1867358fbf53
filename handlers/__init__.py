"""Tornado handlers: thin layers that parse, call the core, and render."""

from .annotations import (
    AnnotationImportHandler,
    ItemAnnotationsHandler,
    OwnerAnnotationHandler,
    ProjectAnnotationsHandler,
)
from .api import (
    AuditHandler,
    CurrentTokenHandler,
    MeHandler,
    MemberHandler,
    MembersHandler,
    ProjectHandler,
    ProjectsHandler,
    TokenHandler,
    TokensHandler,
    UserHandler,
    UserLinkHandler,
    UsersHandler,
)
from .base import CORE_SETTING, APINotFound
from .openapi import OpenAPIHandler
from .pages import AuditPage, ProjectPage, ProjectsPage, TokensPage, UsersPage
from .passwords import ChangePasswordHandler, SetPasswordHandler
from .work import (
    AgreementHandler,
    ClaimHandler,
    ItemsHandler,
    ProgressHandler,
    QueueNextHandler,
)

__all__ = ["CORE_SETTING", "default_handlers"]

PREFIX = "/annotations"
API = f"{PREFIX}/api"
SLUG = r"(?P<slug>[^/]+)"
NAME = r"(?P<name>[^/]+)"
ITEM = r"(?P<item>[^/]+)"
OWNER = r"(?P<owner>[^/]+)"

# The hub puts these before its own handlers and prefixes them with /hub.
default_handlers = [
    (f"{PREFIX}/set-password", SetPasswordHandler),
    (f"{PREFIX}/change-password", ChangePasswordHandler),
    (f"{PREFIX}/users", UsersPage),
    (f"{PREFIX}/projects", ProjectsPage),
    (f"{PREFIX}/projects/{SLUG}", ProjectPage),
    (f"{PREFIX}/tokens", TokensPage),
    (f"{PREFIX}/audit", AuditPage),
    (f"{API}/me", MeHandler),
    (f"{API}/users", UsersHandler),
    (f"{API}/users/{NAME}", UserHandler),
    (f"{API}/users/{NAME}/link", UserLinkHandler),
    (f"{API}/projects", ProjectsHandler),
    (f"{API}/projects/{SLUG}", ProjectHandler),
    (f"{API}/projects/{SLUG}/members", MembersHandler),
    (f"{API}/projects/{SLUG}/members/{NAME}", MemberHandler),
    (f"{API}/projects/{SLUG}/annotations", ProjectAnnotationsHandler),
    (f"{API}/projects/{SLUG}/annotations/import", AnnotationImportHandler),
    (f"{API}/projects/{SLUG}/items", ItemsHandler),
    (f"{API}/projects/{SLUG}/items/{ITEM}/annotations", ItemAnnotationsHandler),
    (f"{API}/projects/{SLUG}/items/{ITEM}/annotations/{OWNER}", OwnerAnnotationHandler),
    (f"{API}/projects/{SLUG}/queue/next", QueueNextHandler),
    (f"{API}/projects/{SLUG}/queue/claims/{ITEM}", ClaimHandler),
    (f"{API}/projects/{SLUG}/progress", ProgressHandler),
    (f"{API}/projects/{SLUG}/agreement", AgreementHandler),
    (f"{API}/audit", AuditHandler),
    (f"{API}/tokens", TokensHandler),
    (f"{API}/tokens/current", CurrentTokenHandler),
    (f"{API}/tokens/(?P<token_id>[0-9]{{1,9}})", TokenHandler),
    (f"{API}/openapi.json", OpenAPIHandler),
    (f"{API}/.*", APINotFound),
]
