"""A job's results as one zip file, written while it is sent.

Nothing is written to disk and memory holds one chunk: ``zipfile`` writes into a sink
that is not seekable (each entry then carries a data descriptor after its data), and
the body yields what the sink collected after each chunk of each file. The files are
the ones the service opened without following links; each is read up to the size it
had when opened, and closed when written (or when the client leaves).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from time import gmtime
from typing import TYPE_CHECKING

from opus.server.nofollow import OpenFile

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

CHUNK = 256 * 1024


class _Sink(io.RawIOBase):
    """A write-only, unseekable file that hands over what was written."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.written += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.written

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def zip_stream(files: Iterable[tuple[str, Callable[[], OpenFile]]]) -> Iterator[bytes]:
    """The bytes of a zip of ``files``: (name in the archive, opener) pairs, each file
    opened when its turn comes."""
    sink = _Sink()
    # A sink without seek: zipfile writes sizes in data descriptors.
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, opener in files:
            with opener() as opened:
                info = zipfile.ZipInfo(name, date_time=gmtime(opened.mtime)[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                info.file_size = opened.size
                with archive.open(info, "w") as entry:
                    remaining = opened.size
                    while remaining > 0:
                        chunk = opened.handle.read(min(CHUNK, remaining))
                        if not chunk:
                            break
                        remaining -= len(chunk)
                        entry.write(chunk)
                        if sink.parts:
                            yield sink.take()
            if sink.parts:
                yield sink.take()
    yield sink.take()
