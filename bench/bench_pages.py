"""The web client's pages at 10^4 and 10^5 jobs of one user: server time, browser
load figures, and the live pages in a real browser.

For each size (default 10^4 and 10^5; --quick: 10^3 and 10^4; --sizes) a fresh SQLite
database is made: a user ``bench`` (every job type, a password) is added first (adding
a user gives the jobs already stored under its name to a tombstone), then
bench_list.fill_database puts the jobs in, all owned by ``bench`` (three job types in
turn, run ids, bench_list's phases: 60% COMPLETED, 10% EXECUTING…). Each size gets its
own `opus serve` (anonymous access off, reconciler every hour), signed into with POST
/login; one real sleep job is run to COMPLETED through the REST API, for the job page.
The servers of all sizes run side by side and every measurement takes the sizes in
turn (ROUNDS of server times, one browser load each), so that the drift of a shared
machine's load falls on every size alike.

1. Server time of ``GET /jobs``, as a page (``Accept: text/html``) and as JSON
   (``Accept: application/json``), with the session cookie: the first page (50 jobs),
   a deep page (the page's "Older jobs" link carries ``?cursor=``, the urlsafe base64
   of "creation time/job id" of the last job shown, the JSON list's ``next``: checked;
   JSON's parameter is ``CURSOR``; here the cursor of the job 90% down the list) and a
   phase filter (EXECUTING). Each is asked REPEATS times (after WARMUP a round),
   sequentially: in-process (the WSGI application of create_app on the same database,
   called directly: routing, session, service, rendering) and over HTTP on one
   keep-alive connection (the round trip). p50 / p99.
2. In headless Chromium (Debian's /usr/bin/chromium, Playwright; bench/browserlib.py):
   the login page, home, the job list (first and deep page), the job page and the
   new-job form (sleep), each LOADS times in a fresh browser context (cold cache),
   each time followed by a second load in the same context (warm cache). From the
   page's Performance API: first contentful paint and loadEventEnd (median, and best:
   the least disturbed by other work on the machine), bytes transferred (navigation +
   resources' transferSize: compressed bodies and headers), network requests
   (transferSize > 0: a 304 counts; the pages' own fetches, the live updates, are
   left out) and the JS + CSS bodies (encodedBodySize, compressed). Targets: JS + CSS
   <= 150 kB a page; on a warm load one request, the page (every static file from the
   cache).
3. Every figure's ratio at the largest size to the smallest: target within 1.5x (a
   verdict for the p50s, medians and bests; p99s and request counts are printed).
4. On the largest size, the live pages in the browser (browserlib.measure): a job list
   and a job page open while jobs change phase. Targets: the change shows within 1 s;
   the list makes one change-feed request per change and one keep-alive every 30 s
   when idle (no more often).

Nothing is asserted: a missed target is printed MISSED and the exit status stays 0.
About 7 minutes; --quick (10^3 and 10^4 jobs, fewer repeats and loads, a short live
part without the 30 s keep-alive) about 1 minute.

    .venv/bin/python bench/bench_pages.py [--quick] [--sizes 10000,100000]
        [--loads 7] [--repeats 200] [--no-live]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import io
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import bench_list
import benchlib as b
import browserlib

USER = "bench"
PASSWORD = f"the password of {USER}"
JOBNAMES = ("sleep", "fail", "append_text")
PAGE = 50
REPEATS = 200
WARMUP = 10
# Server times and browser loads are taken in rounds, the sizes in turn: the shared
# machine's load drifts, and both sizes see the same drift.
ROUNDS = 4
LOADS = 7
TARGET_RATIO = 1.5
HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# Anonymous access off; the filled EXECUTING jobs (10%) count as active: no limit on them.
SERVER_ENV = {
    "OPUS_RECONCILE_INTERVAL": "3600",
    "OPUS_ALLOW_ANONYMOUS": "false",
    "OPUS_NJOBS_MAX": "1000000000",
}
# Live pages: idle first (longer than the feed's 30 s WAIT: one keep-alive), then changes.
LIVE_IDLE, LIVE_CHANGES, LIVE_EVERY = 35.0, 6, 5.0
QUICK_LIVE = (5.0, 3, 3.0)

# -- the database, the user, the server -------------------------------------------------


def prepare(base: Path, count: int) -> tuple[str, str, float]:
    """A migrated database with the user and ``count`` jobs of it: (url, token, seconds)."""
    from opus.core.access import ALL_JOB_TYPES_ROLE
    from opus.server import schema
    from opus.server.auth import UserManager
    from opus.server.storage import UserStore, make_engine

    url = f"sqlite:///{base / 'var' / 'opus.db'}"
    schema.upgrade(url)
    engine = make_engine(url)
    try:
        _, token = UserManager(UserStore(engine)).add(USER, [ALL_JOB_TYPES_ROLE], PASSWORD)
    finally:
        engine.dispose()
    seconds = bench_list.fill_database(url, count, jobnames=JOBNAMES, run_ids=True, owner=USER)
    return url, token, seconds


def sign_in(base_url: str) -> tuple[str, str]:
    """POST /login with the password: the session cookie's (name, value)."""
    conn = b.connection(base_url)
    try:
        body = f"username={USER}&secret={quote(PASSWORD)}"
        status, headers, data = b.request(conn, "POST", "/login", body)
    finally:
        conn.close()
    if status != 303 or "set-cookie" not in headers:
        raise RuntimeError(f"sign-in answered {status}: {data[:200]!r}")
    name, _, value = headers["set-cookie"].split(";", 1)[0].partition("=")
    return name, value


