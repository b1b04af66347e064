"""Previews of result files: what kind of view a result gets, and its capped content.

A kind is chosen from the result's content type (or its file name's extension) by the
first entry of ``KINDS`` that matches; the template ``preview_<kind>.tpl`` draws it.
Images (PNG, JPEG, GIF, WebP, and SVG) are shown by URL with ``<img>`` and never read
here: an SVG is never put inside the page, where its scripts would run in OPUS's
origin. Text kinds read at most ``limit`` bytes of the file (1 MB on a result's page,
a few kB on the job page) and say when there is more: text and logs as text, JSON
pretty-printed (when the whole file was read and parses), YAML as text, CSV and TSV as
a table of the first rows. Everything read is rendered as text by the templates.

FITS files and VOTables (astro.py, with astropy: the ``fits`` extra) are read from the
open file, not from its first bytes (``read``): a FITS file shows its primary header
and a quick-look image (quicklook.py, by URL), a VOTable the first rows of its first
table; both offer "Send to SAMP" (``samp``, the MType). An XML file is a VOTable when
its root element is VOTABLE, else text. Without astropy they get the binary preview,
with a note saying what to install.

To add a kind: a ``PreviewKind`` in ``KINDS`` before ``binary``, with its ``build`` if
it reads the file's first bytes (or ``read`` if it reads the open file), and its
template.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

from opus.client import astro
from opus.core.records import Result
from opus.server.nofollow import OpenFile

PAGE_LIMIT = 1024 * 1024
INLINE_LIMIT = 4 * 1024
TABLE_ROWS = 200
INLINE_TABLE_ROWS = 10
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"})


@dataclass(frozen=True)
class Preview:
    """What a preview template shows: ``text`` or ``rows`` (a table, the first row its
    header), how many bytes of ``size`` were read, and whether that was all."""

    kind: str
    text: str = ""
    rows: tuple[tuple[str, ...], ...] = ()
    read: int = 0
    size: int = 0
    note: str = ""
    # A table's columns (name, unit) when ``rows`` holds no header (VOTable).
    columns: tuple[tuple[str, str], ...] = ()
    # A FITS image: what it is, and whether a quick-look PNG of it is served.
    image: str = ""
    quicklook: bool = False
    # The SAMP MType of "Send to SAMP" ("": no button).
    samp: str = ""

    @property
    def truncated(self) -> bool:
        return self.read < self.size


@dataclass(frozen=True)
class Source:
    """An open result file, as a ``read`` kind previews it: ``limit`` is how many bytes a
    text preview would read, ``rows`` how many rows a table shows."""

    handle: BinaryIO
    size: int
    version: str
    content_type: str
    ext: str
    limit: int
    rows: int


@dataclass(frozen=True)
class PreviewKind:
    """A kind of preview: which results it takes, and how it reads them (None: it
    reads nothing, the template shows the result by URL)."""

    name: str
    matches: Callable[[str, str], bool]
    build: Callable[[bytes, int, int], Preview] | None = None
    read: Callable[[Source], Preview] | None = None


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def extension(result: Result) -> str:
    """The file name's extension, lower-case (".fits.gz" for a compressed FITS file)."""
    path = PurePosixPath(result.path)
    if path.suffix.lower() == ".gz" and len(path.suffixes) > 1:
        return "".join(path.suffixes[-2:]).lower()
    return path.suffix.lower()


def _is_image(kind: str, ext: str) -> bool:
    return kind in IMAGE_TYPES or (kind == "application/octet-stream" and ext in IMAGE_EXTENSIONS)


def _is_json(kind: str, ext: str) -> bool:
    return kind == "application/json" or kind.endswith("+json") or ext in (".json", ".geojson")


def _is_table(kind: str, ext: str) -> bool:
    return kind in ("text/csv", "text/tab-separated-values") or ext in (".csv", ".tsv")


YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})


def _is_yaml(kind: str, ext: str) -> bool:
    return kind in YAML_TYPES or ext in (".yml", ".yaml")


def _is_text(kind: str, ext: str) -> bool:
    textual = ("application/xml", "application/javascript", "application/x-sh")
    return (
        kind.startswith("text/")
        or kind in textual
        or kind.endswith("+xml")
        or ext in (".txt", ".log", ".out", ".err", ".md", ".dat")
    )


def decode(data: bytes) -> str:
    """Bytes as text: UTF-8, anything undecodable (a cut character) replaced."""
    return data.decode("utf-8", errors="replace")


def text_preview(data: bytes, size: int, _rows: int) -> Preview:
    return Preview("text", text=decode(data), read=len(data), size=size)


