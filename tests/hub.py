"""A real `jupyterhub` subprocess behind the real configurable-http-proxy, for tests.

Each hub gets its own folder, free ports and database; it loads the demo
``jupyterhub_config.py`` and overrides only what a test run must (ports, paths, db).
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from jupyterhub_annotations.authenticator.errors import Unauthenticated
from jupyterhub_annotations.authenticator.tokens import digest_of

REPO = Path(__file__).resolve().parent.parent
ARTIFACT_LOGS = REPO / "tests" / "artifacts" / "logs"
SETUP_URL = re.compile(r"(http://\S+/hub/annotations/set-password\?token=\S+)")
# The line of the first-run message that shows the setup link (printed by design).
SETUP_LINE = re.compile(r"\s+http://\S+/hub/annotations/set-password\?token=[\w.-]+")
TOKEN_SHAPE = re.compile(r"anno_[0-9A-Za-z]{49}")
# A signed link token (a JWT: header and claims are base64 JSON, "eyJ" is '{"').
LINK_SHAPE = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")


def _ephemeral_ports() -> range:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def _our_ports() -> range:
    """Ports 10000-29999, split between pytest-xdist workers so that two workers never
    hand out the same port."""
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    width = 20000 // count
    return range(10000 + index * width, 10000 + (index + 1) * width)


_EPHEMERAL = _ephemeral_ports()
_OURS = _our_ports()
_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now, never handed out before in this run, and outside the kernel's
    ephemeral range: a port from ``bind(0)`` can be taken as the source port of any
    outgoing connection before the hub binds it (seen as a hub that never starts)."""
    while True:
        port = random.choice(_OURS)
        if port in _handed_out or port in _EPHEMERAL:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


class Hub:
    def __init__(
        self,
        folder: Path,
        db_url: str,
        extra_config: str = "",
        env: dict | None = None,
        port_on_command_line: bool = False,
    ):
        """``port_on_command_line``: the hub's port comes from ``--port``, as a user
        would give it, not from the test's config."""
        self.folder = folder
        self.port_on_command_line = port_on_command_line
        self.db_url = db_url
        self.pick_ports()
        self.config = folder / "jupyterhub_config.py"
        self.log_path = folder / "hub.log"
        self.extra_config = extra_config
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        # Set by a test whose hub must fail to start: JupyterHub logs the traceback of a
        # configuration error, which the fixture's scan then expects.
        self.start_fails = False

    def pick_ports(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hub_port = free_port()
        self.api_port = free_port()

    def write_config(self) -> None:
        # ip and port, as the demo config sets them (with bind_url as well, JupyterHub
        # would take ip and port and warn).
        bind = "" if self.port_on_command_line else f"c.JupyterHub.port = {self.port}\n"
        self.config.write_text(
            f"load_subconfig({str(REPO / 'jupyterhub_config.py')!r})\n"
            f"{bind}"
            f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{self.hub_port}'\n"
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{self.api_port}'\n"
            f"c.AnnotationAuthenticator.db_url = {self.db_url!r}\n"
            # Where `_kill_group` looks for the proxy (the demo config puts it elsewhere).
            f"c.ConfigurableHTTPProxy.pid_file = {str(self.folder / 'jupyterhub-proxy.pid')!r}\n"
            # Every test shares 127.0.0.1; the per-address limit gets its own test.
            "c.AnnotationAuthenticator.lockout_max_address_failures = 1000\n"
            f"{self.extra_config}\n"
        )

    def start(self, timeout: float = 60) -> Hub:
        try:
            return self._start(timeout)
        except (RuntimeError, TimeoutError):
            # Another process may bind a port between our check and the hub's bind;
            # a first start may then try again on new ports (a restart keeps its URL).
            if self.starts != 1 or "already in use" not in self.log().lower():
                raise
            self.kill()
            self.pick_ports()
            return self._start(timeout)

    def _start(self, timeout: float) -> Hub:
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
        port = ["--port", str(self.port)] if self.port_on_command_line else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.config), *port],
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
                raise RuntimeError(
                    f"jupyterhub exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if requests.get(f"{self.url}/hub/health", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"jupyterhub did not answer in {timeout}s:\n{self.log_tail()}")

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
        # The hub starts its proxy in a session of its own: a SIGKILLed hub leaves it
        # running, so kill it too, by the pid file the hub writes in its folder.
        pids = [self.proc.pid]
        pid_file = self.folder / "jupyterhub-proxy.pid"
        if pid_file.exists() and pid_file.read_text().strip().isdigit():
            pids.append(int(pid_file.read_text()))
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def restart(self) -> Hub:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def keep_log(self, name: str) -> None:
        """Keep the whole log for CI, as tests/artifacts/logs/<name>.log."""
        ARTIFACT_LOGS.mkdir(parents=True, exist_ok=True)
        (ARTIFACT_LOGS / f"{name}.log").write_text(self.log())

    def tokens_in_log(self) -> list[str]:
        """The start of every real annotation token (right shape and checksum) anywhere
        in the log, whoever issued it: there must be none."""
        found = []
        for candidate in sorted(set(TOKEN_SHAPE.findall(self.log()))):
            try:
                digest_of(candidate)
            except Unauthenticated:
                continue  # a string of that shape, but no token we could have made
            found.append(f"{candidate[:9]}...")
        return found

    def link_tokens_in_log(self) -> list[str]:
        """The start of every link token in the log outside the first-run message (the
        one place that must show one): there must be none."""
        return sorted(
            {
                f"{found[:12]}..."
                for line in self.log().splitlines()
                if not SETUP_LINE.fullmatch(line)
                for found in LINK_SHAPE.findall(line)
            }
        )

    def tracebacks(self) -> list[str]:
        """The log line that introduces each traceback in the log: there must be none
        (a 500, or an error in a hook, shows up as one)."""
        if self.start_fails:
            return []
        lines = self.log().splitlines()
        marker = "Traceback (most recent call last):"
        return [lines[i - 1] for i, line in enumerate(lines) if line.strip() == marker and i]

    def log_tail(self, lines: int = 40) -> str:
        """The end of the log for an error message (the whole log is kept as an artifact)."""
        return "\n".join(self.log().splitlines()[-lines:])

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
