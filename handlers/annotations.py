"""The annotation API: ``projects/{slug}/...annotations...`` (SPEC section 7).

The owner of every write is the principal; versions travel as ETags. Lists are pages of
``{"items", "next"}``; ``?format=ndjson`` streams a whole project, one page at a time.
"""

from __future__ import annotations

import json
import re

from jupyterhub_annotations.authenticator.annotations import Annotations, AnnotationView, Page
from jupyterhub_annotations.authenticator.errors import InvalidInput
from jupyterhub_annotations.authenticator.metrics import ANNOTATION_WRITES
from jupyterhub_annotations.authenticator.permissions import ANNOTATIONS_READ, ANNOTATIONS_WRITE
from jupyterhub_annotations.authenticator.usernames import normalize
from tornado.iostream import StreamClosedError

from .base import APIHandler, requires

_VERSION = re.compile(r'"?([0-9]{1,9})"?')
# Room for the JSON around ``data`` in a PUT body.
_ENVELOPE_BYTES = 4096


def if_match(value: str | None) -> int | str | None:
    """The version an ``If-Match`` header names: an int, "*", or None when absent."""
    if value is None:
        return None
    value = value.strip()
    match = _VERSION.fullmatch(value)
    if value != "*" and match is None:
        raise InvalidInput(
            'If-Match takes one version as the ETag gave it, like "3", or * (it must exist).'
        )
    return "*" if value == "*" else int(match.group(1))


def create_only(value: str | None) -> bool:
    """``If-None-Match: *`` on a write: create, never replace."""
    if value is None:
        return False
    if value.strip() != "*":
        raise InvalidInput("On a write, If-None-Match takes only * (create only).")
    return True


class AnnotationAPIHandler(APIHandler):
    metric_family = "annotations"

    @property
    def annotations(self) -> Annotations:
        return self.core.annotations

    def owner_argument(self) -> str | None:
        owner = self.get_argument("owner", None)
        return None if owner is None else normalize(owner)

    def write_view(self, view: AnnotationView, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("ETag", view.etag)
        if self.request.method == "GET" and self.check_etag_header():
            self.set_status(304)  # the client's copy is current (If-None-Match)
            self.finish()
            return
        self.finish(view.json_text())

    def write_page(self, page: Page) -> None:
        items = ", ".join(view.json_text() for view in page.views)
        self.finish(f'{{"items": [{items}], "next": {json.dumps(page.next)}}}')


class ProjectAnnotationsHandler(AnnotationAPIHandler):
    """``GET projects/{slug}/annotations``: what the caller sees, filtered by ``item``
    and ``owner``; a page with a cursor, or everything as NDJSON (``format=ndjson``)."""

    @requires(ANNOTATIONS_READ)
    async def get(self, slug: str) -> None:
        filters = {"item": self.get_argument("item", None), "owner": self.owner_argument()}
        kind = self.get_argument("format", "json")
        cursor, limit = self.page_arguments()  # limit checked for ndjson too, which sends all
        if kind == "json":
            self.write_page(
                await self.run(
                    self.annotations.page,
                    slug,
                    self.principal.name,
                    self.project_role,
                    cursor=cursor,
                    limit=limit,
                    **filters,
                )
            )
        elif kind == "ndjson":
            await self.stream(slug, cursor, filters)
        else:
            raise InvalidInput(f"Unknown format {kind!r}: use json (pages) or ndjson (all).")

    async def stream(self, slug: str, cursor: str | None, filters: dict) -> None:
        pages = self.annotations.pages(
            slug, self.principal.name, self.project_role, cursor=cursor, **filters
        )
        views = await self.run(next, pages)  # bad filters fail here, before the status
        self.set_header("Content-Type", "application/x-ndjson; charset=utf-8")
        while views is not None:
            self.write("".join(f"{view.json_text()}\n" for view in views))
            try:
                await self.flush()  # one page in memory at a time, however large the project
            except StreamClosedError:
                self.log.info("NDJSON export of %r stopped: the client went away", slug)
                return
            views = await self.run(next, pages, None)
        self.finish()


class ItemAnnotationsHandler(AnnotationAPIHandler):
    """``GET projects/{slug}/items/{item}/annotations``: an item's annotations the caller sees."""

    @requires(ANNOTATIONS_READ)
    async def get(self, slug: str, item: str) -> None:
        cursor, limit = self.page_arguments()
        self.write_page(
            await self.run(
                self.annotations.page,
                slug,
                self.principal.name,
                self.project_role,
                item=item,
                owner=self.owner_argument(),
                cursor=cursor,
                limit=limit,
            )
        )


class OwnerAnnotationHandler(AnnotationAPIHandler):
    """``GET/PUT/DELETE projects/{slug}/items/{item}/annotations/{owner}``."""

    def body_limit(self) -> int:
        return self.annotations.max_bytes + _ENVELOPE_BYTES

    @requires(ANNOTATIONS_READ)
    async def get(self, slug: str, item: str, owner: str) -> None:
        get = self.annotations.get
        self.write_view(
            await self.run(get, slug, item, owner, self.principal.name, self.project_role)
        )

    @requires(ANNOTATIONS_WRITE, body="AnnotationWrite")
    async def put(self, slug: str, item: str, owner: str) -> None:
        body = await self.json_object()
        if normalize(body.get("owner", owner)) != owner:
            raise InvalidInput("The body names another owner than the address: drop 'owner'.")
        conditions = ("If-Match", "If-None-Match")
        if all(self.request.headers.get(header) for header in conditions):
            raise InvalidInput("Send If-Match (change) or If-None-Match: * (create), not both.")
        view, created = await self.run(
            self.annotations.put,
            slug,
            item,
            owner,
            body["data"],
            writer=self.principal.name,
            if_match=if_match(self.request.headers.get("If-Match")),
            create_only=create_only(self.request.headers.get("If-None-Match")),
        )
        ANNOTATION_WRITES.labels("put").inc()
        self.write_view(view, status=201 if created else 200)

    @requires(ANNOTATIONS_WRITE)
    async def delete(self, slug: str, item: str, owner: str) -> None:
        version = await self.run(
            self.annotations.delete,
            slug,
            item,
            owner,
            deleter=self.principal.name,
            role=self.project_role,
            if_match=if_match(self.request.headers.get("If-Match")),
        )
        self.log.info(
            "%s deleted %r's annotation on %r in %r", self.principal.name, owner, item, slug
        )
        ANNOTATION_WRITES.labels("delete").inc()
        self.set_header("ETag", f'"{version}"')
        self.set_status(204)
        self.finish()


class AnnotationImportHandler(AnnotationAPIHandler):
    """``POST projects/{slug}/annotations/import``: a batch, written whole or not at all."""

    def body_limit(self) -> int:
        return self.core.settings.annotation_import_max_bytes

    @requires(ANNOTATIONS_WRITE, body="ImportRequest")
    async def post(self, slug: str) -> None:
        body = await self.json_object()
        result = await self.run(
            self.annotations.import_batch,
            slug,
            body["annotations"],
            self.principal.name,
            self.project_role,
        )
        ANNOTATION_WRITES.labels("import").inc(result.created + result.updated)
        self.log.info(
            "%s imported %d annotations into %r",
            self.principal.name,
            result.created + result.updated,
            slug,
        )
        self.write_json(result.as_json())
