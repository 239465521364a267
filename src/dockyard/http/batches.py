"""Work gathered per request and done once a while later: one flush, however many requests asked.

The access log and the request metrics both keep what requests produce in memory and write it in
one go (see their modules for why). ``FlushLater.request()`` arranges one call of the flush on the
running event loop after ``delay`` seconds, or makes it at once where no loop runs (a script, a
test); further requests before that call are free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class FlushLater:
    def __init__(self, flush: Callable[[], None], delay: float) -> None:
        self._flush = flush
        self.delay = delay
        self._scheduled = False

    def request(self) -> None:
        """See that ``flush`` runs once within ``delay`` seconds (at once without an event loop)."""
        if self._scheduled:
            return
        self._scheduled = True
        try:
            asyncio.get_running_loop().call_later(self.delay, self._flush)
        except RuntimeError:
            self._flush()

    def done(self) -> None:
        """The flush ran (whoever called it): the next request schedules a new one."""
        self._scheduled = False
