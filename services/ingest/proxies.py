"""Which proxies the gateway believes: the client's address and scheme behind an ingress.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are plain request headers: any
client can send them. They mean something only when the connection comes from
a proxy we run (the ingress controller), named in ``PHOTCAL_TRUSTED_PROXIES``
as addresses or CIDRs. From such a proxy:

- the client is the right-most ``X-Forwarded-For`` entry that is not itself a
  trusted proxy (entries left of it are the client's own claims);
- the scheme is the proxy's ``X-Forwarded-Proto`` (``https`` behind TLS), which
  the login cookie's ``Secure`` flag and the same-origin checks depend on.

From any other peer both headers are ignored: the peer's address is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str | Iterable[str]) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 192.168.1.7"`` (or a list) as networks; a bad entry raises ValueError naming it."""
    items = text.replace(";", ",").split(",") if isinstance(text, str) else list(text)
    networks = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"PHOTCAL_TRUSTED_PROXIES: {item!r} is not an address or CIDR") from exc
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


class TrustedProxies:
    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks = tuple(networks)

    @classmethod
    @lru_cache(maxsize=8)
    def from_text(cls, text: str) -> TrustedProxies:
        return cls(parse_networks(text))

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, peer: str | None) -> bool:
        if not self.networks or not peer:
            return False
        address = _address(peer)
        return address is not None and any(address in net for net in self.networks)

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client's address: the peer's, unless a trusted proxy says whom it forwards."""
        if not self.trusts(peer) or not forwarded_for:
            return peer or "unknown"
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                address = _address(hop)
                return str(address) if address is not None else hop[:64]
        # every hop is one of our proxies: the left-most is as close to the client as we know
        return hops[0][:64] if hops else (peer or "unknown")

    def scheme(self, peer: str | None, forwarded_proto: str | None, own: str) -> str:
        """``https`` or ``http`` as the client used it: a trusted proxy's word, else our own socket's."""
        if self.trusts(peer) and forwarded_proto:
            # a chain of proxies may append: the first is the one the client spoke to
            first = forwarded_proto.split(",", 1)[0].strip().lower()
            if first in {"http", "https"}:
                return first
        return own
