"""A short-lived, bounded, in-process memo of access facts (who a token is, roles, the
projects a principal sees), so the hot path of a scripted request needs no database
query while staying exact for changes made through this process.

Two rules decide whether an entry may still be used:

- **Generation.** `Store.generation` changes after every write transaction that may
  change who may do what (revocation, deactivation, a role, ``api_access``...). An entry
  remembers the generation read *before* its database query and is ignored once the
  generation moved on, so such a change made through this process applies at the next
  request, with no delay.
- **Age.** Changes made by another process (the CLI, a second hub on the same
  PostgreSQL, a manual edit of the database) bump no counter here; an entry older than
  ``seconds`` is ignored, which bounds how long such a change can go unseen.

``seconds <= 0`` turns caching off: every lookup runs its query. ``None`` is never
cached (an unknown token must not stay refused once it exists). The number of entries
is capped; the least recently used one goes first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

from .store import Store

T = TypeVar("T")

MAX_ENTRIES = 10_000


class AccessCache:
    def __init__(
        self,
        store: Store,
        seconds: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.store = store
        self.seconds = seconds
        self.max_entries = max_entries
        self.clock = clock
        # key -> (valid until, by `clock`; value), the least recently used first. All
        # entries were read at `_generation`.
        self._entries: OrderedDict[Hashable, tuple[float, object]] = OrderedDict()
        self._generation = store.generation
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: Hashable, load: Callable[[], T]) -> T:
        """The value for ``key``: a cached one while still valid, else ``load()``'s."""
        if self.seconds <= 0:
            return load()
        # Read before the query: a write committed while it runs makes its result stale.
        generation = self.store.generation
        now = self.clock()
        with self._lock:
            if generation != self._generation:  # something changed: forget everything
                self._entries.clear()
                self._generation = generation
            entry = self._entries.get(key)
            if entry is not None:
                if now < entry[0]:
                    self._entries.move_to_end(key)
                    return entry[1]
                del self._entries[key]
        value = load()
        if value is not None:
            with self._lock:
                # Kept only if nothing was written meanwhile (else the next lookup loads).
                if generation == self._generation == self.store.generation:
                    self._entries[key] = (now + self.seconds, value)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self.max_entries:
                        self._entries.popitem(last=False)
        return value