def json_preview(data: bytes, size: int, _rows: int) -> Preview:
    if len(data) >= size:
        try:
            pretty = json.dumps(json.loads(data), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            return Preview("text", text=decode(data), read=len(data), size=size, note="not JSON")
        return Preview("json", text=pretty, read=len(data), size=size)
    return Preview("text", text=decode(data), read=len(data), size=size)


def table_preview(data: bytes, size: int, rows: int, delimiter: str = ",") -> Preview:
    text = decode(data)
    if len(data) < size and "\n" in text:
        text = text[: text.rindex("\n")]  # the last line is cut
    read: list[tuple[str, ...]] = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            read.append(tuple(row))
            if len(read) > rows + 1:  # the header, the rows shown, and one more
                break
    except csv.Error:
        return Preview("text", text=decode(data), read=len(data), size=size, note="not CSV")
    shown = tuple(read[: rows + 1])
    more = len(read) > rows + 1 or len(data) < size
    note = f"the first {max(0, len(shown) - 1)} rows" if more else ""
    return Preview("table", rows=shown, read=len(data), size=size, note=note)


def tsv_preview(data: bytes, size: int, rows: int) -> Preview:
    return table_preview(data, size, rows, delimiter="\t")


FITS_TYPES = frozenset({"application/fits", "image/fits", "application/x-fits"})
FITS_EXTENSIONS = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
VOTABLE_TYPES = frozenset({"application/x-votable+xml", "application/votable+xml"})
VOTABLE_EXTENSIONS = frozenset({".vot", ".votable"})
XML_TYPES = frozenset({"text/xml", "application/xml"})
NEEDS_ASTROPY = "A preview of this file needs astropy: pip install opus[fits]"
HEADER_CARDS = 1000
INLINE_CARDS = 12


def _is_fits(kind: str, ext: str) -> bool:
    return kind in FITS_TYPES or ext in FITS_EXTENSIONS


def _is_votable(kind: str, ext: str) -> bool:
    return kind in VOTABLE_TYPES or ext in VOTABLE_EXTENSIONS


def _may_be_votable(kind: str, ext: str) -> bool:
    return _is_votable(kind, ext) or kind in XML_TYPES or ext == ".xml"


def head(source: Source) -> bytes:
    """The first bytes of the file, as a text preview reads them."""
    source.handle.seek(0)
    return source.handle.read(min(source.limit, source.size))


def fits_preview(source: Source) -> Preview:
    if not astro.available():
        return Preview("binary", size=source.size, note=NEEDS_ASTROPY)
    # The job page (which shows a table's first INLINE_TABLE_ROWS) shows a few cards.
    cards = HEADER_CARDS if source.rows > INLINE_TABLE_ROWS else INLINE_CARDS
    try:
        summary = astro.read_fits(source.handle, source.size, cards)
    except astro.NotPreviewable as exc:
        return Preview("fits", size=source.size, note=str(exc))
    note = ""
    if summary.total_cards > len(summary.cards):
        note = f"the first {len(summary.cards)} of its {summary.total_cards} cards"
    return Preview(
        "fits",
        text="\n".join(summary.cards),
        read=source.size,
        size=source.size,
        note=note,
        image=summary.image_note,
        quicklook=summary.image is not None,
        samp=summary.samp,
    )


def votable_preview(source: Source) -> Preview:
    kind = media_type(source.content_type)
    declared = _is_votable(kind, source.ext) or "votable" in source.content_type
    if not declared:
        first = head(source)
        if not astro.available() or not astro.root_is_votable(first):
            return text_preview(first, source.size, source.rows)
    elif not astro.available():
        return Preview("binary", size=source.size, note=NEEDS_ASTROPY)
    samp = "table.load.votable"
    try:
        table = astro.read_votable(source.handle, source.size, source.version, source.rows)
    except astro.NotPreviewable as exc:
        return Preview("votable", size=source.size, note=str(exc), samp=samp)
    note = ""
    if table.total_rows > len(table.rows):
        note = f"the first {len(table.rows)} of {table.total_rows} rows"
    if table.tables > 1:
        note = (note + "; " if note else "") + f"the first of {table.tables} tables"
    return Preview(
        "votable",
        rows=table.rows,
        columns=table.columns,
        read=source.size,
        size=source.size,
        note=note,
        samp=samp,
    )


KINDS: tuple[PreviewKind, ...] = (
    PreviewKind("image", _is_image),
    PreviewKind("json", _is_json, json_preview),
    PreviewKind(
        "tsv",
        lambda kind, ext: kind == "text/tab-separated-values" or ext == ".tsv",
        tsv_preview,
    ),
    PreviewKind("table", _is_table, table_preview),
    PreviewKind("fits", _is_fits, read=fits_preview),
    PreviewKind("votable", _may_be_votable, read=votable_preview),
    PreviewKind("yaml", _is_yaml, text_preview),
    PreviewKind("text", _is_text, text_preview),
    PreviewKind("binary", lambda _kind, _ext: True),
)


def kind_of(result: Result) -> PreviewKind:
    """The preview kind of a result (the first of KINDS that takes it)."""
    kind, ext = media_type(result.content_type), extension(result)
    return next(k for k in KINDS if k.matches(kind, ext))


def reads_file(result: Result) -> bool:
    """Whether the preview of ``result`` needs its content."""
    kind = kind_of(result)
    return kind.build is not None or kind.read is not None


def preview(result: Result, data: bytes, size: int, rows: int = TABLE_ROWS) -> Preview:
    """The preview of ``result`` from its first bytes ``data`` (of ``size``)."""
    kind = kind_of(result)
    if kind.read is not None:
        content_type = media_type(result.content_type) + _parameters(result.content_type)
        read = len(data)
        return kind.read(
            Source(io.BytesIO(data), read, "", content_type, extension(result), read, rows)
        )
    if kind.build is None:
        return Preview(kind.name, size=size)
    return kind.build(data, size, rows)


def preview_file(result: Result, opened: OpenFile, limit: int, rows: int = TABLE_ROWS) -> Preview:
    """The preview of ``result`` from its open file (which it closes): its first
    ``limit`` bytes, or the file itself for the kinds that read it."""
    kind = kind_of(result)
    with opened:
        if kind.read is None:
            data = opened.handle.read(min(limit, opened.size))
        else:
            source = Source(
                opened.handle,
                opened.size,
                opened.version,
                media_type(result.content_type) + _parameters(result.content_type),
                extension(result),
                limit,
                rows,
            )
            return kind.read(source)
    return preview(result, data, opened.size, rows)


def _parameters(content_type: str) -> str:
    """The parameters of a content type, lower-case (";content=x-votable")."""
    _, _, rest = content_type.partition(";")
    return f";{rest.strip().lower()}" if rest else ""
