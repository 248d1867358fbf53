"""Work distribution (SPEC 17): a project's items, the queue, progress and agreement."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from jupyterhub_annotations.authenticator.agreement import agreement, check_pointer
from jupyterhub_annotations.authenticator.errors import InvalidInput
from jupyterhub_annotations.authenticator.metrics import CLAIMS
from jupyterhub_annotations.authenticator.permissions import (
    ANNOTATIONS_REVIEW,
    ANNOTATIONS_WRITE,
    PROJECT_MANAGE,
    PROJECT_READ,
)
from jupyterhub_annotations.authenticator.work import Work

from .base import APIHandler, requires

T = TypeVar("T")


class WorkHandler(APIHandler):
    metric_family = "work"

    @property
    def work(self) -> Work:
        return self.core.work

    async def in_turn(self, fn: Callable[..., T], slug: str, *args: Any) -> T:
        """A change to ``slug``'s queue: they take turns (`Core.run_in_turn`)."""
        return await self.core.run_in_turn(("queue", slug), fn, slug, *args)


class ItemsHandler(WorkHandler):
    """``GET/POST projects/{slug}/items``: the items the queue hands out."""

    def body_limit(self) -> int:
        return self.core.settings.annotation_import_max_bytes

    @requires(PROJECT_READ)
    async def get(self, slug: str) -> None:
        items, after = await self.run(self.work.items, slug, *self.page_arguments())
        self.write_list([item.as_json() for item in items], after)

    @requires(PROJECT_MANAGE, body="ItemRegistration")
    async def post(self, slug: str) -> None:
        body = await self.json_object()
        result = await self.in_turn(self.work.register, slug, body["items"])
        self.log.info(
            "%s registered %d new items in %r (%d known already)",
            self.principal.name,
            result.created,
            slug,
            result.unchanged,
        )
        self.write_json(result.as_json(), status=201 if result.created else 200)


class QueueNextHandler(WorkHandler):
    """``POST projects/{slug}/queue/next``: claim the next item (204: none left)."""

    @requires(ANNOTATIONS_WRITE)
    async def post(self, slug: str) -> None:
        p = self.principal
        result = await self.in_turn(self.work.next, slug, p.name, p.kind)
        if result.expired:
            CLAIMS.labels("expired").inc(result.expired)
        if result.claim is None:
            CLAIMS.labels("empty").inc()
            self.set_status(204)
            self.finish()
            return
        CLAIMS.labels("renewed" if result.renewed else "claimed").inc()
        self.write_json(result.claim.as_json())


class ClaimHandler(WorkHandler):
    """``DELETE projects/{slug}/queue/claims/{item}``: give a claim back."""

    @requires(ANNOTATIONS_WRITE)
    async def delete(self, slug: str, item: str) -> None:
        await self.in_turn(self.work.release, slug, item, self.principal.name)
        CLAIMS.labels("released").inc()
        self.set_status(204)
        self.finish()


class ProgressHandler(WorkHandler):
    """``GET projects/{slug}/progress``: who did how much, and how far the items are."""

    @requires(PROJECT_READ)
    async def get(self, slug: str) -> None:
        self.write_json((await self.run(self.work.progress, slug)).as_json())


class AgreementHandler(WorkHandler):
    """``GET projects/{slug}/agreement?field=/label``: Krippendorff's alpha of a field."""

    @requires(ANNOTATIONS_REVIEW)
    async def get(self, slug: str) -> None:
        field = self.get_argument("field", None)
        if field is None:
            raise InvalidInput("Name the field to compare: ?field=/label (a JSON pointer).")
        check_pointer(field)

        def compute():
            return agreement(field, self.work.annotations_of(slug))

        self.write_json((await self.run(compute)).as_json())
