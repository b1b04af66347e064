"""Reading FITS files and VOTables for their previews, within bounds of memory and time.

astropy is optional (``pip install opus[fits]``): ``available()`` says whether it can
be imported, and nothing here imports it before that is known (the pages fall back to
the binary preview without it).

FITS: the headers are read here block by block (2880 bytes) up to their END card, at
most ``MAX_HEADER_BYTES`` each, walking at most ``MAX_HDUS`` HDUs by the sizes their
headers give, so a header costs what it weighs and no data is read: the primary
header is shown as its cards (text), and the image quick-looked is the primary HDU's
or the first IMAGE extension's (2-D, or the first plane of a cube). Its pixels are read
by quicklook.py, only if there are at most ``MAX_PIXELS`` in a plane.

VOTable: the file (at most ``VOTABLE_MAX_BYTES``) is first scanned with expat, which
refuses any entity declaration (no external entity, no "billion laughs") and any
``STREAM href`` (astropy would fetch that URL: a file of the server, or a host of its
network); expat itself never fetches a DTD. Only then astropy.io.votable parses it and
the first rows of its first table are kept, as text. Parsed tables are cached by the
file's version, since the job page is drawn again at every change of the job.
"""

from __future__ import annotations

import functools
import gzip
import importlib
import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, cast
from xml.parsers import expat

BLOCK = 2880
CARD = 80
MAX_HEADER_BYTES = 1000 * BLOCK
MAX_HDUS = 16
MAX_PIXELS = 200_000_000
# A compressed file is read from its start for every row: fewer pixels.
MAX_GZIP_PIXELS = 16_000_000
MAX_FITS_BYTES = 16 * 1024**3
MAX_GZIP_BYTES = 512 * 1024**2
VOTABLE_MAX_BYTES = 16 * 1024 * 1024
MAX_CELL = 200
CACHED_TABLES = 32
BITPIX = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"


class NotPreviewable(Exception):
    """A file this module will not read, or cannot: the message says why, as the page
    shows it."""


@functools.cache
def available() -> bool:
    """Whether astropy and numpy can be imported (the ``fits`` extra is installed)."""
    try:
        for name in ("numpy", "astropy.io.fits", "astropy.io.votable", "astropy.visualization"):
            importlib.import_module(name)
    except ImportError:
        return False
    return True


# -- FITS ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    """Where the plane to quick-look lies: its HDU, the offset of its data, its width and
    height, the pixel format and the scaling of its header."""

    hdu: int
    offset: int
    width: int
    height: int
    bitpix: int
    bscale: float = 1.0
    bzero: float = 0.0
    blank: int | None = None
    planes: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class FitsSummary:
    """What a FITS preview shows: the primary header's cards (the first ``cards``), how
    many it has, the image to quick-look (or why none), and the SAMP MType it suits."""

    cards: tuple[str, ...]
    total_cards: int
    image: ImageInfo | None
    image_note: str
    samp: str


def is_gzip(handle: BinaryIO) -> bool:
    """Whether an open file (read from its start) is gzip-compressed."""
    handle.seek(0)
    magic = handle.read(2)
    handle.seek(0)
    return magic == GZIP_MAGIC


def fits_stream(handle: BinaryIO, size: int) -> tuple[BinaryIO, bool]:
    """The FITS content of an open file (decompressed if gzip), and whether it was
    compressed; NotPreviewable past the size limits."""
    compressed = is_gzip(handle)
    limit = MAX_GZIP_BYTES if compressed else MAX_FITS_BYTES
    if size > limit:
        raise NotPreviewable(f"the file is over {limit // 1024**2} MB: not previewed")
    if compressed:
        return cast(BinaryIO, gzip.GzipFile(fileobj=handle, mode="rb")), True
    return handle, False


def read_header(stream: BinaryIO, start: int) -> tuple[list[str], int]:
    """The cards of the header at ``start`` (up to END, which is not included) and the
    offset of its data."""
    stream.seek(start)
    cards: list[str] = []
    read = 0
    while read < MAX_HEADER_BYTES:
        block = stream.read(BLOCK)
        if len(block) < BLOCK:
            raise NotPreviewable("the file ends inside a FITS header")
        read += BLOCK
        for at in range(0, BLOCK, CARD):
            card = block[at : at + CARD].decode("ascii", errors="replace")
            if card[:8] == "END     ":
                return cards, start + read
            cards.append(card.rstrip())
    raise NotPreviewable(f"a FITS header longer than {MAX_HEADER_BYTES} bytes: not read")


def header_values(cards: list[str]) -> Any:
    """The cards as an astropy Header (values typed as FITS says)."""
    from astropy.io import fits

    return fits.Header.fromstring("".join(card.ljust(CARD) for card in cards))


def data_size(header: Any) -> int:
    """The bytes of the data after a header, padded to a whole block."""
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    axes = [int(header.get(f"NAXIS{i}", 0)) for i in range(1, naxis + 1)]
    if header.get("GROUPS") is True and axes and axes[0] == 0:
        axes = axes[1:]  # random groups: NAXIS1 = 0
    bits = abs(int(header.get("BITPIX", 8))) * int(header.get("GCOUNT", 1))
    count = int(header.get("PCOUNT", 0)) + math.prod(axes)
    size = bits * count // 8
    return -(-size // BLOCK) * BLOCK


def image_of(header: Any, hdu: int, offset: int) -> ImageInfo | None:
    """The first plane of an HDU's image, or None if it holds none."""
    naxis = int(header.get("NAXIS", 0))
    bitpix = int(header.get("BITPIX", 0))
    if naxis < 2 or bitpix not in BITPIX or header.get("GROUPS") is True:
        return None
    width, height = int(header.get("NAXIS1", 0)), int(header.get("NAXIS2", 0))
    if width <= 0 or height <= 0:
        return None
    planes = math.prod(int(header.get(f"NAXIS{i}", 1)) for i in range(3, naxis + 1))
    if planes <= 0:
        return None
    blank = header.get("BLANK") if bitpix > 0 else None
    return ImageInfo(
        hdu=hdu,
        offset=offset,
        width=width,
        height=height,
        bitpix=bitpix,
        bscale=float(header.get("BSCALE", 1.0)),
        bzero=float(header.get("BZERO", 0.0)),
        blank=int(blank) if isinstance(blank, int) else None,
        planes=planes,
    )


