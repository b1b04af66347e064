"""How a batch learns that its jobs changed: OPUS's change feed, or WAIT per job.

``ChangeFeed`` follows ``GET /changes?since=T&WAIT=30`` (docs/api.md) in one thread:
the server parks the request and answers it when any of the caller's jobs changes, with
every job changed since the token, so a batch of 20 jobs in flight costs one request per
change of any of them (fewer when changes come together), whatever the number of jobs.
The token is taken before the batch submits anything, so no change is missed; a change
of a job whose creation is still unanswered is reported by its id, and the batch keeps
it until it knows the job. ``follow_with_wait`` is the way without a feed (another UWS
server, or a client asking for XML only): one thread per job, each asking ``WAIT`` with
the phase last seen, answered at the job's next change.

Both hand what they learn to the batch's own thread (``post``), which alone touches the
report; neither ever polls on a clock of its own, except after a failure (a growing
pause, at most 10 s). The pools of threads that submit and read jobs (``Pool``), the
room they need in the session's pool of connections (``widen_pool``), and what a refusal
of a creation means for the batch (``refusal_kind``) are here too.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Protocol

from requests.adapters import HTTPAdapter

from opus.client.errors import (
    AuthenticationFailed,
    BadRequest,
    NotFound,
    OpusError,
    PermissionDenied,
    ServerError,
    TooManyRequests,
    Unreachable,
)
from opus.client.jobs_api import Job
from opus.client.models import phase_of
from opus.client.transport import is_json, json_of
from opus.core.phases import TERMINAL, Phase

if TYPE_CHECKING:
    from opus.client.api import Client

# Seconds of one WAIT of the feed (and of a job): under the proxies' idle cut-offs.
FEED_WAIT = 30
JOB_WAIT = 60
# Seconds an HTTP request may take beyond the WAIT it asks for.
SLACK = 30
MAX_PAUSE = 10.0
# Seconds of a feed that cannot be read before the batch stops.
FEED_DOWN_FOR = 120.0
Post = Callable[[Callable[[], None]], None]


class Listener(Protocol):
    """What a batch is told by its feed, in its own thread."""

    def changes(self, lines: list[tuple[str, Phase]], deleted: list[str]) -> None: ...
    def reread(self) -> None: ...
    def note(self, text: str) -> None: ...
    def stop(self, why: str, error: OpusError) -> None: ...


def _raise(exc: BaseException) -> None:
    raise exc


def guarded(target: Callable[[], None], post: Post) -> Callable[[], None]:
    """``target``, with any fault of it raised in the batch's thread (``post``) rather
    than lost with the thread, the batch waiting for news that never comes."""

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            post(partial(_raise, exc))

    return run


def start_thread(name: str, target: Callable[[], None], post: Post) -> None:
    """``target`` in a daemon thread of its own, guarded."""
    threading.Thread(target=guarded(target, post), name=name, daemon=True).start()


class Pool:
    """A few daemon threads running tasks in turn (daemons: an interrupted batch does
    not wait for a download to end before the process may exit); a task's fault is
    raised in the batch's thread (``post``)."""

    def __init__(self, count: int, name: str, post: Post) -> None:
        self.tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.post = post
        self.threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(count)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        while (task := self.tasks.get()) is not None:
            guarded(task, self.post)()

    def put(self, task: Callable[[], None]) -> None:
        self.tasks.put(task)

    def stop(self) -> None:
        for _ in self.threads:
            self.tasks.put(None)


