"""A bare Tornado handler mounted in the hub: the practical ceiling for our handlers."""

from tornado import web


class BareHandler(web.RequestHandler):
    def get(self) -> None:
        self.write({"ok": True})
