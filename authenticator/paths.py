"""Where the shipped data files and the hub's state live."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import make_url

DATA_NAME = "jupyterhub-annotation-auth"


def share_dir() -> Path:
    """``share/`` of a source checkout (so an editable install sees edits at once), or
    of an installed wheel (data_files)."""
    for candidate in (
        Path(__file__).resolve().parent.parent / "share",
        Path(sys.prefix) / "share" / DATA_NAME,
    ):
        if (candidate / "templates").is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the {DATA_NAME} templates: is the package installed?")


def state_dir(hub_db_url: str | None) -> Path:
    """The folder of the hub's own SQLite database, else the working directory."""
    if hub_db_url:
        url = make_url(hub_db_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database).resolve().parent
    return Path.cwd()


def public_hub_url(public_url: str, bind_url: str, hub_prefix: str) -> str:
    """The browser-facing URL of the hub prefix, e.g. ``http://127.0.0.1:8000/hub/``.

    A bind address of all interfaces is printed as 127.0.0.1, which works on the
    hub's own machine; deployments set ``c.JupyterHub.public_url``.
    """
    parts = urlsplit(public_url or bind_url)
    host = parts.hostname or ""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - recognising, not binding
        netloc = f"127.0.0.1:{parts.port}" if parts.port else "127.0.0.1"
    else:
        netloc = parts.netloc
    return urlunsplit((parts.scheme or "http", netloc, hub_prefix, "", ""))


def proxy_command(proxy: str) -> list[str]:
    """``c.ConfigurableHTTPProxy.command`` for the configurable-http-proxy script at
    ``proxy``, run with ``share/proxy/api_unavailable.mjs``: while the hub is away (a
    restart), API requests get a JSON 503 with Retry-After from the proxy instead of its
    plain-text 404 or 503 (docs/restarts.md)."""
    return ["node", "--import", str(share_dir() / "proxy" / "api_unavailable.mjs"), proxy]
