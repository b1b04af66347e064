"""The reference of bench_create: a bare bottle handler behind the same waitress setup.

``python bench/bare_app.py --port P --threads T`` serves POST /rest/<jobname> with a
303 to a made-up job URL, after reading the form body (any handler reads it), with the
waitress arguments `opus serve` uses (see opus/cli.py ``_serve``). Nothing is stored.
"""

from __future__ import annotations

import argparse
import itertools

import bottle
import waitress

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
    parser.add_argument("--wait-max", type=int, default=600)
    args = parser.parse_args()
    # The same arguments as opus.cli._serve.
    waitress.serve(
        app,
        host="127.0.0.1",
        port=args.port,
        threads=args.threads,
        connection_limit=max(1000, args.threads * 4),
        backlog=2048,
        channel_timeout=max(120, args.wait_max + 60),
        asyncore_use_poll=True,
        clear_untrusted_proxy_headers=True,
        ident="OPUS",
        _quiet=True,
    )


if __name__ == "__main__":
    main()
