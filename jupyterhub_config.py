"""Demo configuration: every knob of jupyterhub-annotation-auth, on an embedded SQLite.

Start it with `make run` (see README.md). State (databases, secrets, homes) goes to
./state/ beside this file; delete that folder to start over from the first-run link.
"""

import os
import shutil
from pathlib import Path

from jupyterhub_annotations.authenticator.paths import proxy_command

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

here = Path(__file__).resolve().parent
state = Path(os.environ.get("ANNOTATIONS_STATE_DIR", here / "state"))
state.mkdir(parents=True, exist_ok=True)

# -- the hub ------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "annotation"
# Local only, on JupyterHub's default port 8000. Set as ip (not bind_url, which would
# win over the command line), so `jupyterhub -f jupyterhub_config.py --port 8811` or
# `--ip 0.0.0.0` work as JupyterHub documents them.
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
# The proxy of `npm ci` (node_modules/), else one on PATH. It runs with our
# share/proxy/api_unavailable.mjs, so that while the hub restarts API clients get a JSON
# 503 with Retry-After from it, never its plain-text 404 for an annotation that exists
# (docs/restarts.md). The hub starts the proxy and stops it on exit (cleanup_proxy,
# the default): between the two hubs connections are refused, which clients retry.
proxy = here / "node_modules" / ".bin" / "configurable-http-proxy"
proxy = str(proxy) if proxy.exists() else shutil.which("configurable-http-proxy")
if proxy:
    c.ConfigurableHTTPProxy.command = proxy_command(proxy)

# After login, show the hub home page (start your server from there) instead of
# spawning at once.
c.JupyterHub.redirect_to_server = False

# Single-user servers run as the hub's own user, homes under state/homes.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(state / "homes" / "{username}")
if os.geteuid() == 0:
    # jupyter_server refuses to run as root unless told it is on purpose.
    c.Spawner.args = ["--allow-root"]
# Servers open in JupyterLab (`make run` installs it and a Python kernel), with the
# example notebook in the home folder, ready to run.
c.Spawner.default_url = "/lab"
example_notebook = here / "share" / "examples" / "annotations_api.ipynb"


def give_the_example_notebook(spawner) -> None:
    home = Path(spawner.home_dir)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / example_notebook.name).exists():  # never overwrite the user's copy
        shutil.copy(example_notebook, home)


c.Spawner.pre_spawn_hook = give_the_example_notebook

# Re-check accounts often, so a deactivated user is logged out of the hub quickly.
c.Authenticator.auth_refresh_age = 60

# -- jupyterhub-annotation-auth -----------------------------------------------------
# Every option, with its default; `jupyterhub --help-all` explains each one. A
# commented line shows the default the hub uses unless you uncomment and change it.

# Accounts live in state/annotations.sqlite (beside the hub's database) by default.
# c.AnnotationAuthenticator.db_url = f"sqlite:///{state / 'annotations.sqlite'}"
# PostgreSQL: c.AnnotationAuthenticator.db_url = "postgresql+psycopg://user@host/db"
c.AnnotationAuthenticator.first_admin = "admin"
# Unattended installs: set ANNOTATIONS_ADMIN_PASSWORD (or this) and no setup link is
# printed. Empty: the first start prints a one-time setup link.
# c.AnnotationAuthenticator.first_admin_password = ""

# Projects and per-project roles (viewer < annotator < admin), applied at every start.
# Members listed here without an account get one with no password: hand them a link
# from the Users page or `jupyterhub-annotations setup-link --user NAME`. What is
# declared here is read-only at runtime; members added in the pages or API persist.
c.AnnotationAuthenticator.projects = {
    "demo": {
        "description": "A first project to try things out",
        "members": {"admin": "admin", "alice": "annotator", "bob": "viewer"},
        "share_annotations": False,
        "api_access": True,
        # The work queue (docs/work.md): each registered item to one annotator, a
        # claim lapses after 30 minutes, annotators may see others' (when shared).
        "overlap": 1,
        "lease_minutes": 30,
        "blind": False,
    },
}
# Every server the hub starts gets ANNOTATIONS_API_URL and ANNOTATIONS_TOKEN (a token
# with these scopes, revoked when the server stops): see share/examples/.
c.AnnotationAuthenticator.inject_token_scopes = ["annotations:read", "annotations:write"]
c.AnnotationAuthenticator.token_max_lifetime_days = 90
c.AnnotationAuthenticator.token_max_live_per_user = 50

# One-time links (setup, invitation, reset). The signing key: this, else the
# environment variable ANNOTATIONS_LINK_SECRET (at least 32 characters; every replica
# must share it), else a key generated once into link_secret_file (mode 0600).
# c.AnnotationAuthenticator.link_secret = ""
# c.AnnotationAuthenticator.link_secret_file = str(state / "annotations_link_secret")
c.AnnotationAuthenticator.link_lifetime_hours = 24

# Passwords and login throttling.
c.AnnotationAuthenticator.min_password_length = 10
c.AnnotationAuthenticator.lockout_max_failures = 5
# c.AnnotationAuthenticator.lockout_max_address_failures = 50
c.AnnotationAuthenticator.lockout_window_minutes = 15
# Proxies between the clients and the hub that append to X-Forwarded-For: 1 is the
# configurable-http-proxy JupyterHub runs; add one per reverse proxy in front of it.
c.AnnotationAuthenticator.trusted_proxy_hops = 1

# Deleting a user in JupyterHub (admin page, API, idle culler) deactivates the account;
# "keep" leaves it active, for hubs that cull idle users (docs/accounts.md).
# c.AnnotationAuthenticator.hub_user_deletion = "deactivate"
# Default: CPU cores minus one, at least one.
# c.AnnotationAuthenticator.password_hash_threads = max(1, (os.cpu_count() or 2) - 1)

# Seconds a token's and a project's access facts may be cached in memory (0: off).
# c.AnnotationAuthenticator.access_cache_seconds = 2.0

# Annotation sizes: one annotation's data (1 MiB) and one import request.
# c.AnnotationAuthenticator.annotation_max_bytes = 1 << 20
# c.AnnotationAuthenticator.annotation_import_max_records = 10_000
# c.AnnotationAuthenticator.annotation_import_max_bytes = 16 << 20
