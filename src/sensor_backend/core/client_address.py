"""Who the client is, read through trusted proxies (for per-client limits).

``X-Forwarded-For`` is read right to left, skipping hops that are themselves trusted proxies
(nginx, the gateway); the first untrusted hop is the client. A peer that is not a trusted
proxy is the client itself and its ``X-Forwarded-For`` is ignored, so a client cannot choose
its own rate-limit bucket.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(trusted: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR ranges, parsed once."""
    return tuple(ipaddress.ip_network(t, strict=False) for t in trusted)


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(peer: str, forwarded_for: str, trusted: tuple[Network, ...]) -> str:
    """The client's address given the TCP peer and the ``X-Forwarded-For`` value."""
    if not trusted or not _trusted(peer, trusted):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            return peer
        if not _trusted(address, trusted):
            return address
    return peer
