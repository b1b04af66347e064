"""Headless Chromium for bench_pages: the figures of a page load, and the live pages.

The browser is Debian's (``/usr/bin/chromium``, as the browser tests use it, driven by
Playwright's sync API; never a downloaded one).

Page loads (``page_loads``): a page is loaded in a fresh browser context (cold cache),
then again in the same context (warm cache); each load's figures are read from the
page's Performance API once it has painted and loaded (METRICS). ``summary`` prints
them with their targets (JS + CSS <= 150 kB; one request on a warm load).

Live pages (``measure``): a job list page (/jobs) and a job page stay open (signed in,
one browser context) while ``changes`` PENDING jobs, created through the REST API
before the pages open (so they head the list), are aborted one by one (``POST
/rest/sleep/ID/phase PHASE=ABORT``), ``every`` seconds apart, after ``idle`` seconds
of nothing. The job page is navigated to each job before its change (the script of a
job page stops once its job has ended); the list page is never reloaded.
A MutationObserver, set in each page, records the wall-clock time (Date.now()) at
which a phase badge's text changes: a row's phase cell on the list, the live badge on
the job page. The latency of a change is that time minus the time the REST call was
sent (same machine, same clock). Every request the pages make is recorded
(page.on("request")), with the time it was sent.

Targets (docs/client.md, Live updates): the new phase shows within 1 s without a
reload; an open list makes one change-feed request per change, plus one keep-alive
every 30 s (the feed's WAIT) when nothing changes.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import benchlib as b

CHROMIUM = "/usr/bin/chromium"
# The JS and CSS a page may bring, compressed (docs/client.md, Static files).
TARGET_STATIC_KB = 150.0
FEED_WAIT = 30.0

METRICS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  const loaded = performance.getEntriesByType('resource')
    .filter((r) => r.initiatorType !== 'fetch' && r.initiatorType !== 'xmlhttprequest');
  const path = (r) => new URL(r.name).pathname;
  return {
    fcp: paint ? paint.startTime : null,
    load: nav.loadEventEnd,
    bytes: nav.transferSize + loaded.reduce((sum, r) => sum + r.transferSize, 0),
    requests: 1 + loaded.filter((r) => r.transferSize > 0).length,
    cached: loaded.filter((r) => r.transferSize === 0).length,
    static: loaded.filter((r) => /\\.(js|css)$/.test(path(r)))
      .reduce((sum, r) => sum + r.encodedBodySize, 0),
    // from the network: a 304 (revalidated, no body) or a whole file
    network: loaded.filter((r) => r.transferSize > 0)
      .map((r) => path(r) + (r.encodedBodySize === 0 ? ' (304)' : '')),
  };
}"""
PAINTED = """() => performance.getEntriesByName('first-contentful-paint').length > 0
  && performance.getEntriesByType('navigation')[0].loadEventEnd > 0"""
SHOW_TIMEOUT_MS = 10_000

# Records [key, phase text, Date.now()] in window.__phases each time a badge's text
# changes; the key is the job id of a list row, "job" for a job page's live badge.
OBSERVER = """() => {
  window.__phases = [];
  const seen = new Map();
  const scan = () => {
    const now = Date.now();
    for (const badge of document.querySelectorAll('[data-phase]')) {
      const row = badge.closest('tr');
      let key = null;
      if (row && row.dataset.job) key = row.dataset.job.split('/').pop();
      else if (badge.closest('[data-live-phase]')) key = 'job';
      if (!key) continue;
      const text = badge.textContent.trim();
      if (seen.has(key) && seen.get(key) !== text) window.__phases.push([key, text, now]);
      seen.set(key, text);
    }
  };
  scan();
  new MutationObserver(scan).observe(document.body, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
}"""
SHOWN = """([key, phase]) => window.__phases.some((p) => p[0] === key && p[1] === phase)"""
SHOWN_AT = """([key, phase]) => window.__phases.find((p) => p[0] === key && p[1] === phase)[2]"""


# -- page loads ---------------------------------------------------------------------------


def load_figures(page: Any, path: str) -> dict[str, Any]:
    """Load ``path`` in ``page``: the figures of METRICS once it has painted and loaded."""
    page.goto(path, wait_until="load")
    page.wait_for_function(PAINTED, timeout=10_000, polling=20)
    page.wait_for_timeout(200)  # late resources (the favicon)
    return dict(page.evaluate(METRICS))


def page_loads(
    browser: Any, base_url: str, cookie: tuple[str, str], path: str, loads: int, signed: bool
) -> dict[str, list[Any]]:
    """``loads`` cold + warm loads of ``path``: each figure's list of values."""
    figures: dict[str, list[Any]] = {}
    for _ in range(loads):
        context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
        if signed:
            context.add_cookies([{"name": cookie[0], "value": cookie[1], "url": base_url}])
        try:
            page = context.new_page()
            for load in ("cold", "warm"):
                for key, value in load_figures(page, path).items():
                    figures.setdefault(f"{load} {key}", []).append(value)
        finally:
            context.close()
    return figures


