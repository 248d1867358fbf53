"""The client address behind the proxies we trust (SPEC 13): never one the client chose.

configurable-http-proxy appends the address of whoever connected to it to
``X-Forwarded-For``; every trusted proxy in front of it does the same. Everything left
of what the outermost trusted proxy appended is what the client sent, so it is ignored,
and so is ``X-Real-Ip``, which no proxy of ours sets.
"""

from __future__ import annotations

import ipaddress


def client_address(forwarded_for: str | None, peer: str, trusted_hops: int) -> str:
    """The address the outermost of ``trusted_hops`` proxies saw.

    ``peer`` is who connected to us (the nearest proxy); ``trusted_hops`` counts the
    proxies between the client and us, ours included (0: nobody, use ``peer``). With
    fewer entries than that, the request came more directly: the leftmost one is it.
    """
    chain = [part.strip() for part in (forwarded_for or "").split(",") if part.strip()]
    chain.append(peer)
    return _ip(chain[max(0, len(chain) - 1 - trusted_hops)]) or _ip(peer) or "unknown"


def _ip(text: str) -> str | None:
    """``text`` as a canonical IP address (IPv4-mapped IPv6 as IPv4), or None."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)
