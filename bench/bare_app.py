"""The references of bench_create and bench_wait: bare bottle handlers, same HTTP server.

``python bench/bare_app.py --port P --threads T [--workers N]`` serves, with
``opus.server.httpserver.serve`` exactly as `opus serve` serves OPUS (with N > 1, N
processes sharing the port under the supervisor of `opus serve --workers N`,
opus.server.workers.Supervisor):

- POST /rest/<jobname>: a 303 to a made-up job URL, after reading the form body (any
  handler reads it). Nothing is stored.
- GET /rest/<jobname>/<job_id>: a job-sized XML document held in memory (bench_get's
  reference: what any handler of the same server costs to answer a poll).
- GET /wait: blocks until the process receives SIGUSR1, then answers a job-sized XML
  document: what a thread-per-request server costs to answer many blocked requests at
  once, with no application work (bench_wait's reference).
"""

from __future__ import annotations

import argparse
import itertools
import signal
import threading

import bottle

from opus.server.httpserver import serve
from opus.server.workers import Supervisor

app = bottle.Bottle()
counter = itertools.count()
released = threading.Event()
# About the size of a job document woken by a phase change.
WAIT_BODY = b'<?xml version="1.0" encoding="UTF-8"?>\n<uws:job>' + b"x" * 1600 + b"</uws:job>\n"
# About the size of the document of a completed sleep job (bench_get).
JOB_BODY = WAIT_BODY


@app.post("/rest/<jobname>")
def create(jobname: str):
    dict(bottle.request.forms.decode().allitems())
    location = bottle.urljoin(bottle.request.url, f"/rest/{jobname}/job{next(counter)}")
    return bottle.HTTPResponse(status=303, headers={"Location": location})


@app.get("/rest/<jobname>/<job_id>")
def job(jobname: str, job_id: str):
    bottle.response.content_type = "text/xml; charset=UTF-8"
    return JOB_BODY


@app.get("/")
def index():
    return "bare\n"


@app.get("/wait")
def wait():
    released.wait(120)
    bottle.response.content_type = "text/xml; charset=UTF-8"
    return WAIT_BODY


def release(_signum: int, _frame: object) -> None:
    released.set()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # Inherited by the workers: each releases its own waiters.
    signal.signal(signal.SIGUSR1, release)
    if args.workers == 1:
        serve(app, "127.0.0.1", args.port, args.threads)
        return

    def work(_index: int) -> None:
        serve(app, "127.0.0.1", args.port, args.threads, None, True)

    raise SystemExit(Supervisor(args.workers, work).run())


if __name__ == "__main__":
    main()
