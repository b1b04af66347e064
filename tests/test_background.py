"""The background threads of a process: started together, stopped together."""

from __future__ import annotations

import threading
import time

from opus.server.app import create_application


def opus_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("opus-")}


def test_background_threads_start_and_stop_together(settings) -> None:
    before = opus_threads()
    application = create_application(settings)
    assert opus_threads() == before, "nothing runs before start()"
    application.background.start()
    try:
        started = opus_threads() - before
        expected = {"opus-reconciler"}
        if settings.DATABASE_URL.startswith("postgresql"):
            expected.add("opus-feed")
        assert started == expected
    finally:
        stopping = time.monotonic()
        application.background.stop()
    assert time.monotonic() - stopping < 5
    assert opus_threads() == before
    # The reconciler let go of its lock: another process can take it at once.
    lock = application.service.coordination.reconciler_lock()
    try:
        assert lock.acquire()
    finally:
        lock.release()