def summary(got: dict[str, list[Any]], labels: list[str]) -> dict[str, float]:
    """The figures of each page (its label), cold and warm, from ``page_loads``'s values
    (prefixed with the label): medians and bests; requests: the most seen. Printed."""
    figures = {}
    for label in labels:
        for load in ("cold", "warm"):
            fcp = b.median(got[f"{label} {load} fcp"])
            loaded = b.median(got[f"{label} {load} load"])
            kb = b.median(got[f"{label} {load} bytes"]) / 1000
            requests = max(got[f"{label} {load} requests"])
            best_fcp = min(got[f"{label} {load} fcp"])
            best_load = min(got[f"{label} {load} load"])
            figures[f"{label} {load}: FCP ms"] = fcp
            figures[f"{label} {load}: FCP best ms"] = best_fcp
            figures[f"{label} {load}: load ms"] = loaded
            figures[f"{label} {load}: load best ms"] = best_load
            figures[f"{label} {load}: kB"] = kb
            figures[f"{label} {load}: requests"] = requests
            if load == "cold":
                static = max(got[f"{label} cold static"]) / 1000
                figures[f"{label}: JS+CSS kB"] = static
                verdict = "met" if static <= TARGET_STATIC_KB else "MISSED"
                extra = f", JS+CSS {static:.1f} kB ({verdict}: <= 150 kB)"
            else:
                network = sorted({p for paths in got[f"{label} warm network"] for p in paths})
                extra = f" ({'met' if requests <= 1 else 'MISSED'}: 1)"
                extra += f", besides the page: {', '.join(network)}" if network else ""
            b.line(
                f"{label}, {load}: FCP / load",
                f"{fcp:.0f} / {loaded:.0f} ms (best {best_fcp:.0f} / {best_load:.0f}), "
                f"{kb:.1f} kB, {requests} requests{extra}",
            )
    return figures


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless (as tests/browser/conftest.py launches it)."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
    )


# -- live pages ---------------------------------------------------------------------------