def read_fits(handle: BinaryIO, size: int, max_cards: int) -> FitsSummary:
    """The summary of a FITS file: its primary header and the image to quick-look.
    NotPreviewable if it is not FITS, or over the limits. A header whose values cannot
    be read is still shown, without an image."""
    from astropy.io.fits.verify import VerifyError

    stream, compressed = fits_stream(handle, size)
    try:
        stream.seek(0)
        if stream.read(9) != b"SIMPLE  =":
            raise NotPreviewable("not a FITS file: it does not begin with SIMPLE")
        cards, data_start = read_header(stream, 0)
    except (OSError, EOFError) as exc:  # a broken gzip stream
        raise NotPreviewable(f"a file that cannot be read: {exc}") from None
    try:
        image, samp = find_image(stream, compressed, size, cards, data_start)
    except (VerifyError, ValueError, TypeError, ArithmeticError, LookupError, OSError) as exc:
        # Values of the wrong type, cards astropy cannot parse, a broken gzip stream.
        image, samp = None, ""
        note = f"no quick look: the header cannot be read ({exc})"
    else:
        note = "no 2-D image in the primary HDU or the first image extension"
    if image is not None:
        limit = MAX_GZIP_PIXELS if compressed else MAX_PIXELS
        note = f"{image.width} x {image.height} pixels"
        if image.pixels > limit:
            note = f"an image of {image.width} x {image.height} pixels: too large to quick-look"
            image = None
    return FitsSummary(tuple(cards[:max_cards]), len(cards), image, note, samp)


def find_image(
    stream: BinaryIO, compressed: bool, size: int, cards: list[str], data_start: int
) -> tuple[ImageInfo | None, str]:
    """The image of the primary HDU, else of the first IMAGE extension (None if none),
    and the SAMP MType the file suits ("" for none)."""
    primary = header_values(cards)
    image = image_of(primary, 0, data_start)
    samp = "image.load.fits" if image is not None else ""
    offset, hdu = data_start + data_size(primary), 1
    while image is None and primary.get("EXTEND") is True and hdu < MAX_HDUS:
        if not compressed and offset >= size:
            break
        try:
            extension, start = read_header(stream, offset)
        except NotPreviewable:
            break
        header = header_values(extension)
        kind = str(header.get("XTENSION", "")).strip()
        if kind == "IMAGE":
            image = image_of(header, hdu, start)
            samp = "image.load.fits" if image is not None else samp
        elif kind == "BINTABLE" and header.get("ZIMAGE") is True:
            break  # a tile-compressed image: not decompressed here
        elif kind in ("BINTABLE", "TABLE") and hdu == 1:
            samp = "table.load.fits"
        offset, hdu = start + data_size(header), hdu + 1
    return image, samp


