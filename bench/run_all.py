"""Run every benchmark in sequence and print their RESULT lines as one table.

    .venv/bin/python bench/run_all.py [--quick] [--only create,list]

Each benchmark's own output is shown as it runs. Nothing is asserted: the exit status
is non-zero only when a benchmark could not run (crashed, timed out, no RESULT line).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PG = ["--database", "postgresql"]
# name: (script, its options, its time limit in seconds). The -pg variants run on a
# throwaway PostgreSQL server; -pg2 with `opus serve --workers 2`.
BENCHMARKS: dict[str, tuple[str, list[str], int]] = {
    "create": ("bench_create", [], 600),
    "create-pg": ("bench_create", PG, 600),
    "create-pg2": ("bench_create", [*PG, "--workers", "2"], 600),
    "get": ("bench_get", [], 600),
    "get-pg": ("bench_get", PG, 600),
    "list": ("bench_list", [], 2400),
    "list-pg": ("bench_list", PG, 2400),
    "wait": ("bench_wait", [], 900),
    "wait-pg2": ("bench_wait", [*PG, "--workers", "2", "--target-ms", "200"], 900),
    "slowloris": ("bench_slowloris", [], 600),
    "roundtrip": ("bench_roundtrip", [], 600),
    # `opus batch` over 500 datasets against the same jobs one by one with curl.
    "batch": ("bench_batch", [], 900),
    "slurm": ("bench_slurm", [], 600),
    # The web pages (server time, headless Chromium) and the live pages in the browser.
    "pages": ("bench_pages", [], 1200),
    # A ProvSAP walk over a chain of 200 jobs, in each format (in process).
    "provenance": ("bench_provenance", [], 600),
}
# The 1,000 WAIT clients of the figure; --quick keeps the script's own default.
FULL_ONLY = {"wait-pg2": ["--clients", "1000"]}


def run(name: str, quick: bool) -> tuple[str | None, float, str]:
    """Run one benchmark; (its RESULT line or None, seconds, failure reason)."""
    script, options, _ = BENCHMARKS[name]
    command = [sys.executable, str(HERE / f"{script}.py"), *options]
    command += ["--quick"] if quick else FULL_ONLY.get(name, [])
    started = time.monotonic()
    result_line = None
    with subprocess.Popen(
        command, cwd=HERE.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        # A benchmark that hangs is stopped (SIGTERM: it cleans up its own server).
        watchdog = threading.Timer(BENCHMARKS[name][2], process.terminate)
        watchdog.start()
        try:
            for line in process.stdout:
                print(line, end="", flush=True)
                if line.startswith("RESULT "):
                    result_line = line.strip()
            try:
                status = process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                status = process.wait()
        finally:
            timed_out = watchdog.finished.is_set()  # set by the timer firing, not cancel
            watchdog.cancel()
    seconds = time.monotonic() - started
    if timed_out:
        return None, seconds, f"timed out after {BENCHMARKS[name][2]} s"
    if status != 0:
        return result_line, seconds, f"exit status {status}"
    if result_line is None:
        return None, seconds, "no RESULT line"
    return result_line, seconds, ""


def table(rows: list[tuple[str, str | None, float, str]]) -> None:
    print("\n== summary ==")
    for name, result_line, seconds, failure in rows:
        print(f"{name}  ({seconds:.0f} s){'  FAILED: ' + failure if failure else ''}")
        if result_line is None:
            continue
        figures = result_line.split()[2:]
        targets = [f for f in figures if "target" in f.split("=")[0]]
        values = [f for f in figures if f not in targets]
        print(f"  figures: {' '.join(values)}")
        if targets:
            print(f"  targets: {' '.join(targets)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    rows = []
    for name in names:
        result_line, seconds, failure = run(name, args.quick)
        rows.append((name, result_line, seconds, failure))
    table(rows)
    return 1 if any(failure for *_, failure in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
