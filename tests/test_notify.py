"""PhaseNotifier: prompt wake-ups, shared work, and the cap on waiting requests."""

from __future__ import annotations

import threading
import time

from opus.server.notify import PhaseNotifier


def test_notify_wakes_every_waiter_of_the_job_only() -> None:
    notifier = PhaseNotifier(max_waiters=10)
    woken: list[str] = []
    computed: list[int] = []
    ready = threading.Barrier(4)

    def wait(job_id: str) -> None:
        with notifier.subscribe(job_id) as waiter:
            ready.wait()
            wake = waiter.wait(10)
            if wake is not None:
                # Every waiter asks; one computes, the others reuse its value.
                value = wake.details(lambda: computed.append(1) or len(computed))
                woken.append(f"{job_id}:{value}")

    threads = [threading.Thread(target=wait, args=(job,)) for job in ("a", "a", "b")]
    for thread in threads:
        thread.start()
    ready.wait()
    assert notifier.waiting == 3
    started = time.monotonic()
    notifier.notify("a")
    threads[0].join(5)
    threads[1].join(5)
    assert time.monotonic() - started < 2
    assert sorted(woken) == ["a:1", "a:1"]
    assert computed == [1]
    notifier.notify("b")
    threads[2].join(5)
    assert woken[-1] == "b:2"
    assert notifier.waiting == 0


def test_waiters_past_the_cap_are_not_kept() -> None:
    notifier = PhaseNotifier(max_waiters=1)
    with notifier.subscribe("a") as first, notifier.subscribe("a") as second:
        assert first is not None
        assert second is None  # the caller answers at once instead of blocking a thread
        assert notifier.waiting == 1
    assert notifier.waiting == 0
    with notifier.subscribe("a") as again:
        assert again is not None


def test_timeout_without_change() -> None:
    notifier = PhaseNotifier(max_waiters=4)
    with notifier.subscribe("a") as waiter:
        started = time.monotonic()
        assert waiter.wait(0.2) is None
        assert time.monotonic() - started >= 0.19
