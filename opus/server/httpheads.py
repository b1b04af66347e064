"""Request heads, received off the worker threads: bounded in size and time, framed strictly.

Cheroot hands a connection to a worker thread as soon as it is accepted, or as soon as
an idle keep-alive one has a byte to read; the thread then blocks reading the request
line and headers for as long as the client takes to send them (the socket timeout
starts again at every byte), so a few dozen clients sending a header line every few
seconds hold every thread. Here the connection manager's own thread reads each
request's head without blocking, into the connection's read-ahead buffer, and hands
the connection to a worker only once the head is complete: a worker parses it from
memory and never waits on a client for it. A client that is slow, or connects and sends
nothing, costs a descriptor and its buffer, no thread.

A head must be complete within ``header_timeout`` seconds of its first byte (else 408)
and ``max_header_size`` bytes (else 431; 414 when the request line alone is longer);
the buffer never grows much past the limit, so memory stays flat whatever a client
sends. A connection refused that way is closed gently: the answer is sent, our side
shut down, and what the client still sends is read and dropped for LINGER_SECONDS, so
that the client reads the answer rather than a reset.

Heads are framed strictly (``StrictRequest``): the shapes that let a proxy in front and
this server disagree on where a request ends (Content-Length with Transfer-Encoding,
more than one Content-Length, equal or not, one that is not digits, Transfer-Encoding
in HTTP/1.0 or with chunked not last, obs-folded lines, a field name that is not a
token, such as one with a space before the colon) are answered 400 and the connection
closed, before the application sees the request.

The server speaks plain HTTP (TLS is the proxy's), which the read-ahead relies on.
"""

from __future__ import annotations

import logging
import os
import re
import select
import selectors
import socket
import time
from io import DEFAULT_BUFFER_SIZE
from typing import Any

from cheroot import connections, makefile, server

log = logging.getLogger("opus.httpserver")

# Bytes read from a connection at a time by the connection manager's thread.
READ_CHUNK = 64 * 1024
# How long a refused connection's further bytes are read and dropped before it closes.
LINGER_SECONDS = 2.0
HUNG_UP = select.POLLHUP | select.POLLRDHUP | select.POLLERR | select.POLLNVAL
TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
DIGITS = re.compile(rb"[0-9]+")
CRLF = b"\r\n"
# The fields cheroot joins with commas when repeated (the others: the last one wins).
JOINED: frozenset[bytes] = frozenset(server.comma_separated_headers)  # type: ignore[attr-defined]


def head_length(data: bytearray, start: int = 0) -> int:
    """The length of the request head that begins ``data`` (through the empty line that
    ends it), or -1 while it is incomplete; ``start``: where the end may first be."""
    ends = [
        found + len(end)
        for end in (b"\n\r\n", b"\n\n")
        if (found := data.find(end, max(0, start))) >= 0
    ]
    return min(ends, default=-1)


def peer_open(sock: socket.socket) -> bool:
    """Whether the client of ``sock`` may still read an answer: it has not closed or
    shut down its side (the request, read already, needs nothing more from it)."""
    descriptor = sock.fileno()
    if descriptor < 0:
        return False
    poller = select.poll()
    poller.register(descriptor, select.POLLRDHUP)
    return not any(events & HUNG_UP for _, events in poller.poll(0))


class ReadAheadIO(socket.SocketIO):
    """A socket's raw reader that first gives the bytes read ahead into ``pending``."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock, "rb")
        self.pending = bytearray()

    def readinto(self, b: Any) -> int | None:
        if not self.pending:
            return super().readinto(b)
        count = min(len(b), len(self.pending))
        memoryview(b)[:count] = self.pending[:count]
        del self.pending[:count]
        return count


class ReadAheadReader(makefile.StreamReader):
    """cheroot's socket reader, over a ReadAheadIO."""

    def __init__(self, raw: ReadAheadIO, bufsize: int) -> None:
        # StreamReader's own __init__ would make its raw reader itself.
        super(makefile.StreamReader, self).__init__(raw, bufsize)
        self.bytes_read = 0