def fits_image(handle: BinaryIO, size: int) -> tuple[BinaryIO, ImageInfo]:
    """The stream and image of a FITS file to quick-look; NotPreviewable if none."""
    summary = read_fits(handle, size, 0)
    if summary.image is None:
        raise NotPreviewable(summary.image_note)
    stream, _ = fits_stream(handle, size)
    return stream, summary.image


# -- VOTable ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSummary:
    """The first rows of a VOTable's first table, as text: columns (name, unit), rows,
    how many rows the table has and how many tables the file has."""

    columns: tuple[tuple[str, str], ...]
    rows: tuple[tuple[str, ...], ...]
    total_rows: int
    tables: int


class _Root(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _local(name: str) -> str:
    return name.rsplit(" ", 1)[-1]


def _refuse_entities(*_args: object) -> None:
    raise NotPreviewable("the file declares XML entities: not read")


def _guarded_parser() -> expat.XMLParserType:
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.EntityDeclHandler = _refuse_entities
    parser.UnparsedEntityDeclHandler = _refuse_entities
    return parser


def root_is_votable(head: bytes) -> bool:
    """Whether the XML whose first bytes are ``head`` has the root element VOTABLE."""
    parser = _guarded_parser()

    def start(name: str, _attributes: dict[str, str]) -> None:
        raise _Root(_local(name))

    parser.StartElementHandler = start
    try:
        parser.Parse(head, False)
    except _Root as root:
        return root.name == "VOTABLE"
    except (expat.ExpatError, NotPreviewable):
        return False
    return False


def check_votable(data: bytes) -> None:
    """NotPreviewable unless ``data`` is well-formed XML, with the root VOTABLE, no
    entity declaration and no STREAM that names a URL."""
    parser = _guarded_parser()
    seen: list[str] = []

    def start(name: str, attributes: dict[str, str]) -> None:
        local = _local(name)
        if not seen and local != "VOTABLE":
            raise NotPreviewable("not a VOTable: the root element is not VOTABLE")
        seen.append(local)
        if local == "STREAM" and any(_local(key) == "href" for key in attributes):
            raise NotPreviewable("the table's data is at another URL (STREAM href): not read")

    parser.StartElementHandler = start
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise NotPreviewable(f"not well-formed XML: {exc}") from None


def _cell(value: Any) -> str:
    from numpy import ma

    if value is ma.masked:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def parse_votable(data: bytes, rows: int) -> TableSummary:
    """The first ``rows`` of the first table of a (checked) VOTable."""
    from astropy.io import votable

    check_votable(data)
    try:
        document = votable.parse(io.BytesIO(data), verify="ignore")
        tables = list(document.iter_tables())
    except Exception as exc:  # astropy raises many kinds for a broken VOTable
        raise NotPreviewable(f"not a VOTable astropy can read: {exc}") from None
    if not tables:
        raise NotPreviewable("the VOTable has no table")
    table = tables[0]
    columns = tuple(
        (str(field.name or field.ID or ""), str(field.unit) if field.unit is not None else "")
        for field in table.fields
    )
    array = table.array
    shown = tuple(
        tuple(_cell(array[index][column]) for column in range(len(columns)))
        for index in range(min(rows, len(array)))
    )
    return TableSummary(columns, shown, len(array), len(tables))


class TableCache:
    """Parsed tables by (file version, rows), the most recent ``size`` kept."""

    def __init__(self, size: int = CACHED_TABLES) -> None:
        self.size = size
        self._tables: OrderedDict[tuple[str, int], TableSummary] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int], parse: Callable[[], TableSummary]) -> TableSummary:
        with self._lock:
            if key in self._tables:
                self._tables.move_to_end(key)
                return self._tables[key]
        parsed = parse()
        with self._lock:
            self._tables[key] = parsed
            while len(self._tables) > self.size:
                self._tables.popitem(last=False)
        return parsed


TABLES = TableCache()


def read_votable(handle: BinaryIO, size: int, version: str, rows: int) -> TableSummary:
    """The first ``rows`` of the first table of the VOTable open in ``handle``, kept by
    the file's ``version`` ("": not kept)."""
    if size > VOTABLE_MAX_BYTES:
        raise NotPreviewable(f"the file is over {VOTABLE_MAX_BYTES // 1024**2} MB: not previewed")

    def parse() -> TableSummary:
        handle.seek(0)
        return parse_votable(handle.read(size), rows)

    return TABLES.get((version, rows), parse) if version else parse()
