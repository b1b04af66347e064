"""The provenance graphs of opus/server/provdot.py, drawn by the real graphviz dot."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from lxml import etree

from opus.server import provdot
from opus.server.provmodel import DocumentOptions, Format, ProvenanceGraph
from tests.test_provenance_documents import JOB_IDS, chain_graph, job

SVG_NS = {"svg": "http://www.w3.org/2000/svg"}
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def svg_tree(graph: ProvenanceGraph, options: DocumentOptions | None = None) -> etree._Element:
    data = provdot.graph_bytes(graph, options or DocumentOptions(), Format.SVG)
    assert data.startswith((b"<?xml", b"<svg"))
    return etree.fromstring(data, SAFE_PARSER)


def node_titles(root: etree._Element) -> set[str]:
    return {
        str(g.findtext("svg:title", namespaces=SVG_NS))
        for g in root.iterfind(".//svg:g[@class='node']", SVG_NS)
    }


def texts(root: etree._Element) -> list[str]:
    return [t.text or "" for t in root.iterfind(".//svg:text", SVG_NS)]


def test_svg_draws_every_node_and_edge() -> None:
    root = svg_tree(chain_graph())
    titles = node_titles(root)
    assert {f"job:{j}" for j in JOB_IDS} <= titles
    assert {f"entity:{'1' * 32}", f"entity:{'2' * 32}"} <= titles
    assert "user:bob.smith@example.org" in titles and "contact:ada@example.org" in titles
    edges = list(root.iterfind(".//svg:g[@class='edge']", SVG_NS))
    # 2 used, 2 wasGeneratedBy, 3 jobs x (owner, contact)
    assert len(edges) == 2 + 2 + 6
    shown = texts(root)
    assert "used" in shown and "wasGeneratedBy" in shown and "wasAssociatedWith" in shown
    assert "input" in shown and "output" in shown and "owner" in shown


def test_png_is_a_png() -> None:
    data = provdot.graph_bytes(chain_graph(), DocumentOptions(), Format.PNG)
    assert data.startswith(PNG_SIGNATURE)


def test_the_prov_look_and_the_roots() -> None:
    source = provdot.dot_source(chain_graph(), DocumentOptions())
    job_line = next(
        line for line in source.splitlines() if line.startswith(f'  "job:{JOB_IDS[0]}"')
    )
    assert "shape=box" in job_line and "#9FB1FC" in job_line and "peripheries" not in job_line
    root_line = next(
        line for line in source.splitlines() if line.startswith(f'  "job:{JOB_IDS[2]}"')
    )
    assert "peripheries=2" in root_line  # the root of the graph is drawn apart
    entity_line = next(line for line in source.splitlines() if line.startswith('  "entity:'))
    assert "shape=ellipse" in entity_line and "#FFFC87" in entity_line
    assert "shape=house" in source


def test_agents_off_draws_no_agent() -> None:
    options = DocumentOptions(agents=False)
    assert "shape=house" not in provdot.dot_source(chain_graph(), options)
    titles = node_titles(svg_tree(chain_graph(), options))
    assert not any(t.startswith(("user:", "contact:")) for t in titles)
    assert len(titles) == 5


NASTY = 'a"b\\N\\G\\l<i>&x\nnew'


def nasty_graph() -> ProvenanceGraph:
    graph = chain_graph()
    first = graph.jobs[0]
    nasty = dataclasses.replace(first, job=job(JOB_IDS[0], 0, run_id=NASTY))
    return dataclasses.replace(graph, jobs=(nasty, *graph.jobs[1:]))


def test_user_text_is_escaped_in_the_dot_source() -> None:
    source = provdot.dot_source(nasty_graph(), DocumentOptions())
    line = next(line for line in source.splitlines() if line.startswith(f'  "job:{JOB_IDS[0]}"'))
    # Quotes and backslashes escaped, the newline gone: graphviz sees no \N, \G or \l.
    assert 'label="wordy\\na\\"b\\\\N\\\\G\\\\l<i>&x new"' in line
    assert "label=<" not in source
    for forbidden in ("image=", "shapefile=", "fontpath=", "imagepath="):
        assert forbidden not in source


def test_user_text_is_shown_as_written() -> None:
    root = svg_tree(nasty_graph())
    assert 'a"b\\N\\G\\l<i>&x new' in texts(root)
    tooltips = {
        a.get("{http://www.w3.org/1999/xlink}title") for a in root.iterfind(".//svg:a", SVG_NS)
    }
    assert f"wordy {JOB_IDS[0]} (COMPLETED)" in tooltips


def test_long_labels_are_cut() -> None:
    graph = nasty_graph()
    long = dataclasses.replace(graph.jobs[0], job=job(JOB_IDS[0], 0, run_id="x" * 300))
    source = provdot.dot_source(
        dataclasses.replace(graph, jobs=(long, *graph.jobs[1:])), DocumentOptions()
    )
    assert "x" * 39 + "…" in source and "x" * 41 not in source


def test_image_map_links_the_nodes_to_their_pages() -> None:
    graph = chain_graph()
    areas = provdot.image_map(graph, DocumentOptions())
    hrefs = {area["href"] for area in areas}
    assert hrefs == {node.page_url for node in graph.jobs} | {e.url for e in graph.entities}
    for area in areas:
        assert area["shape"] in {"rect", "poly", "circle"}
        assert re.fullmatch(r"-?\d+(,-?\d+)+", area["coords"])
    titles = {area["title"] for area in areas}
    assert f"wordy {JOB_IDS[0]} (COMPLETED)" in titles
    # The same layout as the image drawn with it.
    image, drawn = provdot.drawing(graph, DocumentOptions(), Format.PNG)
    assert image.startswith(PNG_SIGNATURE)
    assert drawn == areas


def test_same_graph_same_drawing() -> None:
    graph = chain_graph()
    shuffled = dataclasses.replace(
        graph, jobs=graph.jobs[::-1], entities=graph.entities[::-1], usages=graph.usages[::-1]
    )
    options = DocumentOptions()
    assert provdot.dot_source(shuffled, options) == provdot.dot_source(graph, options)
    assert provdot.graph_bytes(shuffled, options, Format.SVG) == provdot.graph_bytes(
        graph, options, Format.SVG
    )


def test_documents_are_refused() -> None:
    with pytest.raises(ValueError, match="document"):
        provdot.graph_bytes(chain_graph(), DocumentOptions(), Format.JSON)


def test_dot_failures_raise_graph_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(provdot, "DOT_COMMAND", "false")
    with pytest.raises(provdot.GraphError, match="dot failed"):
        provdot.graph_bytes(chain_graph(), DocumentOptions(), Format.SVG)
    monkeypatch.setattr(provdot, "DOT_COMMAND", str(tmp_path / "no-such-dot"))
    with pytest.raises(provdot.GraphError, match="not installed"):
        provdot.graph_bytes(chain_graph(), DocumentOptions(), Format.SVG)
    slow = tmp_path / "slow-dot"
    slow.write_text("#!/bin/sh\nexec sleep 5\n")
    slow.chmod(0o755)
    monkeypatch.setattr(provdot, "DOT_COMMAND", str(slow))
    monkeypatch.setattr(provdot, "DOT_TIMEOUT", 0.5)
    with pytest.raises(provdot.GraphError, match="longer than"):
        provdot.graph_bytes(chain_graph(), DocumentOptions(), Format.SVG)