def run_job(base_url: str, api: dict[str, str]) -> str:
    """A sleep job run to COMPLETED through the REST API: its page's path."""
    conn = b.connection(base_url)
    status, headers, data = b.request(conn, "POST", "/rest/sleep", "duration=0.2&PHASE=RUN", api)
    if status != 303:
        raise RuntimeError(f"job creation answered {status}: {data[:200]!r}")
    path = urlsplit(headers["location"]).path
    phase = ""
    try:
        for _ in range(30):
            phase = b.request(conn, "GET", f"{path}/phase", headers=api)[2].decode().strip()
            if phase in b.FINAL_PHASES:
                break
            b.request(conn, "GET", f"{path}?WAIT=5&PHASE={phase}", headers=api)
    finally:
        conn.close()
    if phase != "COMPLETED":
        raise RuntimeError(f"the sleep job for the job page is {phase}, not COMPLETED")
    return "/jobs" + path[len("/rest") :]


def deep_cursor(url: str, depth: int) -> str:
    """The cursor of the user's job ``depth`` down the list, newest first (read once,
    here, by an OFFSET: the server never does)."""
    from sqlalchemy import select

    from opus.server.service.listing import encode_cursor
    from opus.server.storage import JobRow, make_engine
    from opus.server.storage.listing import Position

    engine = make_engine(url)
    statement = (
        select(JobRow.creation_time, JobRow.id)
        .where(JobRow.owner == USER)
        .order_by(JobRow.creation_time.desc(), JobRow.id.desc())
        .offset(depth)
        .limit(1)
    )
    with engine.connect() as conn:
        created, job_id = conn.execute(statement).one()
    engine.dispose()
    return str(encode_cursor(Position(created, job_id)))


def queries(cursor: str) -> dict[str, tuple[str, str]]:
    """name: (Accept, path) of each list query timed."""
    return {
        "html first": (HTML, "/jobs"),
        "html deep": (HTML, f"/jobs?limit={PAGE}&cursor={cursor}"),
        "html phase": (HTML, "/jobs?phase=EXECUTING"),
        "json first": ("application/json", f"/jobs?LAST={PAGE}"),
        "json deep": ("application/json", f"/jobs?LAST={PAGE}&CURSOR={cursor}"),
        "json phase": ("application/json", f"/jobs?LAST={PAGE}&PHASE=EXECUTING"),
    }


def check_next_link(base_url: str, cookie: str) -> str:
    """The first page's "Older jobs" link: its cursor is the JSON list's ``next`` (the
    format of the deep cursor used here); RuntimeError if not. Its query, shortened."""
    conn = b.connection(base_url)
    try:
        page = b.request(conn, "GET", "/jobs", headers={"Accept": HTML, "Cookie": cookie})[2]
        answer = b.request(
            conn,
            "GET",
            f"/jobs?LAST={PAGE}",
            headers={"Accept": "application/json", "Cookie": cookie},
        )[2]
    finally:
        conn.close()
    found = re.search(rb'href="/jobs\?([^"]*)" rel="next"', page)
    query = html.unescape(found.group(1).decode()) if found else ""
    cursor = parse_qs(query).get("cursor", [""])[0]
    if not cursor or cursor != json.loads(answer)["next"]:
        raise RuntimeError(f"the page's next link ({query!r}) is not the JSON list's cursor")
    return query[:40] + "…"


# -- server time ----------------------------------------------------------------------


def in_process_app(base: Path, url: str, base_url: str) -> Any:
    """The WSGI application of `opus serve`, in this process, on the same database."""
    from opus.server.app import create_app
    from opus.settings import Settings

    settings = Settings(
        VAR_PATH=base / "var",
        JDL_PATH=base / "jdl",
        DATABASE_URL=url,
        BASE_URL=base_url,
        ALLOW_ANONYMOUS=False,
    )
    return create_app(settings)


