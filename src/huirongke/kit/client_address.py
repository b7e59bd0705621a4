"""The client's address, seen through trusted proxies only: the one place that reads X-Forwarded-For.

`HRK_FORWARDED_ALLOW_IPS` means what uvicorn's `--forwarded-allow-ips` means: a comma list of the
proxies' IP addresses and networks (CIDR), or `*` for every peer. Nothing is trusted by default.

- A request whose direct peer is not a trusted proxy is that peer: a forged X-Forwarded-For is ignored.
- From a trusted peer, the X-Forwarded-For hops are read from the right (each proxy appends the address
  it received the request from) and the first hop that is not itself a trusted proxy is the client.
  Hops further left were written by that client and are never believed.
- When every hop is trusted (`*`, or a chain of our own proxies) the left-most hop is the client, as in
  uvicorn: with `*` the proxy must overwrite the header, not append to what the client sent.
- A hop that is not an IP address ends the walk: the chain is broken, so the last trusted hop (the
  address reached so far) is used rather than text a client may have written.

`serve` runs uvicorn with `proxy_headers=False`, so the ASGI peer is always the socket's peer and this
module is the only translation (the rate limits, the login IP and the access log agree).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(raw: str) -> IPAddress | None:
    """An address as a proxy writes it (`1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::1`), IPv4-mapped IPv6
    folded to IPv4; None when it is not an address (`unknown`, an obfuscated RFC 7239 name, junk)."""
    text = raw.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has at least two colons
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class TrustedProxies:
    trust_all: bool
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, spec: str | None) -> TrustedProxies:
        """`HRK_FORWARDED_ALLOW_IPS`: `*`, or addresses and CIDR networks separated by commas. An entry
        that is neither raises ValueError (a typo must not silently trust nobody, or everybody)."""
        entries = [e.strip() for e in (spec or "").split(",") if e.strip()]
        if "*" in entries:
            return cls(True, ())
        networks: list[IPNetwork] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                problem = f"HRK_FORWARDED_ALLOW_IPS: not an IP address or network: {entry!r}"
                raise ValueError(problem) from None
        return cls(False, tuple(networks))

    def __contains__(self, address: object) -> bool:
        if self.trust_all:
            return True
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return any(address.version == n.version and address in n for n in self.networks)

    @property
    def empty(self) -> bool:
        return not self.trust_all and not self.networks

    def client(self, peer: str | None, forwarded_for: Sequence[str] | str | None) -> str | None:
        """The client address for a request from `peer` carrying these X-Forwarded-For header values."""
        if peer is None:
            return None
        peer_ip = parse_ip(peer)
        if peer_ip is None:
            return peer  # not an IP socket (a test client's name, a unix socket): nothing to translate
        if self.empty or peer_ip not in self:
            return str(peer_ip)
        hops = list(_hops([forwarded_for] if isinstance(forwarded_for, str) else forwarded_for or ()))
        current = peer_ip
        for raw in reversed(hops):
            hop = parse_ip(raw)
            if hop is None:
                return str(current)
            current = hop
            if hop not in self:
                return str(hop)
        return str(current)


def _hops(values: Iterable[str]) -> Iterable[str]:
    # Several X-Forwarded-For headers are one list, in order (RFC 7230 3.2.2).
    for value in values:
        for hop in value.split(","):
            if hop.strip():
                yield hop


@lru_cache(maxsize=8)
def trusted_proxies(spec: str | None) -> TrustedProxies:
    """The parsed setting, once per distinct value (the request path calls this on every request)."""
    return TrustedProxies.parse(spec)


def client_address(spec: str | None, peer: str | None, forwarded_for: Sequence[str] | None) -> str | None:
    return trusted_proxies(spec).client(peer, forwarded_for)
