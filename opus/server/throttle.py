"""Failed authentications: counted per client address and per user name, and refused
for a growing time past a few free ones.

Each failure counts on two counters, its client address's and its user name's (HTTP
Basic; a Bearer token names nobody), kept in the database (storage/throttle.py) so that
every process of the server counts together. Past AUTH_FREE_FAILURES, each failure
refuses its counters for 1 s, then 2, 4… up to AUTH_DELAY_MAX; a counter without a
failure for AUTH_FAILURE_WINDOW is forgotten.

While a counter refuses, every request with credentials from its address or for its
name is answered 429 with Retry-After at once, its credentials not checked, a correct
token included: a guess teaches nothing then, and no thread is held (a delay slept in
the request would hold one per guess). Every failure is logged (WARNING) with its
address, and the user's name when such a user exists (a name that is nobody's may be
a token typed in the wrong place), never a token.

The address is the connection's (REMOTE_ADDR). X-Forwarded-For is the client's to
choose, so it counts only when the connection comes from one of TRUSTED_PROXIES (a
reverse proxy in front of OPUS, which appends the address it received from): then the
nearest address in it that is not a trusted proxy is the client's. It never counts for
identity. IPv6 addresses count by /64, what one host is commonly given. Names are kept
as hashes. AUTH_THROTTLE_BY_ADDRESS off leaves the names' counters only.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from opus.core.errors import TooManyRequests
from opus.core.times import utcnow
from opus.server.storage.throttle import FailureStore
from opus.settings import Settings

log = logging.getLogger("opus.auth")

# The two counters of a request (address, name); "" is no counter.
Keys = tuple[str, str]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_key(address: str) -> str:
    """The counter of a client address (IPv6 by /64; "" for none)."""
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "address:" + address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"address:{ip.ipv4_mapped}"
        return f"address:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"address:{ip}"


def client_address(
    remote_addr: str, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> str:
    """The client's address for counting failures: the connection's (REMOTE_ADDR), or,
    when that is one of the TRUSTED_PROXIES, the nearest address of X-Forwarded-For that
    is not a trusted proxy (proxies append the address they received from)."""
    if not trusted or not forwarded_for or not _in(remote_addr, trusted):
        return remote_addr
    for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
        if not _in(hop, trusted):
            return hop if _is_address(hop) else remote_addr
    return remote_addr


def _in(address: str, networks: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def name_key(name: str | None) -> str:
    """The counter of a user name, hashed ("" for none)."""
    if name is None:
        return ""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"user:{digest[:40]}"


class Throttle:
    """The failed-authentication rule of one server."""

    def __init__(
        self,
        settings: Settings,
        store: FailureStore,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock or (lambda: utcnow())
        self.free = settings.AUTH_FREE_FAILURES
        self.delay_max = settings.AUTH_DELAY_MAX
        self.window = timedelta(seconds=settings.AUTH_FAILURE_WINDOW)
        self.by_address = settings.AUTH_THROTTLE_BY_ADDRESS

    def keys(self, address: str, name: str | None) -> Keys:
        """The counters of a request from ``address`` for the user ``name`` (if any)."""
        return (address_key(address) if self.by_address else "", name_key(name))

    def refusal_seconds(self, failures: int) -> float:
        """How long ``failures`` failures refuse a counter (0: not at all)."""
        beyond = failures - self.free
        if beyond <= 0:
            return 0.0
        return float(min(2 ** min(beyond - 1, 32), self.delay_max))

    def check(self, refused_until: datetime | None) -> None:
        """TooManyRequests while a refusal lasts (``refused_until`` in the future)."""
        if refused_until is None:
            return
        left = (refused_until - self.clock()).total_seconds()
        if left > 0:
            raise TooManyRequests(
                "too many failed authentications: try again later", math.ceil(left)
            )

    def failed(self, keys: Keys, address: str, user_name: str | None) -> None:
        """Count and log a failed authentication (``user_name``: of a user that exists)."""
        counted = {}
        try:
            counted = self.store.record(
                [key for key in keys if key], self.clock(), self.window, self.refusal_seconds
            )
        except Exception:
            # A failure not counted (a database fault) is still a 401, never a 500.
            log.exception("failed authentication from %s not counted", address or "?")
        refused = [until for _failures, until in counted.values() if until is not None]
        log.warning(
            "authentication failed from %s%s%s",
            address or "an unknown address",
            f" as user {user_name}" if user_name else "",
            f"; refused for {self.refusal_seconds(max(f for f, _ in counted.values())):g} s"
            if refused
            else "",
        )
