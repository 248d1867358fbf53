"""``GET openapi.json``: the OpenAPI document of this API (``share/openapi.yaml``), public."""

from __future__ import annotations

import json
from functools import cache

from jupyterhub_annotations.authenticator.permissions import PUBLIC

from .base import APIHandler, requires
from .document import load_document


@cache
def document_json(hub_prefix: str) -> str:
    """The document as JSON, its server URL under the hub's actual prefix (``/hub/``
    unless ``c.JupyterHub.base_url`` moves it)."""
    document = load_document()
    server = f"{hub_prefix.rstrip('/')}/annotations/api"
    servers = [{**document["servers"][0], "url": server}, *document["servers"][1:]]
    return json.dumps({**document, "servers": servers}, ensure_ascii=False)


class OpenAPIHandler(APIHandler):
    """The document, for clients and for generating them; no credentials needed."""

    metric_family = "openapi.json"

    @requires(PUBLIC)
    def get(self) -> None:
        self.finish(document_json(self.hub.base_url))