class StrictRequest(server.HTTPRequest):
    """cheroot's request, refusing the framings of request smuggling with 400.

    Cheroot keeps the last of several Content-Length fields, takes a continuation line
    as part of the field before it, and reads Transfer-Encoding over Content-Length.
    Its header reader answers 400 to a ValueError and closes the connection.
    """

    def read_request_headers(self) -> bool:
        self.header_reader = self._read_fields
        try:
            return bool(super().read_request_headers())  # type: ignore[no-untyped-call]
        finally:
            del self.header_reader  # a bound method: no cycle left to the collector

    def _read_fields(self, rfile: Any, fields: dict[bytes, bytes]) -> dict[bytes, bytes]:
        while (line := rfile.readline()) != CRLF:
            if not line:
                raise ValueError("Illegal end of headers.")
            if not line.endswith(CRLF):
                raise ValueError("HTTP requires CRLF terminators")
            if line[:1] in (b" ", b"\t"):
                raise ValueError("Obsolete line folding is not accepted.")
            name, colon, value = line.partition(b":")
            if not colon or not TOKEN.fullmatch(name):
                raise ValueError("Illegal header line.")
            key, value = name.title(), value.strip()
            if key == b"Content-Length" and key in fields:
                raise ValueError("More than one Content-Length header.")
            if key in JOINED and fields.get(key):
                value = fields[key] + b", " + value
            fields[key] = value
        self._check_framing(fields)
        return fields

    def _check_framing(self, fields: dict[bytes, bytes]) -> None:
        length = fields.get(b"Content-Length")
        if length is not None and not DIGITS.fullmatch(length):
            raise ValueError("Malformed Content-Length Header.")
        codings = fields.get(b"Transfer-Encoding")
        if codings is None:
            return
        if length is not None:
            raise ValueError("Content-Length and Transfer-Encoding together.")
        if self.response_protocol != "HTTP/1.1":
            raise ValueError("Transfer-Encoding in an HTTP/1.0 request.")
        names = [name.strip().lower() for name in codings.split(b",")]
        if b"chunked" in names and (names.count(b"chunked") > 1 or names[-1] != b"chunked"):
            raise ValueError("The chunked transfer coding must be last, and once.")


class GuardedConnection(server.HTTPConnection):
    """cheroot's connection, with a read-ahead buffer and the state of its head."""

    RequestHandlerClass = StrictRequest

    def __init__(self, http_server: Any, sock: socket.socket, _plain: Any = None) -> None:
        self.ahead = ReadAheadIO(sock)
        self.head_started: float | None = None  # time.monotonic() of its first byte
        self.closing_until: float | None = None  # refused: dropping input until then
        # In place of cheroot's file maker for plain sockets (no TLS here).
        super().__init__(http_server, sock, self._files)
        self.last_used = time.time()  # accepted now (cheroot expires idle connections)

    def _files(self, sock: socket.socket, mode: str, bufsize: int = DEFAULT_BUFFER_SIZE) -> Any:
        if "r" in mode:
            return ReadAheadReader(self.ahead, bufsize)
        return makefile.StreamWriter(sock, mode, bufsize)

    def connected(self) -> bool:
        """Whether this request's answer is still wanted: its client is there and the
        server is not stopping (a request waiting in its thread looks every so often)."""
        return bool(self.server.ready) and peer_open(self.socket)


