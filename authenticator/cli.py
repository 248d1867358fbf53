"""``jupyterhub-annotations``: admin commands that run beside (or instead of) the hub."""

from __future__ import annotations

import argparse
import sys

from jupyterhub.app import JupyterHub

from . import usernames
from .auth import AnnotationAuthenticator
from .errors import AnnotationError


def load_authenticator(config_file: str) -> AnnotationAuthenticator:
    """The authenticator exactly as the hub would build it from ``config_file``."""
    app = JupyterHub()
    app.load_config_file(config_file)
    app.config_file = config_file
    return AnnotationAuthenticator(parent=app)


def setup_link(args: argparse.Namespace) -> int:
    auth = load_authenticator(args.config)
    name = usernames.normalize(args.user or auth.first_admin)
    # The hub's start-up step, so the command works before the hub's first start; the
    # declared projects wait for the hub (they would re-create a member just deleted).
    started = auth.core.start(
        auth.first_admin, auth.first_admin_password or None, declare_projects=False
    )
    first = started.first_admin
    if first is not None and first.name == name and first.link_token:
        token = first.link_token
    else:
        # The same checks as the Users page and API (no such account, service account,
        # deactivated): their AnnotationError ends the command with exit code 2.
        token = auth.core.accounts.invite_or_reset_link(name, setup_for_admin=True)
    print(auth.link_url(token))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jupyterhub-annotations", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    link = commands.add_parser(
        "setup-link",
        help="print a fresh one-time link that sets a user's password (default: the first admin)",
    )
    link.add_argument("--config", default="jupyterhub_config.py", help="the hub's config file")
    link.add_argument("--user", help="account name (default: first_admin from the config)")
    link.set_defaults(run=setup_link)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except AnnotationError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
