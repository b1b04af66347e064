"""Round trip of a trivial job: create with PHASE=RUN, WAIT until COMPLETED.

The job type is ``noop`` (written into the temporary JDL directory: ``script: "true"``,
no parameters, execution_duration 60). One round trip is: POST /rest/noop PHASE=RUN
(303), then GET {job}?WAIT=30 repeated until the phase is COMPLETED (each WAIT returns
at the next phase change: QUEUED → EXECUTING → COMPLETED). The job runs through the
local manager: its batch script reports EXECUTING and COMPLETED back to the server
(curl, or python3 when curl is missing).

The reference is what the job itself costs: ``subprocess.run(["bash", "-c", "true"])``,
timed in the same run. Overhead = median round trip - median bash (target < 150 ms).

    .venv/bin/python bench/bench_roundtrip.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

import benchlib as b

JOBNAME = "noop"
REPEATS = 20
WAIT_SECONDS = 30
MAX_WAITS = 20
TARGET_OVERHEAD = 0.150


def bash_true(repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.monotonic()
        subprocess.run(["bash", "-c", "true"], check=True)
        times.append(time.monotonic() - started)
    return times


def round_trip(base_url: str) -> dict[str, float | str]:
    """One job from POST to COMPLETED; the times at which each phase was seen."""
    conn = b.connection(base_url, timeout=WAIT_SECONDS + 30)
    try:
        started = time.monotonic()
        job_path = b.create_job(conn, JOBNAME, "PHASE=RUN")
        seen: dict[str, float | str] = {"created": time.monotonic() - started}
        phase = "?"
        for _ in range(MAX_WAITS):
            status, _, body = b.request(conn, "GET", f"{job_path}?WAIT={WAIT_SECONDS}")
            match = b.PHASE_RE.search(body)
            phase = match.group(1).decode() if match and status == 200 else f"HTTP {status}"
            seen.setdefault(phase, time.monotonic() - started)
            if phase in b.FINAL_PHASES or status != 200:
                break
        seen["final"] = phase
        seen["total"] = time.monotonic() - started
    finally:
        conn.close()
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repetitions")
    parser.add_argument("--repeats", type=int, help=f"repetitions (default {REPEATS})")
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.quick else REPEATS)

    b.heading(f"bench_roundtrip: POST /rest/{JOBNAME} PHASE=RUN, WAIT until COMPLETED")
    b.line("job type", 'noop (script: "true", no parameters)')
    b.line("callback client of the batch script", "curl" if shutil.which("curl") else "python3")
    env = {"OPUS_SIGNAL_RETRY_SECONDS": "30"}
    trips = []
    with (
        b.workdir("roundtrip", {"noop.yml": b.NOOP_JDL}) as base,
        b.OpusServer(base / "var", base / "jdl", env) as server,
    ):
        round_trip(server.base_url)  # warm-ups
        bash_true(3)
        reference: list[float] = []
        # Interleaved, so that both see the same load of the machine.
        for _ in range(repeats):
            trips.append(round_trip(server.base_url))
            reference += bash_true(1)

    totals = [float(t["total"]) for t in trips]
    finals = sorted({str(t["final"]) for t in trips})
    bash_median = b.median(reference)
    trip_median = b.median(totals)
    overhead = trip_median - bash_median
    b.line("repetitions / final phases", f"{repeats} / {','.join(finals)}")
    b.line("bash -c true: median / min", f"{b.ms(bash_median)} / {b.ms(min(reference))}")
    for key in ("created", "QUEUED", "EXECUTING", "COMPLETED"):
        values = [float(t[key]) for t in trips if key in t]
        if values:
            b.line(f"round trip: {key} seen after (median)", f"{b.ms(b.median(values))}")
    b.line(
        "round trip: median / p90 / max",
        f"{b.ms(trip_median)} / {b.ms(b.percentile(totals, 0.9))} / {b.ms(max(totals))}",
    )
    met = overhead < TARGET_OVERHEAD and finals == ["COMPLETED"]
    b.line(
        "overhead (median round trip - median bash)",
        f"{b.ms(overhead)}  ({b.verdict(met)}: < 150 ms)",
    )
    b.line("round trip / bash", f"{trip_median / bash_median:.1f}x")
    b.result(
        "bench_roundtrip",
        {
            "roundtrip_ms": f"{trip_median * 1000:.1f}",
            "bash_ms": f"{bash_median * 1000:.1f}",
            "overhead_ms": f"{overhead * 1000:.1f}",
            "final": ",".join(finals),
            "target": "met" if met else "missed",
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