class HeadFirstConnections(connections.ConnectionManager):
    """cheroot's connection manager, giving a worker only connections with a whole head.

    Its thread (the selector loop) reads what every new or idle connection sends, and
    hands the connection to a worker thread once the head is complete; it refuses the
    heads too large or too slow, and closes the refused connections.
    """

    # cheroot's internals this class works with (not in its type stubs).
    _selector: Any
    _stop_requested: bool
    _from_server_socket: Any
    _remove_invalid_sockets: Any

    def __init__(self, http_server: Any, max_header_size: int, header_timeout: float) -> None:
        super().__init__(http_server)
        self.max_header_size = max_header_size
        self.header_timeout = header_timeout

    def put(self, conn: GuardedConnection) -> None:
        """A worker is done with a request and keeps the connection (a worker thread):
        what its reader read ahead of the next request goes back before the rest."""
        conn.last_used = time.time()
        if conn.rfile.has_data():
            conn.ahead.pending[:0] = conn.rfile.read(len(conn.rfile.peek(1)))
        conn.head_started = None
        if conn.ahead.pending:
            self._received(conn, 0)
        else:
            self._watch(conn)

    def _run(self, expiration_interval: float) -> None:
        # cheroot's loop, where a readable connection is read here, not in a worker.
        last_expiration_check = time.time()
        while not self._stop_requested:
            try:
                active_list = list(self._selector.select(timeout=expiration_interval))
            except OSError:
                self._remove_invalid_sockets()
                continue
            for sock_fd, conn in active_list:
                if conn is self.server:
                    new_conn = self._from_server_socket(self.server.socket)
                    if new_conn is not None:
                        self._readable(new_conn)
                else:
                    self._selector.unregister(sock_fd)
                    self._readable(conn)
            now = time.time()
            if (now - last_expiration_check) > expiration_interval:
                self._expire(threshold=now - self.server.timeout)
                last_expiration_check = now

    def _watch(self, conn: GuardedConnection) -> None:
        self._selector.register(conn.socket.fileno(), selectors.EVENT_READ, conn)

    def _readable(self, conn: GuardedConnection) -> None:
        """Read what ``conn`` has (out of the selector, not blocking), and hand it on,
        refuse it, close it or watch it again."""
        try:
            data = os.read(conn.socket.fileno(), READ_CHUNK)
        except BlockingIOError:
            self._watch(conn)  # a new connection, nothing sent yet
            return
        except OSError:
            data = b""
        if not data or conn.closing_until is not None:
            if data:
                self._watch(conn)  # dropped: the connection is refused
            else:
                conn.close()  # the client went, or closed its side
            return
        conn.last_used = time.time()
        before = len(conn.ahead.pending)
        conn.ahead.pending += data
        self._received(conn, before - 2)

    def _received(self, conn: GuardedConnection, start: int) -> None:
        """New bytes of a head are in ``conn``'s buffer (from ``start`` on)."""
        pending = conn.ahead.pending
        length = head_length(pending, start)
        if 0 <= length <= self.max_header_size:
            conn.head_started = None
            self.server.process_conn(conn)
        elif length > 0 or len(pending) > self.max_header_size:
            if pending.find(b"\n", 0, self.max_header_size) < 0:
                self._refuse(conn, "414 URI Too Long", "request line too long")
            else:
                limit = f"{self.max_header_size} bytes"
                self._refuse(conn, "431 Request Header Fields Too Large", f"head over {limit}")
        else:
            if conn.head_started is None:
                conn.head_started = time.monotonic()
            self._watch(conn)

    def _refuse(self, conn: GuardedConnection, status: str, reason: str) -> None:
        """Answer ``status`` and close ``conn`` gently (its head will not be read)."""
        log.debug("%s:%s refused: %s", conn.remote_addr, conn.remote_port, reason)
        conn.ahead.pending = bytearray()
        body = f"{reason}\n".encode()
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=UTF-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            # A few hundred bytes on a connection that received no answer: they fit.
            os.write(conn.socket.fileno(), head.encode() + body)
            conn.socket.shutdown(socket.SHUT_WR)
        except OSError:
            conn.close()
            return
        conn.head_started = None
        conn.closing_until = time.monotonic() + LINGER_SECONDS
        self._watch(conn)

    def _expire(self, threshold: float) -> None:
        # cheroot's: close the connections idle since before ``threshold`` …
        super()._expire(threshold)  # type: ignore[misc]
        # … and the heads too slow to come, and the refused connections done lingering.
        now = time.monotonic()
        late = [
            (sock_fd, conn)
            for sock_fd, conn in self._selector.connections
            if conn is not self.server
            and (
                (conn.closing_until is not None and conn.closing_until < now)
                or (conn.head_started is not None and now - conn.head_started > self.header_timeout)
            )
        ]
        for sock_fd, conn in late:
            self._selector.unregister(sock_fd)
            if conn.closing_until is not None:
                conn.close()
            else:
                seconds = f"{self.header_timeout:g} s"
                self._refuse(conn, "408 Request Timeout", f"request head not received in {seconds}")
