"""Files of a job directory, opened without following links.

A job's directory is written by the job, and its script may leave a symbolic link
where OPUS expects a file (``.opus/stdout`` → ``/etc/shadow``), make ``results/`` a
link to another directory, put a FIFO there (an open that never returns), or hard-link
a file of the server's account into its results. So every file OPUS reads or serves
from a job directory is opened here, never by path: the job directory itself and each
component below it are opened with ``O_NOFOLLOW`` relative to the descriptor of their
parent (no link is followed at any level, and nothing swapped in between a check and
the open counts), the file itself without blocking, and the descriptor is then checked
with ``fstat``: a regular file with a single link. Anything else is ``UnsafeFile``.

Only JOBS_PATH itself (the job directory's parent, set by the admin) may be a link.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO would otherwise wait for a writer, holding the thread.
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# What a refused open says: a link (ELOOP), a link to a directory's place (ENOTDIR),
# a socket (ENXIO).
_REFUSED = {errno.ELOOP, errno.ENOTDIR, errno.ENXIO}


class UnsafeFile(OSError):
    """A name of a job directory that is a link, not a regular file, or a file that
    has other names (hard links): OPUS does not read it."""


@dataclass
class OpenFile:
    """A regular file of a job directory, open for reading; close it (or use ``with``).

    ``size`` and ``mtime`` are those of the open file (fstat), ``version`` changes with
    any change of its content or identity (an ETag for it).
    """

    handle: BinaryIO
    name: str
    size: int
    mtime: float
    version: str

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> OpenFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _refused(exc: OSError, what: str) -> OSError:
    if exc.errno in _REFUSED:
        return UnsafeFile(exc.errno, f"{what} is not a plain file or directory (a link?)")
    return exc


def open_directory(job_dir: Path, relative: str = "") -> int:
    """A descriptor of ``job_dir`` (or of ``relative`` under it), no link followed below
    JOBS_PATH. FileNotFoundError if missing, UnsafeFile if a component is a link."""
    parent = os.open(job_dir.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = _open_at(parent, job_dir.name, DIRECTORY_FLAGS, job_dir.name)
    finally:
        os.close(parent)
    for part in _parts(relative):
        try:
            child = _open_at(fd, part, DIRECTORY_FLAGS, relative)
        finally:
            os.close(fd)
        fd = child
    return fd


@contextmanager
def directory(job_dir: Path, relative: str = "") -> Iterator[int]:
    """``open_directory`` as a context: the descriptor is closed at the end."""
    fd = open_directory(job_dir, relative)
    try:
        yield fd
    finally:
        os.close(fd)


def open_file(job_dir: Path, relative: str) -> OpenFile:
    """The file ``relative`` (``results/x.csv``) of a job directory, checked.

    FileNotFoundError if it or a directory on its way is missing; UnsafeFile if any of
    them is a link, or it is not a regular file with a single link.
    """
    path = PurePosixPath(relative)
    with directory(job_dir, str(path.parent)) as parent:
        return open_at(parent, path.name)


def open_at(dir_fd: int, name: str) -> OpenFile:
    """The file ``name`` of an open directory, checked as ``open_file`` checks."""
    if not name or "/" in name or name in (".", ".."):
        raise UnsafeFile(errno.EINVAL, f"{name!r} is not a file name")
    fd = _open_at(dir_fd, name, FILE_FLAGS, name)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(errno.EINVAL, f"{name!r} is not a regular file")
        if info.st_nlink != 1:
            raise UnsafeFile(errno.EMLINK, f"{name!r} has other names (hard links)")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    identity = f"{info.st_dev}:{info.st_ino}:{info.st_mtime_ns}:{info.st_size}"
    return OpenFile(
        handle=handle,
        name=name,
        size=info.st_size,
        mtime=info.st_mtime,
        version=hashlib.sha256(identity.encode()).hexdigest()[:32],
    )


HASH_CHUNK = 1024 * 1024


def size_and_sha256(opened: OpenFile) -> tuple[int, str]:
    """The bytes read from ``opened`` (to its end) and their SHA-256 in hex."""
    digest = hashlib.sha256()
    size = 0
    while chunk := opened.handle.read(HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def read_file(job_dir: Path, relative: str, limit: int) -> bytes | None:
    """At most ``limit`` bytes from the start of a job's file; None if it is missing or
    unsafe (a file OPUS reads for itself: a link is as good as no file)."""
    try:
        with open_file(job_dir, relative) as opened:
            return opened.handle.read(limit)
    except OSError:
        return None


def read_tail(job_dir: Path, relative: str, size: int) -> bytes:
    """The last ``size`` bytes of a job's file (empty if it is missing or unsafe)."""
    try:
        with open_file(job_dir, relative) as opened:
            opened.handle.seek(max(0, opened.size - size))
            return opened.handle.read(size)
    except OSError:
        return b""


def _parts(relative: str) -> list[str]:
    parts = [p for p in PurePosixPath(relative).parts if p != "."]
    if any(p in ("..", "/") for p in parts):
        raise UnsafeFile(errno.EINVAL, f"{relative!r} leaves the job directory")
    return parts


def _open_at(dir_fd: int, name: str, flags: int, what: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        raise _refused(exc, repr(what)) from None