class ChangeFeed:
    """The caller's change feed on ``client``'s server, from ``token`` on."""

    def __init__(self, client: Client, token: str) -> None:
        self.client = client
        self.token = token

    @classmethod
    def open(cls, client: Client) -> ChangeFeed | None:
        """The feed from now, or None when the server has none (not OPUS, or the client
        reads XML only). AuthenticationFailed propagates: nothing would work."""
        if not client.transport.json:
            return None
        try:
            token = cls._read(client, {})["token"]
        except AuthenticationFailed:
            raise
        except (OpusError, KeyError):
            return None
        return cls(client, str(token))

    @staticmethod
    def _read(client: Client, params: dict[str, str]) -> dict[str, object]:
        wait = int(params.get("WAIT", "0"))
        response = client.transport.request(
            "GET", "/changes", params=params, accept="application/json", timeout=wait + SLACK
        )
        value = json_of(response) if is_json(response) else None
        if not isinstance(value, dict) or not isinstance(value.get("token"), str):
            raise ServerError("the server's change feed is not what docs/api.md says")
        return value

    def start(self, stopping: threading.Event, post: Post, listener: Listener) -> None:
        """Follow the feed in a daemon thread until ``stopping`` is set."""
        start_thread("opus-batch-feed", partial(self._follow, stopping, post, listener), post)

    def _follow(self, stopping: threading.Event, post: Post, listener: Listener) -> None:
        failing_since: float | None = None
        pause = 1.0
        while not stopping.is_set():
            try:
                value = self._read(self.client, {"since": self.token, "WAIT": str(FEED_WAIT)})
            except BadRequest:
                # A token the server does not take (another database?): start again.
                with contextlib.suppress(OpusError):
                    self.token = str(self._read(self.client, {})["token"])
                post(listener.reread)
                continue
            except OpusError as exc:
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                    post(partial(listener.note, f"the change feed failed ({exc}): trying again"))
                elif now - failing_since > FEED_DOWN_FOR:
                    post(partial(listener.stop, f"the change feed failed: {exc}", exc))
                    return
                stopping.wait(pause)
                pause = min(MAX_PAUSE, pause * 2)
                continue
            failing_since, pause = None, 1.0
            self.token = str(value["token"])
            if value.get("reset"):
                post(listener.reread)
                continue
            jobs, gone = value.get("jobs"), value.get("deleted")
            lines = [
                (str(line.get("jobId")), phase_of(line.get("phase")))
                for line in (jobs if isinstance(jobs, list) else [])
                if isinstance(line, dict)
            ]
            deleted = [str(d) for d in (gone if isinstance(gone, list) else [])]
            if lines or deleted:
                post(partial(listener.changes, lines, deleted))


def follow_with_wait(job: Job, stopping: threading.Event, seen: Callable[[Phase], None]) -> None:
    """Tell ``seen`` the job's phase now and at each change until it has ended (WAIT
    with the phase last seen), or until ``stopping``; a job deleted is told as
    ABORTED. Failures are retried after a growing pause."""
    pause = 1.0
    phase: Phase | None = None
    while not stopping.is_set():
        try:
            info = job.refresh() if phase is None else job.wait_once(JOB_WAIT)
        except NotFound:
            seen(Phase.ABORTED)
            return
        except OpusError:
            stopping.wait(pause)
            pause = min(MAX_PAUSE, pause * 2)
            continue
        pause = 1.0
        if info.phase != phase:
            phase = info.phase
            seen(phase)
        if phase in TERMINAL:
            return


def widen_pool(client: Client, size: int) -> None:
    """Room in the session's pool of connections for every thread of the batch
    (requests keeps 10 per host: more threads would drop connections, and warn)."""
    session = client.transport.session
    for prefix in ("http://", "https://"):
        adapter = session.adapters.get(prefix)
        if type(adapter) is HTTPAdapter and getattr(adapter, "_pool_maxsize", 0) < size:
            session.mount(prefix, HTTPAdapter(pool_maxsize=size))


def refusal_kind(exc: OpusError) -> str:
    """What a refused creation means: ``busy`` (try again later), ``full`` or ``fatal``
    (stop submitting), ``down`` (no answer), ``fault`` (a 5xx), or ``dataset`` (this
    dataset's own: a value refused)."""
    reason = str(exc)
    if isinstance(exc, TooManyRequests) or (
        isinstance(exc, PermissionDenied)
        and ("NJOBS_MAX" in reason or "reached a limit meanwhile" in reason)
    ):
        return "busy"
    if "JOBS_PER_USER_MAX" in reason or "STORAGE_PER_USER_MAX" in reason:
        return "full"
    if isinstance(exc, Unreachable):
        return "down"
    if isinstance(exc, ServerError):
        return "fault"
    if isinstance(exc, AuthenticationFailed | PermissionDenied | NotFound):
        return "fatal"
    return "dataset"
