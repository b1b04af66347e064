"""A trivial job on SLURM, end to end: OPUS against SLURM alone.

The cluster is the single-node one of the tests (tests/slurm_cluster.py: munged,
slurmctld and slurmd started as root in a temporary directory, with the tests'
slurm.conf), started for the run and stopped at its end, also after a SIGTERM.

Three kinds of job are timed, interleaved so that all see the same load:

- **sbatch --wait**: ``sbatch --wait --wrap true``, from its start to its exit. The
  target is worded against it, but sbatch does not learn of the end by itself: it polls
  slurmctld 2 s after the submission, 8 s later, then every 32 s (SLURM 22.05,
  ``_job_wait`` in src/sbatch/sbatch.c), so it never sees a job end sooner than 2 s.
- **squeue poll**: ``sbatch --parsable --wrap true``, then ``squeue --states=all -j ID``
  every 10 ms until the job is COMPLETED: about the soonest a client of SLURM alone can
  know that the job ended.
- **OPUS**: ``POST /rest/noop`` with PHASE=RUN on an ``opus serve`` with MANAGER=slurm,
  then ``GET {job}?WAIT=60&PHASE=<last phase seen>`` repeated until the phase is final.
  ``noop`` (written into the temporary JDL directory) runs ``true``.

slurmctld does not start a job when it is submitted but on its next scheduling pass,
so every job waits in PENDING for a slice of time that depends on when it was submitted
relative to those passes, whoever submits it. slurmctld's log (times to the ms) gives,
for every job, when it was submitted, started and done. The breakdown splits each
round trip at those points, and "net of queueing" is a round trip minus its own time
in PENDING.

"OPUS adds" is OPUS's median minus a reference's median. The target (< 200 ms) is
judged on the figure net of queueing against the squeue poll (the raw medians when the
log cannot be read, against the stricter of the two references).

    .venv/bin/python bench/bench_slurm.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import benchlib as b

JOBNAME = "noop"
REPEATS = 20
QUICK_REPEATS = 5
WAIT_SECONDS = 60
MAX_WAITS = 20
POLL_INTERVAL = 0.010
# A trivial job ends within seconds; one that takes this long is counted as failed.
JOB_TIMEOUT = 60.0
# Seconds the jobs left at the end get to go before the daemons are stopped.
DRAIN_TIMEOUT = 30.0
TARGET_ADDED = 0.200
RECONCILE_INTERVAL = "5"  # the default of the setting, written out
# SLURM states after which a job never runs again (squeue %T).
SLURM_FINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
    "REVOKED",
}
GONE = "gone"  # squeue no longer knows the job
KINDS = ("opus", "poll", "wait")
LABELS = {"opus": "OPUS", "poll": "squeue poll", "wait": "sbatch --wait"}

# slurmctld's log lines (LogTimeFormat iso8601_ms, local time) for a job's submission,
# start (by the main scheduler or the backfill one) and end.
CTLD_EVENTS = {
    "submit": re.compile(r"^\[([^\]]+)\] _slurm_rpc_submit_batch_job: JobId=(\d+) "),
    "start": re.compile(
        r"^\[([^\]]+)\] sched(/backfill)?: (?:Allocate|_start_job: Started) JobId=(\d+) "
    ),
    "done": re.compile(r"^\[([^\]]+)\] _job_complete: JobId=(\d+) done"),
}


def uws_field(name: str) -> re.Pattern[bytes]:
    return re.compile(rb"<uws:%s>([^<]*)</uws:%s>" % (name.encode(), name.encode()))


MESSAGE_RE = uws_field("message")
TIME_RES = {name: uws_field(name) for name in ("creationTime", "startTime", "endTime")}


# -- the cluster -------------------------------------------------------------------------


@contextmanager
def slurm_cluster() -> Iterator[Any]:
    """The tests' single-node cluster (tests/slurm_cluster.py), outside pytest: the jobs
    left at the end get DRAIN_TIMEOUT seconds to go, and the directory is removed."""
    from tests.slurm_cluster import SLURM_PROGRAMS, SYSTEM_PATH, running_cluster

    missing = [p for p in SLURM_PROGRAMS if shutil.which(p, path=SYSTEM_PATH) is None]
    if missing:
        raise RuntimeError(f"not installed: {', '.join(missing)} (make install-test installs them)")
    if os.geteuid() != 0:
        raise RuntimeError("the SLURM cluster of the tests must be started as root")
    root = Path(tempfile.mkdtemp(prefix="opus-slurmcluster-"))
    try:
        with running_cluster(root, DRAIN_TIMEOUT) as cluster:
            yield cluster
    finally:
        shutil.rmtree(root, ignore_errors=True)


def conf_value(cluster: Any, key: str) -> str:
    for text in cluster.conf.read_text().splitlines():
        name, _, value = text.partition("=")
        if name == key:
            return value
    return "(SLURM's default)"


def slurm_version(cluster: Any) -> str:
    done = cluster.run("sbatch", "--version", check=False)
    return done.stdout.strip() or "?"


def ctld_events(cluster: Any) -> dict[str, dict[str, Any]]:
    """{SLURM job id: {"submit"|"start"|"done": epoch seconds, "by": the scheduler
    that started it}} from slurmctld's log."""
    events: dict[str, dict[str, Any]] = {}
    try:
        text = (cluster.root / "slurmctld.log").read_text(errors="replace")
    except OSError:
        return events
    for log_line in text.splitlines():
        for event, pattern in CTLD_EVENTS.items():
            match = pattern.match(log_line)
            if not match:
                continue
            try:
                when = datetime.fromisoformat(match.group(1)).timestamp()
            except ValueError:
                continue
            job = events.setdefault(match.group(match.lastindex or 2), {})
            job.setdefault(event, when)
            if event == "start":
                job.setdefault("by", "backfill" if match.group(2) else "main")
    return events


