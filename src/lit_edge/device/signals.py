"""SIGINT/SIGTERM as a request to stop cleanly: finish the batch, flush the database, exit.

``tag`` and ``detect`` both run under :class:`GracefulStop` (systemd stops ``detect`` with
SIGTERM; a person stops ``tag`` with Ctrl-C). The first signal sets an event that the pipeline
checks between batches; a second one interrupts at once, for a run that will not stop.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)


class GracefulStop:
    """``with GracefulStop() as stop:`` installs the handlers (main thread only) and yields the event."""

    def __init__(self):
        self.event = threading.Event()
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.event.is_set():
            raise KeyboardInterrupt
        log.info("%s: finishing the current batch and flushing the database", signal.Signals(signum).name)
        self.event.set()

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self.event

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
