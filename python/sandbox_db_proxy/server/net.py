"""Small network helpers shared by the config loader, the listeners and the admin API.

- `parse_hostport("host:port")`: the `listen:` syntax. IPv6 literals must be bracketed
  (`[::1]:5432`), as in URIs (RFC 3986 section 3.2.2), because a bare `::1:5432` is ambiguous.
- `IpAllowlist`: `security.allowed_ips` as parsed networks; an empty list allows everyone.
  IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`, what a dual-stack `::` listener reports for an
  IPv4 client, RFC 4291 section 2.5.5.2) are checked as the IPv4 address they carry, so an
  IPv4 rule cannot be sidestepped by connecting through the IPv6 socket.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_hostport(value: str, default_port: int | None = None) -> tuple[str, int]:
    """Split "host:port" / "[v6]:port" / ":port" (all interfaces). Raises ValueError with a
    message fit for a config error. Port 0 is allowed (the OS picks one; used by tests)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected \"host:port\"")
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{value!r}: unterminated '[' in IPv6 address")
        host = text[1:end]
        rest = text[end + 1:]
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"{value!r}: {host!r} is not an IPv6 address") from None
        if not rest:
            port_text = None
        elif rest.startswith(":"):
            port_text = rest[1:]
        else:
            raise ValueError(f"{value!r}: expected ':port' after ']'")
    else:
        if text.count(":") > 1:
            raise ValueError(f"{value!r}: put IPv6 addresses in brackets, e.g. \"[::1]:5432\"")
        host, sep, port_text = text.partition(":")
        if not sep:
            port_text = None
        if not host:
            host = "0.0.0.0"
        elif not _valid_hostname(host):
            raise ValueError(f"{value!r}: {host!r} is not a valid host name or address")
    if port_text is None:
        if default_port is None:
            raise ValueError(f"{value!r}: missing ':port'")
        return host, default_port
    if not port_text.isdigit():
        raise ValueError(f"{value!r}: port {port_text!r} is not a number")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{value!r}: port {port} is out of range 0-65535")
    return host, port


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _valid_hostname(host: str) -> bool:
    # RFC 1123 section 2.1 labels; IPv4 dotted quads pass the same test.
    if len(host) > 253:
        return False
    for label in host.rstrip(".").split("."):
        if not label or len(label) > 63 or label.startswith("-") or label.endswith("-"):
            return False
        if not all(c.isalnum() or c in "-_" for c in label):
            return False
    return True


def parse_network(value: str) -> IPNetwork:
    """A CIDR (`10.0.0.0/8`, `fd00::/8`) or a bare address (= /32 or /128). Host bits set
    (`10.0.0.1/8`) is rejected: it usually means a typo, and silently widening or narrowing
    an allowlist is exactly the kind of surprise a security control must not have."""
    text = str(value).strip()
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            loose = ipaddress.ip_network(text, strict=False)
            raise ValueError(f"{text!r} has host bits set; did you mean {loose}?") from None
        raise ValueError(f"{text!r} is not an IP address or CIDR network") from None


def client_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer address as an ip_address, unwrapping IPv4-mapped IPv6; None if unparsable
    (e.g. a unix-socket peer, which has no IP)."""
    try:
        ip = ipaddress.ip_address(str(value).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class IpAllowlist:
    """`allowed(ip)`: True when the list is empty or a network contains the address.
    Results are memoised per address string (peers repeat; the set of peers is small in
    practice, and the memo is bounded)."""

    __slots__ = ("networks", "_memo")

    _MEMO_MAX = 4096

    def __init__(self, networks: Iterable[IPNetwork]):
        self.networks = tuple(networks)
        self._memo: dict[str, bool] = {}

    def allowed(self, ip: str) -> bool:
        if not self.networks:
            return True
        hit = self._memo.get(ip)
        if hit is not None:
            return hit
        addr = client_ip(ip)
        # Default deny: a peer whose address cannot be parsed matches no rule.
        ok = addr is not None and any(addr.version == n.version and addr in n for n in self.networks)
        if len(self._memo) >= self._MEMO_MAX:
            self._memo.clear()
        self._memo[ip] = ok
        return ok