def wsgi_get(app: Any, path: str, headers: dict[str, str]) -> tuple[str, bytes]:
    """One GET through the WSGI application: (status line, body)."""
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    status: list[str] = []
    answer = app(environ, lambda line, _headers, _exc=None: status.append(line))
    try:
        body = b"".join(answer)
    finally:
        if hasattr(answer, "close"):
            answer.close()
    return status[0], body


def time_in_process(app: Any, path: str, headers: dict[str, str], repeats: int) -> list[float]:
    times = []
    for i in range(WARMUP + repeats):
        started = time.perf_counter()
        status, body = wsgi_get(app, path, headers)
        elapsed = time.perf_counter() - started
        if not status.startswith("200"):
            raise RuntimeError(f"in-process GET {path}: {status} {body[:200]!r}")
        if i >= WARMUP:
            times.append(elapsed)
    return times


def time_http(base_url: str, path: str, headers: dict[str, str], repeats: int) -> list[float]:
    conn = b.connection(base_url)
    times = []
    try:
        for i in range(WARMUP + repeats):
            started = time.perf_counter()
            status, _, body = b.request(conn, "GET", path, headers=headers)
            elapsed = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
            if i >= WARMUP:
                times.append(elapsed)
    finally:
        conn.close()
    return times


def browser_pages(cursor: str, job_page: str) -> dict[str, str]:
    return {
        "login": "/login",
        "home": "/",
        "list first": "/jobs",
        "list deep": f"/jobs?limit={PAGE}&cursor={cursor}",
        "job": job_page,
        "new job": "/jobs/new/sleep",
    }


# -- one size ----------------------------------------------------------------------------


@dataclass
class Site:
    """One size, ready: its server (signed into), its in-process application, the
    deep cursor and the path of its job page."""

    count: int
    server: b.OpusServer
    cookie: tuple[str, str]
    api: dict[str, str]
    app: Any
    cursor: str
    job_page: str

    @property
    def cookie_header(self) -> str:
        return f"{self.cookie[0]}={self.cookie[1]}"


