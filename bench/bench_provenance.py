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
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opus.core.access import Caller  # noqa: E402
from opus.core.phases import Phase  # noqa: E402
from opus.core.times import utcnow  # noqa: E402
from opus.server.app import build_service  # noqa: E402
from opus.server.provmodel import DocumentOptions, Format  # noqa: E402
from opus.server.routes.provenance import write_document  # noqa: E402
from opus.server.service.inputs import Upload  # noqa: E402
from opus.server.service.provenance import Direction, ProvenanceService, Walk  # noqa: E402
from opus.server.storage.entities import result_entity_id  # noqa: E402
from opus.settings import Settings  # noqa: E402

OWNER = Caller("bench")
TARGETS = {Format.JSON: 1.0, Format.SVG: 3.0}
SINGLE_TARGET = 0.020


def chain(service: object, count: int) -> list[str]:
    """``count`` completed append_text jobs, each using the previous one's result."""
    import io

    from opus.server.service.jobs import JobService

    assert isinstance(service, JobService)
    ids: list[str] = []
    previous: str | None = None
    for number in range(count):
        if previous is None:
            uploads = [Upload("input", "in.txt", io.BytesIO(b"start\n"))]
            job = service.create_job(OWNER, "append_text", {"text": "0"}, uploads)
        else:
            value = result_entity_id(previous, "output")
            job = service.create_job(OWNER, "append_text", {"text": str(number), "input": value})
        results_dir = service.files.directory(job.id) / "results"
        results_dir.mkdir(exist_ok=True)
        (results_dir / "output.txt").write_text(f"line {number}\n")
        now = utcnow()
        service.change_phase(job.id, Phase.EXECUTING, allowed_from={Phase.PENDING}, start_time=now)
        stored = service.store.get_job(job.id)
        assert stored is not None
        service.finish(stored, Phase.COMPLETED, None)
        ids.append(job.id)
        previous = job.id
    return ids


def timed(action: object, runs: int) -> float:
    """The median seconds of ``runs`` calls of ``action``."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a chain of 50, fewer runs")
    parser.add_argument("--jobs", type=int, default=0)
    options = parser.parse_args()
    count = options.jobs or (50 if options.quick else 200)
    runs = 2 if options.quick else 3
    with tempfile.TemporaryDirectory() as scratch:
        import shutil

        jdl = Path(scratch) / "jdl"
        shutil.copytree(ROOT / "jdl", jdl)
        settings = Settings(
            VAR_PATH=Path(scratch) / "var", JDL_PATH=jdl, BASE_URL="http://127.0.0.1:1"
        )
        from opus.server import schema

        settings.VAR_PATH.mkdir(parents=True)
        schema.upgrade(settings.DATABASE_URL)
        service = build_service(settings)
        made = time.perf_counter()
        ids = chain(service, count)
        print(f"chain of {count} jobs made in {time.perf_counter() - made:.1f} s")
        provenance = ProvenanceService(service, write_document)
        walk = Walk((ids[-1],), None, Direction.BACK)
        document_options = DocumentOptions()
        graph = provenance.graph(OWNER, walk)
        assert len(graph.jobs) == count, len(graph.jobs)
        walk_seconds = timed(lambda: provenance.graph(OWNER, walk), runs)
        print(
            f"walk DEPTH=ALL ({len(graph.jobs)} jobs, {len(graph.entities)} entities): "
            f"{walk_seconds * 1000:.0f} ms (the reference)"
        )
        for fmt in Format:

            def request(fmt: Format = fmt) -> None:
                provenance._cache.clear()
                provenance._cached_bytes = 0
                provenance.document(OWNER, walk, document_options, fmt)

            seconds = timed(request, runs)
            target = TARGETS.get(fmt)
            verdict = ""
            if target is not None and count >= 200:
                met = "met" if seconds < target else "missed"
                verdict = f"  target < {target:g} s {met}"
            print(
                f"{fmt.value:10} {seconds * 1000:7.0f} ms  x{seconds / walk_seconds:.1f} "
                f"the walk{verdict}"
            )
        single = Walk((ids[count // 2],), 1, Direction.BOTH)

        def one_job() -> None:
            provenance._cache.clear()
            provenance.document(OWNER, single, document_options, Format.JSON)

        seconds = timed(one_job, 20 if options.quick else 100)
        met = "met" if seconds < SINGLE_TARGET else "missed"
        print(
            f"one job's document (PROV-JSON): {seconds * 1000:.1f} ms  "
            f"target < {SINGLE_TARGET * 1000:.0f} ms {met}"
        )
        cached = timed(
            lambda: provenance.document(OWNER, single, document_options, Format.JSON), 100
        )
        print(f"one job's document, cached: {cached * 1000:.1f} ms (the walk, then the cache)")


if __name__ == "__main__":
    main()
