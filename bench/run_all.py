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
BENCHMARKS = ["create", "list", "wait", "roundtrip", "slurm"]
TIMEOUT = {"create": 600, "list": 2400, "wait": 900, "roundtrip": 600, "slurm": 600}


def run(name: str, quick: bool) -> tuple[str | None, float, str]:
    """Run bench_NAME.py; (its RESULT line or None, seconds, failure reason)."""
    command = [sys.executable, str(HERE / f"bench_{name}.py")] + (["--quick"] if quick else [])
    started = time.monotonic()
    result_line = None
    with subprocess.Popen(
        command, cwd=HERE.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        # A benchmark that hangs is stopped (SIGTERM: it cleans up its own server).
        watchdog = threading.Timer(TIMEOUT[name], process.terminate)
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
        return None, seconds, f"timed out after {TIMEOUT[name]} s"
    if status != 0:
        return result_line, seconds, f"exit status {status}"
    if result_line is None:
        return None, seconds, "no RESULT line"
    return result_line, seconds, ""


def table(rows: list[tuple[str, str | None, float, str]]) -> None:
    print("\n== summary ==")
    for name, result_line, seconds, failure in rows:
        print(f"bench_{name}  ({seconds:.0f} s){'  FAILED: ' + failure if failure else ''}")
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
    names = args.only.split(",") if args.only else BENCHMARKS
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
