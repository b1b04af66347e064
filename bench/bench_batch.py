"""Many datasets at once: `opus batch` against the same jobs run one by one with curl.

500 tiny text files (``--quick``: 60) each go through ``append_text`` (the file
uploaded, a line appended), on one `opus serve` with the local manager and
``NJOBS_MAX=50``, so that the batch's parallelism counts:

- **`opus batch`:** ``opus batch append_text --over 'data/*' --as input --parallel 20
  --report report.json``, from its start to its exit (every job COMPLETED, its results'
  URLs read, the report written).
- **Reference, sequential curl:** what a shell loop does, one dataset after the other:
  ``curl -F input=@FILE -F PHASE=RUN`` (303 to the job), then ``curl JOB/phase`` and
  ``curl "JOB?WAIT=30&PHASE=<phase>"`` until the phase is final. Same server, same run.

Printed: jobs/s of each, end to end, and the ratio; how busy the machine's cores were
during each and the server's CPU per job; the batch's own CPU per job and its retries
(refusals by NJOBS_MAX, none expected here). Targets: the batch at least 1.3x the
sequential loop's rate, and at most 15 ms of client CPU per job. On a 2-core machine
the batch keeps both cores busy (the server, and each job's bash, cp and curl
callbacks: about 100 ms of CPU per job in all), so the machine, not the client, bounds
its rate; the loop leaves them idle while one job at a time goes through.

    .venv/bin/python bench/bench_batch.py [--quick] [--datasets N] [--parallel N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import benchlib as b

DATASETS = 500
PARALLEL = 20
TARGET_RATIO = 1.3
TARGET_CLIENT_MS = 15.0
CURL_LOOP = r"""
set -u
base=$1; shift
for f in "$@"; do
  job=$(curl -s -o /dev/null -w '%{redirect_url}' -F "input=@$f" -F PHASE=RUN \
        "$base/rest/append_text")
  [ -n "$job" ] || { echo "no job for $f" >&2; exit 1; }
  while :; do
    phase=$(curl -s "$job/phase")
    case $phase in COMPLETED) break ;; ERROR|ABORTED) echo "$job $phase" >&2; exit 1 ;; esac
    curl -s -o /dev/null "$job?WAIT=30&PHASE=$phase"
  done
done
"""


def write_datasets(folder: Path, count: int) -> list[Path]:
    folder.mkdir()
    paths = []
    for i in range(count):
        path = folder / f"d{i:04d}.txt"
        path.write_text(f"dataset {i}\n")
        paths.append(path)
    return paths


def machine_cpu() -> tuple[int, int]:
    """The machine's CPU ticks so far: (all, idle)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(values), values[3] + values[4]


class Measure:
    """Wall time, the machine's busy share and the server's CPU over a block."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid

    def __enter__(self) -> Measure:
        self.started = time.monotonic()
        self.ticks = machine_cpu()
        self.server = b.cpu_seconds(self.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.started
        total, idle = machine_cpu()
        self.busy = 1 - (idle - self.ticks[1]) / max(1, total - self.ticks[0])
        self.server_cpu = b.cpu_seconds(self.pid) - self.server


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_curl(base_url: str, paths: list[Path]) -> None:
    subprocess.run(
        ["bash", "-c", CURL_LOOP, "curl-loop", base_url, *map(str, paths)],
        check=True,
        timeout=3600,
    )


def run_batch(base_url: str, folder: Path, parallel: int, config: Path) -> float:
    """Run the batch; its CPU seconds."""
    env = {**os.environ, "OPUS_CONFIG_DIR": str(config), "PYTHONPATH": str(b.ROOT)}
    report = folder.parent / "report.json"
    cpu = children_cpu()
    done = subprocess.run(
        [b.PYTHON, "-m", "opus", "batch", "append_text", "--server", base_url,
         "--over", str(folder / "*"), "--as", "input", "--parallel", str(parallel),
         "--report", str(report)],
        env=env, cwd=b.ROOT, capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"opus batch exited {done.returncode}:\n{done.stderr[-2000:]}")
    counts = json.loads(report.read_text())["counts"]
    b.line(
        "opus batch: report counts / retries",
        f"{counts} / {json.loads(report.read_text())['retries']}",
    )
    return children_cpu() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 datasets")
    parser.add_argument("--datasets", type=int, help=f"datasets (default {DATASETS})")
    parser.add_argument("--parallel", type=int, default=PARALLEL, help="the batch's --parallel")
    args = parser.parse_args()
    count = args.datasets or (60 if args.quick else DATASETS)

    b.heading(f"bench_batch: {count} datasets through append_text, opus batch vs curl")
    env = {"OPUS_NJOBS_MAX": "50", "OPUS_SIGNAL_RETRY_SECONDS": "30"}
    with b.workdir("batch") as base, b.OpusServer(base / "var", base / "jdl", env) as server:
        curl_paths = write_datasets(base / "curl-data", count)
        batch_folder = base / "batch-data"
        write_datasets(batch_folder, count)
        run_curl(server.base_url, curl_paths[:3])  # warm-up
        with Measure(server.pid) as curl:
            run_curl(server.base_url, curl_paths)
        with Measure(server.pid) as batch:
            batch_cpu = run_batch(server.base_url, batch_folder, args.parallel, base / "config")

    curl_rate = count / curl.seconds
    batch_rate = count / batch.seconds
    ratio = batch_rate / curl_rate
    client_ms = 1000 * batch_cpu / count
    met = ratio >= TARGET_RATIO and client_ms <= TARGET_CLIENT_MS
    for name, block, rate in [
        ("sequential curl", curl, curl_rate),
        (f"opus batch --parallel {args.parallel}", batch, batch_rate),
    ]:
        b.line(f"{name}: time / jobs/s", f"{block.seconds:.1f} s / {rate:.1f}")
        b.line(
            f"{name}: cores busy / server CPU per job",
            f"{block.busy:.0%} / {b.ms(block.server_cpu / count)}",
        )
    b.line("opus batch: client CPU", f"{batch_cpu:.1f} s ({client_ms:.1f} ms/job)")
    b.line(
        "batch / sequential curl",
        f"{ratio:.2f}x  ({b.verdict(met)}: >= {TARGET_RATIO:g}x,"
        f" client <= {TARGET_CLIENT_MS:g} ms/job)",
    )
    b.result(
        "bench_batch",
        {
            "datasets": count,
            "parallel": args.parallel,
            "batch_jobs_per_s": f"{batch_rate:.1f}",
            "curl_jobs_per_s": f"{curl_rate:.1f}",
            "ratio": f"{ratio:.2f}",
            "batch_cpu_ms_per_job": f"{client_ms:.1f}",
            "batch_busy": f"{batch.busy:.2f}",
            "curl_busy": f"{curl.busy:.2f}",
            "target": "met" if met else "missed",
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
