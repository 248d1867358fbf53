"""A real `jupyterhub` subprocess behind the real configurable-http-proxy, for tests.

Each hub gets its own folder, free ports and database; it loads the demo
``jupyterhub_config.py`` and overrides only what a test run must (ports, paths, db).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
SETUP_URL = re.compile(r"(http://\S+/hub/annotations/set-password\?token=\S+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    def __init__(self, folder: Path, db_url: str, extra_config: str = "", env: dict | None = None):
        self.folder = folder
        self.db_url = db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hub_port = free_port()
        self.api_port = free_port()
        self.config = folder / "jupyterhub_config.py"
        self.log_path = folder / "hub.log"
        self.extra_config = extra_config
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def write_config(self) -> None:
        self.config.write_text(
            f"load_subconfig({str(REPO / 'jupyterhub_config.py')!r})\n"
            f"c.JupyterHub.bind_url = {self.url!r}\n"
            f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{self.hub_port}'\n"
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{self.api_port}'\n"
            f"c.AnnotationAuthenticator.db_url = {self.db_url!r}\n"
            # Every test shares 127.0.0.1; the per-address limit gets its own test.
            "c.AnnotationAuthenticator.lockout_max_address_failures = 1000\n"
            f"{self.extra_config}\n"
        )

    def start(self, timeout: float = 30) -> Hub:
        self.write_config()
        env = {
            **os.environ,
            "ANNOTATIONS_STATE_DIR": str(self.folder / "state"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            **self.env,
        }
        log = self.log_path.open("a")
        log.write(f"\n===== start {self.starts} =====\n")
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.config)],
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # one process group: the hub, its proxy, its servers
        )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/hub/health", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"jupyterhub did not answer in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        """Graceful stop (SIGTERM), as an admin would."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._kill_group()

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        if self.proc:
            self._kill_group()
            self.proc.wait(10)

    def _kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def restart(self) -> Hub:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def setup_links(self) -> list[str]:
        return SETUP_URL.findall(self.log())

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """Run `jupyterhub-annotations` against this hub's config."""
        exe = Path(sys.executable).parent / "jupyterhub-annotations"
        return subprocess.run(
            [str(exe), *args, "--config", str(self.config)],
            cwd=self.folder,
            capture_output=True,
            text=True,
            env={**os.environ, "ANNOTATIONS_STATE_DIR": str(self.folder / "state"), **self.env},
            timeout=60,
        )


_HIDDEN = re.compile(r'name="(_xsrf|token)"\s+value="([^"]*)"')


def form_fields(html: str) -> dict[str, str]:
    """The hidden fields of a page's form (``_xsrf``, ``token``)."""
    return dict(_HIDDEN.findall(html))


class Browser:
    """A cookie jar and the form posts a person would make, over real HTTP."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.http = requests.Session()
        self._xsrf: str | None = None

    def api(self, method: str, path: str, json: object = None) -> requests.Response:
        """Call our API with this browser's session, as the page's JavaScript would."""
        if self._xsrf is None:
            home = self.get("/hub/home").text
            self._xsrf = re.search(r'xsrf_token: "([^"]+)"', home).group(1)
        return self.http.request(
            method,
            self._url(f"/hub/annotations/api/{path}"),
            json=json,
            headers={"X-XSRFToken": self._xsrf},
            timeout=30,
        )

    def get(self, path: str, **kw) -> requests.Response:
        return self.http.get(self._url(path), timeout=30, **kw)

    def post_form(self, path: str, fields: dict, page: str | None = None) -> requests.Response:
        """POST a form with the ``_xsrf`` of the page it sits on (``page``, default ``path``)."""
        html = self.get(page or path).text
        data = {**form_fields(html), **fields}
        return self.http.post(self._url(path), data=data, timeout=30, allow_redirects=True)

    def set_password(self, link: str, password: str, confirm: str | None = None):
        page = self.get(link)
        data = {**form_fields(page.text), "password": password, "confirm": confirm or password}
        return self.http.post(f"{self.hub.url}/hub/annotations/set-password", data=data, timeout=60)

    def login(self, name: str, password: str) -> requests.Response:
        self._xsrf = None  # the hub ties XSRF tokens to the session, which login renews
        return self.post_form("/hub/login", {"username": name, "password": password})

    def _url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.hub.url}{path}"
