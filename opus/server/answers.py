"""Writing whole HTTP answers on connections the Parker holds, without blocking it.

The Parker (parking.py) answers many parked requests in a row from its one thread: a
send that would block (a client slow to read) is finished by a thread of its own within
SEND_TIMEOUT, or the connection is ended rather than left with half an answer.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from email.utils import formatdate

# A client that does not read its answer gets this long before its connection goes.
SEND_TIMEOUT = 30.0


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The Date header's value, formatted once a second (answers go out in bursts)."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def close(sock: socket.socket, close_connection: bool) -> None:
    """Done with our descriptor; with Connection: close, end the connection for the
    client too (the HTTP server then sees its end of file and drops its side)."""
    if close_connection:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
    sock.close()


def send_rest(sock: socket.socket, data: bytes, close_connection: bool) -> None:
    deadline = time.monotonic() + SEND_TIMEOUT
    try:
        while data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Never read: end the connection rather than leave a half answer.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                return
            _, writable, _ = select.select([], [sock], [], remaining)
            if writable:
                try:
                    data = data[sock.send(data) :]
                except BlockingIOError:
                    continue
    except OSError:
        return
    finally:
        if not data:
            close(sock, close_connection)
        else:
            sock.close()


def send_answer(sock: socket.socket, data: bytes, close_connection: bool) -> None:
    """Write ``data`` on ``sock`` (non-blocking), finishing a partial write in a thread;
    then let go of our descriptor (ending the connection with Connection: close)."""
    try:
        sent = sock.send(data)
    except BlockingIOError:
        sent = 0
    except OSError:
        sock.close()  # the client went
        return
    if sent < len(data):
        # A slow reader: finish in a thread of its own, not to hold the others.
        threading.Thread(
            target=send_rest, args=(sock, data[sent:], close_connection), daemon=True
        ).start()
        return
    close(sock, close_connection)