@dataclass
class RequestLog:
    """The requests one page sent: (time.time(), resource type, path and query)."""

    sent: list[tuple[float, str, str]] = field(default_factory=list)

    def record(self, request: Any) -> None:
        parts = urlsplit(request.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.sent.append((time.time(), request.resource_type, path))

    def fetches(self, start: float = 0.0, end: float = float("inf"), part: str = "") -> list[float]:
        """When the page's scripts sent requests (fetch) whose path holds ``part``."""
        return [
            t
            for t, kind, path in self.sent
            if kind == "fetch" and part in path and start <= t < end
        ]


def _open(context: Any, path: str, log: RequestLog, waited: str) -> Any:
    """A page of the context at ``path``, its observer set, once its script waits
    (has sent a request whose path holds ``waited``)."""
    page = context.new_page()
    page.on("request", log.record)
    goto(page, path, log, waited)
    return page


def goto(page: Any, path: str, log: RequestLog, waited: str) -> None:
    """Navigate ``page`` to ``path``; return once its observer is set and its script
    waits (a request holding ``waited`` sent since)."""
    since = time.time()
    page.goto(path, wait_until="load")
    page.evaluate(OBSERVER)
    deadline = time.monotonic() + SHOW_TIMEOUT_MS / 1000
    while not log.fetches(since, part=waited) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    page.wait_for_timeout(300)  # the request reaches the server and is parked


def shown_at(page: Any, key: str, phase: str) -> float | None:
    """When (time.time() scale) ``page`` showed ``phase`` for ``key``; None if not in time."""
    try:
        page.wait_for_function(SHOWN, arg=[key, phase], timeout=SHOW_TIMEOUT_MS, polling=50)
    except Exception:  # playwright's TimeoutError
        return None
    return float(page.evaluate(SHOWN_AT, [key, phase])) / 1000


def measure(
    browser: Any,
    base_url: str,
    cookie: tuple[str, str],
    api_headers: dict[str, str],
    *,
    idle: float,
    changes: int,
    every: float,
) -> dict[str, Any]:
    """Run the scenario above; the figures (latencies in s, request counts, intervals)."""
    conn = b.connection(base_url)
    paths = []
    for _ in range(changes):
        status, headers, data = b.request(conn, "POST", "/rest/sleep", "duration=1", api_headers)
        if status != 303:
            raise RuntimeError(f"job creation answered {status}: {data[:200]!r}")
        paths.append(urlsplit(headers["location"]).path)
    context = browser.new_context(base_url=base_url)
    context.add_cookies([{"name": cookie[0], "value": cookie[1], "url": base_url}])
    list_log, job_log = RequestLog(), RequestLog()
    marker = "window.__opusMarker = 'not reloaded'"
    try:
        listing = _open(context, "/jobs", list_log, "/changes")
        listing.evaluate(f"() => {{ {marker}; }}")
        job_page = _open(context, "/jobs" + paths[0][len("/rest") :], job_log, "WAIT=")
        opened = time.time()
        # Waits are Playwright's, never time.sleep: its events (requests) come in meanwhile.
        listing.wait_for_timeout(idle * 1000)
        first_change = time.time()
        list_latency, job_latency, job_after = [], [], []
        for i, path in enumerate(paths):
            job_id = path.rsplit("/", 1)[-1]
            if i:
                goto(job_page, "/jobs" + path[len("/rest") :], job_log, "WAIT=")
            sent = time.time()
            status, _, _ = b.request(conn, "POST", f"{path}/phase", "PHASE=ABORT", api_headers)
            if status != 303:
                raise RuntimeError(f"abort answered {status}")
            on_list = shown_at(listing, job_id, "ABORTED")
            on_job = shown_at(job_page, "job", "ABORTED")
            list_latency.append(None if on_list is None else on_list - sent)
            job_latency.append(None if on_job is None else on_job - sent)
            listing.wait_for_timeout(max(0.0, sent + every - time.time()) * 1000)
            job_after.append(len(job_log.fetches(sent, time.time())))
        listing.wait_for_timeout(1000)
        ended = time.time()
        survived = listing.evaluate("() => window.__opusMarker") == "not reloaded"
    finally:
        context.close()
        conn.close()
    idle_feed = list_log.fetches(opened - 60, first_change, "/changes")
    idle_job = job_log.fetches(opened - 60, first_change, "WAIT=")
    feed_after = list_log.fetches(first_change, ended, "/changes")
    window = ended - first_change
    return {
        "changes": changes,
        "idle_seconds": first_change - opened,
        "change_seconds": window,
        "list_latency": list_latency,
        "job_latency": job_latency,
        "feed_requests": len(feed_after),
        "feed_allowed": changes + int(window // FEED_WAIT) + 1,
        "feed_idle_intervals": _intervals(idle_feed),
        "job_idle_intervals": _intervals(idle_job),
        "job_requests_after_change": job_after,
        "list_idle_requests": len(list_log.fetches(opened, first_change)),
        "not_reloaded": survived,
    }


def _intervals(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def report(live: dict[str, Any]) -> dict[str, object]:
    """Print the figures of ``measure`` with their verdicts; the RESULT figures."""
    shown = [t for t in live["list_latency"] + live["job_latency"] if t is not None]
    lost = len(live["list_latency"]) + len(live["job_latency"]) - len(shown)
    for where in ("list", "job"):
        values = [t for t in live[f"{where}_latency"] if t is not None]
        worst = max(values) if values else float("nan")
        b.line(
            f"live, {where} page: change to DOM p50 / max",
            f"{b.ms(b.median(values))} / {b.ms(worst)} "
            f"({'met' if values and worst < 1.0 and not lost else 'MISSED'}: < 1 s; "
            f"{len(values)} of {live['changes']} shown)",
        )
    feed, allowed = live["feed_requests"], live["feed_allowed"]
    b.line(
        "live, list page: feed requests for changes",
        f"{feed} for {live['changes']} changes in {live['change_seconds']:.0f} s"
        f" = {feed / live['changes']:.2f} a change, allowed {allowed} "
        f"({'met' if feed <= allowed else 'MISSED'})",
    )
    intervals = live["feed_idle_intervals"]
    shortest = min(intervals) if intervals else float("nan")
    b.line(
        "live, list page: idle keep-alive interval",
        (f"{', '.join(f'{t:.1f}' for t in intervals)} s" if intervals else "none seen")
        + f" ({live['list_idle_requests']} requests in {live['idle_seconds']:.0f} s idle; "
        + ("met" if not intervals or shortest >= FEED_WAIT - 0.5 else "MISSED")
        + ": >= 30 s)",
    )
    job_intervals = live["job_idle_intervals"]
    b.line(
        "live, job page: idle WAIT interval",
        f"{', '.join(f'{t:.1f}' for t in job_intervals)} s" if job_intervals else "none seen",
    )
    b.line(
        "live, job page: requests after each change",
        f"{live['job_requests_after_change']} (the parts of the page read again)",
    )
    b.line("live, list page not reloaded", "yes" if live["not_reloaded"] else "NO (MISSED)")
    return {
        "live_ms_max": f"{max(shown) * 1000:.0f}" if shown else "nan",
        "live_feed_requests": live["feed_requests"],
        "live_changes": live["changes"],
        "live_target": "met"
        if shown and max(shown) < 1.0 and not lost and live["feed_requests"] <= live["feed_allowed"]
        else "missed",
    }