def open_site(stack: contextlib.ExitStack, count: int) -> Site:
    """Fill a database with ``count`` jobs, start its server (stopped by ``stack``)."""
    base = stack.enter_context(b.workdir(f"pages{count}"))
    url, token, seconds = prepare(base, count)
    cursor = deep_cursor(url, count * 9 // 10)
    server = stack.enter_context(b.OpusServer(base / "var", base / "jdl", SERVER_ENV))
    basic = base64.b64encode(f"{USER}:{token}".encode()).decode()
    api = {"Authorization": f"Basic {basic}"}
    app = in_process_app(base, url, server.base_url)
    site = Site(count, server, sign_in(server.base_url), api, app, cursor, "")
    site.job_page = run_job(server.base_url, api)
    b.line(f"{count:,} jobs: database fill", f"{seconds:.1f} s")
    link = check_next_link(server.base_url, site.cookie_header)
    b.line(f"{count:,} jobs: the list page's next link", f"{link} (JSON's cursor)")
    return site


def time_queries(sites: list[Site], repeats: int) -> dict[int, dict[str, list[float]]]:
    """Each size's server times (in-process) and GET times of each list query, in
    ROUNDS taking the sizes in turn."""
    times: dict[int, dict[str, list[float]]] = {site.count: {} for site in sites}
    for label in queries(""):
        for _ in range(ROUNDS):
            for site in sites:
                accept, path = queries(site.cursor)[label]
                headers = {"Accept": accept, "Cookie": site.cookie_header}
                inside = time_in_process(site.app, path, headers, repeats // ROUNDS)
                outside = time_http(site.server.base_url, path, headers, repeats // ROUNDS)
                times[site.count].setdefault(f"{label}: server", []).extend(inside)
                times[site.count].setdefault(f"{label}: GET", []).extend(outside)
    return times


def load_pages(browser: Any, sites: list[Site], loads: int) -> dict[int, dict[str, list[Any]]]:
    """Each size's browser figures of each page (cold and warm), the sizes in turn."""
    got: dict[int, dict[str, list[Any]]] = {site.count: {} for site in sites}
    for label in browser_pages("", ""):
        for _ in range(loads):
            for site in sites:
                path = browser_pages(site.cursor, site.job_page)[label]
                signed = label != "login"
                once = browserlib.page_loads(
                    browser, site.server.base_url, site.cookie, path, 1, signed
                )
                for key, values in once.items():
                    got[site.count].setdefault(f"{label} {key}", []).extend(values)
    return got


def time_figures(times: dict[str, list[float]]) -> dict[str, float]:
    """p50 and p99 of each query's times, in ms (printed)."""
    figures = {}
    for label in queries(""):
        inside, outside = times[f"{label}: server"], times[f"{label}: GET"]
        figures[f"{label}: server p50 ms"] = b.median(inside) * 1000
        figures[f"{label}: server p99 ms"] = b.percentile(inside, 0.99) * 1000
        figures[f"{label}: GET p50 ms"] = b.median(outside) * 1000
        figures[f"{label}: GET p99 ms"] = b.percentile(outside, 0.99) * 1000
        b.line(
            f"{label}: server p50 / p99, GET p50 / p99",
            f"{b.ms(b.median(inside))} / {b.ms(b.percentile(inside, 0.99))}, "
            f"{b.ms(b.median(outside))} / {b.ms(b.percentile(outside, 0.99))}",
        )
    return figures


# -- report ------------------------------------------------------------------------------


def ratio_table(by_size: dict[int, dict[str, float]], small: int, large: int) -> int:
    """Print every figure at both sizes and its ratio; the number of targets missed."""
    print(f"\n  {'figure':<40} {small:>10,} {large:>10,}  ratio")
    missed = 0
    for name, value in by_size[small].items():
        other = by_size[large].get(name, float("nan"))
        ratio = other / value if value else float("nan")
        verdict = ""
        if "p99" not in name and "requests" not in name:
            met = ratio <= TARGET_RATIO or (value == 0 and other == 0)
            missed += not met
            verdict = "met" if met else "MISSED"
        print(f"  {name:<40} {value:>10.1f} {other:>10.1f}  {ratio:5.2f}x {verdict}")
    return missed


def run_live(browser: Any, site: Site, quick: bool) -> dict[str, Any]:
    """The live pages in the browser, on ``site`` (browserlib.measure)."""
    idle, changes, every = QUICK_LIVE if quick else (LIVE_IDLE, LIVE_CHANGES, LIVE_EVERY)
    return browserlib.measure(
        browser,
        site.server.base_url,
        site.cookie,
        site.api,
        idle=idle,
        changes=changes,
        every=every,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 jobs, fewer repeats")
    parser.add_argument("--sizes", help="comma-separated job counts")
    parser.add_argument("--loads", type=int, default=None, help="browser loads a page")
    parser.add_argument("--repeats", type=int, default=None, help="GETs a query")
    parser.add_argument("--no-live", action="store_true", help="skip the live pages")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    sizes = sizes or ([10**3, 10**4] if args.quick else [10**4, 10**5])
    args.loads = args.loads or (2 if args.quick else LOADS)
    args.repeats = args.repeats or (40 if args.quick else REPEATS)
    from playwright.sync_api import sync_playwright

    b.heading(
        f"bench_pages: the job pages with {', '.join(f'{n:,}' for n in sizes)} jobs of one "
        f"user (SQLite), in Chromium; then the live pages"
    )
    by_size: dict[int, dict[str, float]] = {}
    live: dict[str, Any] = {}
    with sync_playwright() as playwright, contextlib.ExitStack() as stack:
        browser = browserlib.launch(playwright)
        stack.callback(browser.close)
        sites = [open_site(stack, count) for count in sizes]
        times = time_queries(sites, args.repeats)
        loads = load_pages(browser, sites, args.loads)
        for site in sites:
            print(f"\n  -- {site.count:,} jobs --")
            by_size[site.count] = time_figures(times[site.count])
            by_size[site.count].update(
                browserlib.summary(loads[site.count], list(browser_pages("", "")))
            )
        if not args.no_live:
            live = run_live(browser, sites[-1], args.quick)
    small, large = sizes[0], sizes[-1]
    missed = ratio_table(by_size, small, large) if len(sizes) > 1 else 0
    result: dict[str, object] = {
        "html_first_ms": f"{by_size[large]['html first: server p50 ms']:.1f}",
        "html_deep_ms": f"{by_size[large]['html deep: server p50 ms']:.1f}",
        "json_first_ms": f"{by_size[large]['json first: server p50 ms']:.1f}",
        "list_fcp_ms": f"{by_size[large]['list first cold: FCP ms']:.0f}",
        "static_kb_max": f"{max(v for k, v in by_size[large].items() if 'JS+CSS' in k):.1f}",
        "warm_requests_max": max(v for k, v in by_size[large].items() if "warm: requests" in k),
        "ratio_target": "met" if not missed else f"missed({missed})",
    }
    if live:
        print(f"\n  -- live pages, {large:,} jobs --")
        result.update(browserlib.report(live))
    b.result("bench_pages", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
