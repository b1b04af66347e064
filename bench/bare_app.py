"""The reference of bench_create: a bare bottle handler behind the same HTTP server.

``python bench/bare_app.py --port P --threads T [--workers N]`` serves POST
/rest/<jobname> with a 303 to a made-up job URL, after reading the form body (any
handler reads it), served by ``opus.server.httpserver.serve``, exactly as `opus serve`
serves OPUS; with N > 1, by N processes sharing the port under the supervisor of `opus
serve --workers N` (opus.server.workers.Supervisor). Nothing is stored.
"""

from __future__ import annotations

import argparse
import itertools

import bottle

from opus.server.httpserver import serve
from opus.server.workers import Supervisor

app = bottle.Bottle()
counter = itertools.count()


@app.post("/rest/<jobname>")
def create(jobname: str):
    dict(bottle.request.forms.decode().allitems())
    location = bottle.urljoin(bottle.request.url, f"/rest/{jobname}/job{next(counter)}")
    return bottle.HTTPResponse(status=303, headers={"Location": location})


@app.get("/")
def index():
    return "bare\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.workers == 1:
        serve(app, "127.0.0.1", args.port, args.threads)
        return

    def work(_index: int) -> None:
        serve(app, "127.0.0.1", args.port, args.threads, None, True)

    raise SystemExit(Supervisor(args.workers, work).run())


if __name__ == "__main__":
    main()
