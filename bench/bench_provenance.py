"""Provenance of a long chain: a ProvSAP walk of DEPTH=ALL over N jobs, in each format.

In process, on SQLite in a temporary directory: N append_text jobs, each fed the
previous one's result by reference (created through the service, completed as their
batch script's signal would, with a real result file). For each format, the time of
the whole request (the walk through the database, then the document or the graph)
with the cache emptied first, the median of a few runs. Then one job's own document
(PROV-JSON, DEPTH 1 both ways), the median of many. The reference is the walk alone
(the graph the writers get), so the cost of each writer shows as a ratio to it.

Targets: DEPTH=ALL over 200 jobs in PROV-JSON < 1 s and in SVG < 3 s; one job's
document < 20 ms.

    .venv/bin/python bench/bench_provenance.py [--quick] [--jobs N]
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import heading, line, median, result, verdict  # noqa: E402

from opus.core.access import Caller  # noqa: E402
from opus.core.phases import Phase  # noqa: E402
from opus.core.times import utcnow  # noqa: E402
from opus.server import schema  # noqa: E402
from opus.server.app import build_service  # noqa: E402
from opus.server.provmodel import DocumentOptions, Format  # noqa: E402
from opus.server.routes.provenance import write_document  # noqa: E402
from opus.server.service import JobService  # noqa: E402
from opus.server.service.inputs import Upload  # noqa: E402
from opus.server.service.provenance import Direction, ProvenanceService, Walk  # noqa: E402
from opus.server.storage.entities import result_entity_id  # noqa: E402
from opus.settings import Settings  # noqa: E402

OWNER = Caller("bench")
TARGETS = {Format.JSON: 1.0, Format.SVG: 3.0}
SINGLE_TARGET = 0.020


def chain(service: JobService, count: int) -> list[str]:
    """``count`` completed append_text jobs, each using the previous one's result."""
    ids: list[str] = []
    for number in range(count):
        if not ids:
            uploads = [Upload("input", "in.txt", io.BytesIO(b"start\n"))]
            job = service.create_job(OWNER, "append_text", {"text": "0"}, uploads)
        else:
            value = result_entity_id(ids[-1], "output")
            job = service.create_job(OWNER, "append_text", {"text": str(number), "input": value})
        # What the job's script and its signal would do: a result file, then COMPLETED.
        results_dir = service.files.directory(job.id) / "results"
        results_dir.mkdir(exist_ok=True)
        (results_dir / "output.txt").write_text(f"line {number}\n")
        service.change_phase(
            job.id, Phase.EXECUTING, allowed_from={Phase.PENDING}, start_time=utcnow()
        )
        stored = service.store.get_job(job.id)
        assert stored is not None
        service.finish(stored, Phase.COMPLETED, None)
        ids.append(job.id)
    return ids


def timed(action: Callable[[], object], runs: int) -> float:
    """The median seconds of ``runs`` calls of ``action``."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - start)
    return median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a chain of 50, fewer runs")
    parser.add_argument("--jobs", type=int, default=0, help="the chain's length (200)")
    options = parser.parse_args()
    count = options.jobs or (50 if options.quick else 200)
    runs = 2 if options.quick else 3
    with tempfile.TemporaryDirectory(prefix="opus-bench-prov-") as scratch:
        jdl = Path(scratch) / "jdl"
        shutil.copytree(ROOT / "jdl", jdl)
        settings = Settings(
            VAR_PATH=Path(scratch) / "var", JDL_PATH=jdl, BASE_URL="http://127.0.0.1:1"
        )
        settings.VAR_PATH.mkdir(parents=True)
        schema.upgrade(settings.DATABASE_URL)
        service = build_service(settings)
        heading(f"provenance of a chain of {count} jobs (SQLite, in process)")
        made = time.perf_counter()
        ids = chain(service, count)
        line("chain made", f"{time.perf_counter() - made:.1f} s")
        provenance = ProvenanceService(service, write_document)
        walk = Walk((ids[-1],), None, Direction.BACK)
        document_options = DocumentOptions()
        graph = provenance.graph(OWNER, walk)
        assert len(graph.jobs) == count, len(graph.jobs)
        walk_seconds = timed(lambda: provenance.graph(OWNER, walk), runs)
        line(
            f"walk DEPTH=ALL ({len(graph.jobs)} jobs, {len(graph.entities)} entities)",
            f"{walk_seconds * 1000:.0f} ms (the reference)",
        )
        figures: dict[str, object] = {"jobs": count, "walk_ms": round(walk_seconds * 1000)}
        met_all = True
        for fmt in Format:

            def request(fmt: Format = fmt) -> None:
                provenance.forget()
                provenance.document(OWNER, walk, document_options, fmt)

            seconds = timed(request, runs)
            figures[f"{fmt.name.lower()}_ms"] = round(seconds * 1000)
            target = TARGETS.get(fmt)
            judged = ""
            if target is not None and count >= 200:
                met_all &= seconds < target
                judged = f"  (< {target:g} s: {verdict(seconds < target)})"
            line(
                f"DEPTH=ALL in {fmt.value}",
                f"{seconds * 1000:.0f} ms  x{seconds / walk_seconds:.1f} the walk{judged}",
            )
        single = Walk((ids[count // 2],), 1, Direction.BOTH)

        def one_job() -> None:
            provenance.forget()
            provenance.document(OWNER, single, document_options, Format.JSON)

        seconds = timed(one_job, 20 if options.quick else 100)
        met_all &= seconds < SINGLE_TARGET
        line(
            "one job's document (PROV-JSON)",
            f"{seconds * 1000:.1f} ms  (< {SINGLE_TARGET * 1000:.0f} ms: "
            f"{verdict(seconds < SINGLE_TARGET)})",
        )
        cached = timed(
            lambda: provenance.document(OWNER, single, document_options, Format.JSON), 100
        )
        line("one job's document, cached", f"{cached * 1000:.1f} ms (the walk, then the cache)")
        figures.update(one_job_ms=round(seconds * 1000, 1), cached_ms=round(cached * 1000, 1))
        figures["targets"] = "met" if met_all else "missed"
        result("provenance", figures)


if __name__ == "__main__":
    main()