# -- SLURM alone ------------------------------------------------------------------------


def sbatch_argv(scratch: Path) -> list[str]:
    return ["sbatch", "--parsable", f"--chdir={scratch}", f"--output={scratch}/slurm-%j.out"]


def slurm_id_of(stdout: str) -> str:
    words = stdout.strip().splitlines()
    return words[-1].split(";")[0] if words else ""


def sbatch_wait(cluster: Any, scratch: Path) -> dict[str, Any]:
    """`sbatch --wait --wrap true`, from its start to its exit."""
    seen: dict[str, Any] = {"failure": "", "wall0": time.time()}
    started = time.monotonic()
    try:
        done = subprocess.run(
            [*sbatch_argv(scratch), "--wait", "--wrap", "true"],
            env=cluster.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=JOB_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        seen["total"] = time.monotonic() - started
        seen["failure"] = f"sbatch --wait still waiting after {JOB_TIMEOUT:g} s"
        return seen
    seen["total"] = time.monotonic() - started
    seen["slurm_id"] = slurm_id_of(done.stdout)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().replace("\n", "; ")[:200]
        seen["failure"] = f"sbatch --wait: exit status {done.returncode}: {said}"
    return seen


def squeue_state(cluster: Any, slurm_id: str) -> str:
    done = cluster.run(
        "squeue", "--noheader", "--states=all", f"--jobs={slurm_id}", "--format=%T", check=False
    )
    state = done.stdout.strip()
    if done.returncode != 0 and "invalid job id" in done.stderr.lower():
        return GONE
    return state or (GONE if done.returncode == 0 else f"squeue failed: {done.stderr.strip()}")


def sbatch_poll(cluster: Any, scratch: Path) -> dict[str, Any]:
    """`sbatch --parsable --wrap true`, then squeue every POLL_INTERVAL until the job
    is final: when each state was first seen, the squeue call times, the outcome."""
    seen: dict[str, Any] = {"failure": "", "squeue": [], "wall0": time.time()}
    started = time.monotonic()
    done = cluster.run(*sbatch_argv(scratch), "--wrap", "true", check=False)
    seen["submitted"] = time.monotonic() - started
    slurm_id = slurm_id_of(done.stdout)
    if done.returncode != 0 or not slurm_id.isdigit():
        seen["failure"] = f"sbatch --parsable: {(done.stderr or done.stdout).strip()[:200]}"
        seen["total"] = seen["submitted"]
        return seen
    seen["slurm_id"] = slurm_id
    deadline = started + JOB_TIMEOUT
    state = "?"
    while time.monotonic() < deadline:
        asked = time.monotonic()
        state = squeue_state(cluster, slurm_id)
        now = time.monotonic()
        seen["squeue"].append(now - asked)
        seen.setdefault(state, now - started)
        if state in SLURM_FINAL or state == GONE or state.startswith("squeue failed"):
            break
        time.sleep(POLL_INTERVAL)
    seen["total"] = time.monotonic() - started
    if state not in ("COMPLETED", GONE):
        seen["failure"] = f"SLURM job {slurm_id}: {state}"
    return seen


# -- OPUS --------------------------------------------------------------------------------


def uws_time(body: bytes, name: str) -> float | None:
    """A time element of a job document, in seconds since the epoch (None if unset)."""
    match = TIME_RES[name].search(body)
    if not match or not match.group(1):
        return None
    return datetime.fromisoformat(match.group(1).decode()).timestamp()


def opus_trip(base_url: str, cluster: Any) -> dict[str, Any]:
    """POST PHASE=RUN, then WAIT with the last phase seen until a final phase."""
    conn = b.connection(base_url, timeout=WAIT_SECONDS + 30)
    seen: dict[str, Any] = {"failure": "", "wall0": time.time()}
    phase, body = "none", b""
    try:
        started = time.monotonic()
        try:
            job_path = b.create_job(conn, JOBNAME, "PHASE=RUN")
        except (RuntimeError, OSError) as exc:
            seen.update(failure=f"POST /rest/{JOBNAME}: {exc}", total=time.monotonic() - started)
            return seen
        seen["posted"] = time.monotonic() - started
        phase = "QUEUED"
        deadline = started + JOB_TIMEOUT
        for _ in range(MAX_WAITS):
            wait = min(WAIT_SECONDS, int(deadline - time.monotonic()))
            if wait < 1:
                break
            status, _, body = b.request(conn, "GET", f"{job_path}?WAIT={wait}&PHASE={phase}")
            match = b.PHASE_RE.search(body)
            if status != 200 or not match:
                phase = f"HTTP {status}"
                break
            phase = match.group(1).decode()
            seen.setdefault(phase, time.monotonic() - started)
            if phase in b.FINAL_PHASES:
                break
        seen["total"] = time.monotonic() - started
    finally:
        conn.close()
    seen["final"] = phase
    for name in TIME_RES:
        seen[name] = uws_time(body, name)
    if phase != "COMPLETED":
        message = MESSAGE_RE.search(body)
        said = message.group(1).decode(errors="replace") if message else body[:200].decode()
        seen["failure"] = f"{job_path}: {phase} {said}".strip()
    # The SLURM job, by the name OPUS gave it (asked after the round trip, untimed).
    named = cluster.run(
        "squeue",
        "--noheader",
        "--states=all",
        f"--name=opus-{JOBNAME}-{job_path.rsplit('/', 1)[-1]}",
        "--format=%i",
        check=False,
    )
    seen["slurm_id"] = slurm_id_of(named.stdout)
    return seen


# -- reporting ---------------------------------------------------------------------------


def add_legs(records: Sequence[dict[str, Any]], events: dict[str, dict[str, Any]]) -> None:
    """Split each round trip at slurmctld's submit and start times (when logged)."""
    for record in records:
        logged = events.get(str(record.get("slurm_id")), {})
        if "submit" not in logged or "start" not in logged:
            continue
        end = record["wall0"] + record["total"]
        record["to_submit"] = logged["submit"] - record["wall0"]
        record["queued"] = logged["start"] - logged["submit"]
        record["after_start"] = end - logged["start"]
        record["net"] = record["total"] - record["queued"]
        record["by"] = logged.get("by")
        if "done" in logged:
            record["run"] = logged["done"] - logged["start"]
            record["after_done"] = end - logged["done"]


def values_of(records: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in records if r.get(key) is not None]


def spread(values: Sequence[float]) -> str:
    """median / p95 / min / max."""
    if not values:
        return "no values"
    return " / ".join(
        b.ms(v) for v in (b.median(values), b.percentile(values, 0.95), min(values), max(values))
    )


def median_ms(values: Sequence[float]) -> str:
    return b.ms(b.median(values)) if values else "-"


def differences(records: Sequence[dict[str, Any]], later: str, earlier: str) -> list[float]:
    return [
        float(r[later]) - float(r[earlier])
        for r in records
        if r.get(later) is not None and r.get(earlier) is not None
    ]


def print_failures(kind: str, records: Sequence[dict[str, Any]]) -> list[str]:
    failures = [str(r["failure"]) for r in records if r["failure"]]
    b.line(f"{LABELS[kind]}: failures", f"{len(failures)} of {len(records)}")
    for failure in failures[:10]:
        print(f"    {failure}", flush=True)
    return failures


def breakdown_row(label: str, cells: Sequence[str]) -> None:
    print(f"  {label:<36}" + "".join(f"{cell:>16}" for cell in cells), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REPEATS} repetitions")
    parser.add_argument("--repeats", type=int, help=f"repetitions (default {REPEATS})")
    args = parser.parse_args()
    repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)

    b.heading("bench_slurm: a trivial job on SLURM, OPUS against SLURM alone")
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    env = {
        "OPUS_MANAGER": "slurm",
        "OPUS_RECONCILE_INTERVAL": RECONCILE_INTERVAL,
        "OPUS_SIGNAL_RETRY_SECONDS": "30",
    }
    with (
        slurm_cluster() as cluster,
        b.workdir("slurm", {"noop.yml": b.NOOP_JDL}) as base,
    ):
        b.line("SLURM", f"{slurm_version(cluster)}, one node (tests/slurm_cluster.py)")
        b.line(
            "SchedulerParameters / MinJobAge",
            f"{conf_value(cluster, 'SchedulerParameters')} / {conf_value(cluster, 'MinJobAge')}",
        )
        b.line("job type", 'noop (script: "true", no parameters)')
        b.line("callback client of the batch script", "curl" if shutil.which("curl") else "python3")
        b.line("reconciler interval", f"{RECONCILE_INTERVAL} s (the default)")
        b.line("repetitions (interleaved)", f"{repeats} of each, after 1 warm-up")
        scratch = base / "sbatch"
        scratch.mkdir()
        # The server (and the sbatch it runs, and so its jobs) find the cluster here.
        env.update(SLURM_CONF=str(cluster.conf), PATH=cluster.env["PATH"])
        with b.OpusServer(base / "var", base / "jdl", env) as server:
            # Warm-ups: the first job of each kind pays for cold caches.
            opus_trip(server.base_url, cluster)
            sbatch_wait(cluster, scratch)
            sbatch_poll(cluster, scratch)
            for _ in range(repeats):
                runs["opus"].append(opus_trip(server.base_url, cluster))
                runs["wait"].append(sbatch_wait(cluster, scratch))
                runs["poll"].append(sbatch_poll(cluster, scratch))
        events = ctld_events(cluster)
    for records in runs.values():
        add_legs(records, events)
    ok = {kind: [r for r in records if not r["failure"]] for kind, records in runs.items()}
    totals = {kind: values_of(ok[kind], "total") for kind in KINDS}

    b.heading("SLURM alone: sbatch --wait --wrap true")
    b.line("end seen: median / p95 / min / max", spread(totals["wait"]))
    b.line(
        "how sbatch --wait learns the end",
        "it polls: 2 s after submission, 8 s later, then every 32 s",
    )

    b.heading(f"SLURM alone: sbatch --parsable, then squeue every {POLL_INTERVAL * 1000:g} ms")
    polls = runs["poll"]
    b.line("sbatch --parsable returned after (median)", median_ms(values_of(polls, "submitted")))
    for state in ("PENDING", "RUNNING", "COMPLETING"):
        seen = values_of(ok["poll"], state)
        b.line(f"{state} first seen after (median)", f"{median_ms(seen)}  ({len(seen)} jobs)")
    b.line("COMPLETED seen: median / p95 / min / max", spread(totals["poll"]))
    squeue_calls = [s for p in polls for s in p["squeue"]]
    b.line(
        "squeue calls per job / time per call (medians)",
        f"{b.median([len(p['squeue']) for p in polls]):.0f} / {median_ms(squeue_calls)}",
    )

    b.heading(f"OPUS: POST /rest/{JOBNAME} PHASE=RUN, WAIT until a final phase")
    trips = ok["opus"]
    b.line("POST answered (scripts written, sbatch run)", median_ms(values_of(trips, "posted")))
    b.line("EXECUTING seen after (median)", median_ms(values_of(trips, "EXECUTING")))
    b.line("COMPLETED seen: median / p95 / min / max", spread(totals["opus"]))
    b.line("final phases", ",".join(sorted({str(t.get("final")) for t in runs["opus"]})))
    b.line(
        "job XML: startTime - creationTime (median)",
        median_ms(differences(trips, "startTime", "creationTime")),
    )
    b.line(
        "job XML: endTime - startTime (median)",
        median_ms(differences(trips, "endTime", "startTime")),
    )
    trip_ends = [{"seen": t["wall0"] + t["total"], "endTime": t["endTime"]} for t in trips]
    b.line(
        "client saw COMPLETED - endTime (median)",
        median_ms(differences(trip_ends, "seen", "endTime")),
    )

    b.heading("where the time goes (medians; SLURM's side from slurmctld's log)")
    logged = {kind: [r for r in ok[kind] if "net" in r] for kind in KINDS}
    breakdown_row("", [LABELS[kind] for kind in KINDS])
    rows = (
        ("start → slurmctld has the job", "to_submit"),
        ("PENDING (slurmctld's sched. passes)", "queued"),
        ("started → slurmctld: job done", "run"),
        ("started → client knows the end", "after_start"),
        ("  of which after slurmctld's done", "after_done"),
        ("round trip", "total"),
        ("round trip net of PENDING", "net"),
    )
    for label, key in rows:
        breakdown_row(label, [median_ms(values_of(logged[kind], key)) for kind in KINDS])
    breakdown_row("jobs found in the log", [f"{len(logged[k])}/{len(runs[k])}" for k in KINDS])
    breakdown_row(
        "started by main sched. / backfill",
        [
            f"{sum(r['by'] == 'main' for r in logged[k])} / "
            f"{sum(r['by'] == 'backfill' for r in logged[k])}"
            for k in KINDS
        ],
    )

    b.heading("OPUS against SLURM alone")
    failures = sum(len(print_failures(kind, runs[kind])) for kind in KINDS)
    medians = {kind: b.median(totals[kind]) for kind in KINDS}
    added_wait = medians["opus"] - medians["wait"]
    added_poll = medians["opus"] - medians["poll"]
    nets = {kind: values_of(logged[kind], "net") for kind in ("opus", "poll")}
    added_net = b.median(nets["opus"]) - b.median(nets["poll"])
    b.line(
        "median: OPUS / sbatch --wait / squeue poll",
        " / ".join(b.ms(medians[kind]) for kind in ("opus", "wait", "poll")),
    )
    b.line("OPUS adds (vs sbatch --wait)", b.ms(added_wait))
    b.line("OPUS adds (vs squeue poll)", b.ms(added_poll))
    b.line("OPUS adds (vs squeue poll, net of PENDING)", b.ms(added_net))
    if not math.isnan(added_net):  # the log had the jobs of both sides
        judged, how = added_net, "net of PENDING, vs the squeue poll"
    else:
        judged, how = max(added_wait, added_poll), "raw, vs the stricter reference"
    met = failures == 0 and judged < TARGET_ADDED
    b.line("OPUS adds < 200 ms", f"{b.verdict(met)}  ({b.ms(judged)}, {how})")
    b.result(
        "bench_slurm",
        {
            "opus_ms": f"{medians['opus'] * 1000:.1f}",
            "sbatch_wait_ms": f"{medians['wait'] * 1000:.1f}",
            "poll_ms": f"{medians['poll'] * 1000:.1f}",
            "added_ms": f"{added_wait * 1000:.1f}",
            "added_poll_ms": f"{added_poll * 1000:.1f}",
            "added_net_ms": f"{added_net * 1000:.1f}",
            "failures": failures,
            "target": "met" if met else "missed",
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
