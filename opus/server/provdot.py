"""Provenance graphs drawn by graphviz: SVG, PNG and the clickable map of the image.

The DOT source is written here, and every text in it comes from users or definitions
(job names, run ids, file names, roles): each goes through ``_quoted``, which writes a
DOT quoted string in which graphviz sees no escape sequence of its own (``\\N``,
``\\G``, ``\\l`` …) and no line break. No label is HTML-like (``<…>``) and no attribute
reads a file (image, shapefile, fontpath), so a label cannot make dot read or run
anything. Nodes and edges are written in sorted order, so that one graph gives one
drawing (and one cached image).

dot runs once per drawing, in a subprocess with an argument list, the source on stdin
and a timeout; the image and its map come from the same run when both are wanted
(``drawing``), hence from the same layout. The map's coordinates are in pixels of the
image shown at its natural size (PNG at 96 dpi, SVG points scaled as browsers do).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from lxml import etree

from opus.server.provmodel import DocumentOptions, Format, JobNode, ProvenanceGraph

DOT_COMMAND = "dot"
DOT_TIMEOUT = 30  # seconds
LABEL_LENGTH = 40
TOOLTIP_LENGTH = 200
DOT_FORMATS = {Format.SVG: "svg", Format.PNG: "png"}

# The usual PROV look (as prov.dot and the W3C examples draw it).
ENTITY_STYLE = 'shape=ellipse style=filled fillcolor="#FFFC87" color="#808080"'
GONE_ENTITY_STYLE = 'shape=ellipse style="filled,dashed" fillcolor="#FFFC87" color="#808080"'
ACTIVITY_STYLE = 'shape=box style=filled fillcolor="#9FB1FC" color="#0000FF"'
AGENT_STYLE = 'shape=house style=filled fillcolor="#FED37F" color="#808080"'
ROOT_STYLE = "penwidth=2 peripheries=2"

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


class GraphError(RuntimeError):
    """dot could not draw the graph (missing, failed, or too slow): the message says which."""


# --- DOT source ----------------------------------------------------------------------


MAX_JOBS_WITH_AGENTS = 20


def _short(text: str, length: int = LABEL_LENGTH) -> str:
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= length else text[: length - 1] + "…"


def _quoted(text: str) -> str:
    """``text`` as a DOT quoted string that graphviz shows as it is."""
    # A backslash starts graphviz's escapes (\N, \G, \l…): doubled, it is one backslash.
    text = _CONTROL.sub(" ", text).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _lines(*parts: str) -> str:
    """A label of several lines (DOT's ``\\n`` joins them, outside any user text)."""
    return '"' + "\\n".join(_quoted(_short(part))[1:-1] for part in parts if part) + '"'


def _node(node_id: str, style: str, label: str, url: str, tooltip: str, root: bool) -> str:
    extra = f" {ROOT_STYLE}" if root else ""
    return (
        f"  {_quoted(node_id)} [{style}{extra} label={label} URL={_quoted(url)}"
        f' tooltip={_quoted(_short(tooltip, TOOLTIP_LENGTH))} target="_top"];'
    )


def _edge(tail: str, head: str, relation: str, role: str, extra: str = "") -> str:
    return f"  {_quoted(tail)} -> {_quoted(head)} [label={_lines(relation, role)}{extra}];"


def _job_label(node: JobNode) -> str:
    return _lines(node.job.jobname, node.job.run_id or node.job.id)


def dot_source(graph: ProvenanceGraph, options: DocumentOptions) -> str:
    """The DOT text of the graph (entities, activities, agents when asked, relations)."""
    lines = [
        "digraph provenance {",
        '  graph [rankdir=BT fontname="Helvetica" fontsize=10];',
        '  node [fontname="Helvetica" fontsize=10];',
        '  edge [fontname="Helvetica" fontsize=8 color="#404040"];',
    ]
    jobs = sorted(graph.jobs, key=lambda n: n.job.id)
    for node in jobs:
        job = node.job
        tooltip = f"{job.jobname} {job.id} ({job.phase})"
        root = job.id in graph.roots
        lines.append(
            _node(f"job:{job.id}", ACTIVITY_STYLE, _job_label(node), node.page_url, tooltip, root)
        )
    for entity in sorted(graph.entities, key=lambda e: e.id):
        tooltip = f"{entity.name} ({entity.content_type}, {entity.size} bytes)"
        style = ENTITY_STYLE if entity.location is not None else GONE_ENTITY_STYLE
        if entity.location is None:
            tooltip += ", no longer stored"
        lines.append(
            _node(
                f"entity:{entity.id}",
                style,
                _lines(entity.name),
                entity.url,
                tooltip,
                entity.id in graph.roots,
            )
        )
    for usage in sorted(graph.usages, key=lambda u: (u.job_id, u.role, u.entity_id)):
        lines.append(_edge(f"job:{usage.job_id}", f"entity:{usage.entity_id}", "used", usage.role))
    for gen in sorted(graph.generations, key=lambda g: (g.job_id, g.role, g.entity_id)):
        lines.append(
            _edge(f"entity:{gen.entity_id}", f"job:{gen.job_id}", "wasGeneratedBy", gen.role)
        )
    # Agents are left out of large graphs: tied to every job, they make dot's layout
    # of a long chain take minutes (the documents still name them).
    if options.agents and len(jobs) <= MAX_JOBS_WITH_AGENTS:
        lines.extend(_agents(jobs))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _agents(jobs: Iterable[JobNode]) -> list[str]:
    """The owners and contacts of the jobs, each drawn once, and their associations."""
    agents: dict[str, tuple[str, str]] = {}
    edges: list[str] = []
    for node in jobs:
        found = [(f"user:{node.job.owner}", node.job.owner, "owner")]
        definition = node.definition
        if definition is not None and (definition.contact_name or definition.contact_email):
            contact = definition.contact_email or definition.contact_name
            found.append((f"contact:{contact}", definition.contact_name or contact, "contact"))
        for agent_id, name, role in found:
            agents.setdefault(agent_id, (name, role))
            # Outside the ranking: an agent is tied to many jobs, not before or after them.
            edges.append(
                _edge(
                    f"job:{node.job.id}", agent_id, "wasAssociatedWith", role, " constraint=false"
                )
            )
    nodes = [
        f"  {_quoted(agent_id)} [{AGENT_STYLE} label={_lines(name)}"
        f" tooltip={_quoted(_short(f'{name} ({role})', TOOLTIP_LENGTH))}];"
        for agent_id, (name, role) in sorted(agents.items())
    ]
    return nodes + sorted(edges)


# --- running dot ---------------------------------------------------------------------


def _run_dot(source: str, formats: list[str]) -> list[bytes]:
    """dot's outputs of ``source`` in ``formats``, from one layout."""
    with tempfile.TemporaryDirectory(prefix="opus-dot-") as folder:
        outputs = [Path(folder) / f"out{index}.{fmt}" for index, fmt in enumerate(formats)]
        command = [DOT_COMMAND, "-Gcharset=UTF-8"]
        for fmt, output in zip(formats, outputs, strict=True):
            command += [f"-T{fmt}", "-o", str(output)]
        try:
            done = subprocess.run(
                command,
                input=source.encode("utf-8"),
                capture_output=True,
                timeout=DOT_TIMEOUT,
                check=False,
            )
        except FileNotFoundError as exc:
            raise GraphError(f"graphviz is not installed ({DOT_COMMAND} not found)") from exc
        except subprocess.TimeoutExpired as exc:
            raise GraphError(f"dot took longer than {DOT_TIMEOUT} s to draw the graph") from exc
        if done.returncode != 0:
            reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise GraphError(f"dot failed ({done.returncode}): {reason[0] if reason else ''}")
        return [output.read_bytes() for output in outputs]


def _areas(cmapx: bytes) -> list[dict[str, str]]:
    """The <area> elements of dot's cmapx output (nodes with a URL)."""
    root = etree.fromstring(cmapx, _SAFE_PARSER)
    return [
        {key: area.get(key, "") for key in ("href", "title", "shape", "coords")}
        for area in root.iter("area")
        if area.get("href")
    ]


def drawing(
    graph: ProvenanceGraph, options: DocumentOptions, fmt: Format
) -> tuple[bytes, list[dict[str, str]]]:
    """The image in ``fmt`` (SVG or PNG) and its clickable areas, from one layout."""
    if fmt not in DOT_FORMATS:
        raise ValueError(f"{fmt.value} is a document: provenance.document_bytes writes it")
    image, cmapx = _run_dot(dot_source(graph, options), [DOT_FORMATS[fmt], "cmapx_np"])
    return image, _areas(cmapx)


def graph_bytes(graph: ProvenanceGraph, options: DocumentOptions, fmt: Format) -> bytes:
    """The graph as an SVG or PNG image. Raises ValueError for other formats, GraphError."""
    if fmt not in DOT_FORMATS:
        raise ValueError(f"{fmt.value} is a document: provenance.document_bytes writes it")
    return _run_dot(dot_source(graph, options), [DOT_FORMATS[fmt]])[0]


def image_map(graph: ProvenanceGraph, options: DocumentOptions) -> list[dict[str, str]]:
    """The clickable areas of the image, each {"href", "title", "shape", "coords"}.

    dot lays out one source the same way every time, so these match graph_bytes's
    image; ``drawing`` gives both from a single run.
    """
    return _areas(_run_dot(dot_source(graph, options), ["cmapx_np"])[0])
