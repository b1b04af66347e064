"""The background parts of a serving process, owned by one object.

A process that serves requests runs three threads beside its HTTP workers: the
reconciler (one pass every RECONCILE_INTERVAL while this process holds the reconciler
lock), on PostgreSQL the change-feed listener (wakes this process's WAIT requests when
another process changes a job), and the Parker (answers parked WAIT requests; it starts
with the first parked request). ``Background`` starts them together and stops them
together, answering parked requests first, when the server shuts down.
"""

from __future__ import annotations

import logging

from opus.server.notify import FeedListener
from opus.server.parking import Parker
from opus.server.service import JobService, Reconciler

log = logging.getLogger("opus.background")

JOIN_TIMEOUT = 5.0


class Background:
    """The reconciler, the change-feed listener and the Parker of one process."""

    def __init__(self, service: JobService, parker: Parker) -> None:
        self.service = service
        self.parker = parker
        self.reconciler: Reconciler | None = None
        self.listener: FeedListener | None = None

    def start(self) -> None:
        """Start the reconciler and (PostgreSQL) the change-feed listener."""
        if self.reconciler is not None:
            return
        self.reconciler = Reconciler(self.service)
        self.reconciler.start()
        coordination = self.service.coordination
        if coordination.listens:
            self.listener = FeedListener(coordination.open_feed, self.service.notifier)
            self.listener.start()

    def stop(self) -> None:
        """Answer the parked WAIT requests, then stop the threads (each within seconds)."""
        self.parker.stop()
        for thread in (self.reconciler, self.listener):
            if thread is not None:
                thread.stop()
        for thread in (self.reconciler, self.listener):
            if thread is not None and thread.is_alive():
                thread.join(JOIN_TIMEOUT)
                if thread.is_alive():
                    log.warning("%s did not stop within %.0f s", thread.name, JOIN_TIMEOUT)
