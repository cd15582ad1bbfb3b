"""Which network addresses a client's webhook may reach: public ones only.

A client names the URL its notifications are posted to, so a URL that reaches inside the house (the database,
Redis, a cloud metadata service, the admin of a router) would turn the webhook into a way in (SSRF). An address
is public when Python's `ipaddress` says it is global and it is not multicast, and, for the IPv6 forms that
carry an IPv4 address inside them, when that IPv4 address is public too, since a host or a translator on the
way hands the packet to it:

    IPv4-mapped      ::ffff:0:0/96      the last 32 bits (dual-stack sockets connect to it directly)
    IPv4-translated  ::ffff:0:0:0/96    the last 32 bits (SIIT, RFC 7915)
    IPv4-compatible  ::/96              the last 32 bits (deprecated, RFC 4291; `::1` and `::` are refused anyway)
    NAT64            64:ff9b::/96       the last 32 bits (RFC 6052)
    6to4             2002::/16          bits 16-48 (RFC 3056)
    Teredo           2001::/32          the server (bits 32-64) and the client, the bitwise inverse of the last 32
                                        bits (RFC 4380)

The local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) is refused whatever it carries: it is by definition not
global, and where its operator puts the IPv4 address inside it (RFC 6052 allows six positions) is not known.

Two places apply this (restructuring/services/notifications.py): a URL whose host is written as an address is
refused when it is registered (`WebhookEndpoint.clean`, `webhook_url_problem`), and at each send every address the
connection is about to be opened to is checked (core/outbound_http.py), so a name that resolves inside,
now or by a DNS answer that changes between two lookups (rebinding), is refused before any packet goes out.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")


def _last_32_bits(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, each with the name of the form that carries it."""
    if address in _MAPPED:
        return [("IPv4-mapped", _last_32_bits(address))]
    if address in _TRANSLATED:
        return [("IPv4-translated", _last_32_bits(address))]
    if address in _COMPATIBLE:
        return [("IPv4-compatible", _last_32_bits(address))]
    if address in _NAT64:
        return [("NAT64", _last_32_bits(address))]
    if address in _SIX_TO_FOUR:
        return [("6to4", ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF))]
    if address in _TEREDO:
        server = ipaddress.IPv4Address((int(address) >> 64) & 0xFFFFFFFF)
        client = ipaddress.IPv4Address(~int(address) & 0xFFFFFFFF)
        return [("Teredo client", client), ("Teredo server", server)]
    return []


def _ipv4_public(address: ipaddress.IPv4Address) -> bool:
    return address.is_global and not address.is_multicast


def address_refusal(address: str | IPAddress) -> str | None:
    """None when a webhook may connect to `address`; else why not, for the error message: "" when the address
    itself is not public, ", which is NAT64 of 127.0.0.1" when an IPv4 address inside it is not."""
    if isinstance(address, str):
        address = ipaddress.ip_address(address.split("%", 1)[0])  # a zone ("fe80::1%eth0") says nothing more
    if isinstance(address, ipaddress.IPv4Address):
        return None if _ipv4_public(address) else ""
    if address.is_loopback or address.is_unspecified:  # inside ::/96, but nothing is embedded in them
        return ""
    for form, inner in embedded_ipv4(address):
        if not _ipv4_public(inner):
            return f", which is {form} of {inner}"
    if address in _NAT64_LOCAL:
        return ", which is local-use NAT64"
    if not address.is_global or address.is_multicast:
        return ""
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names when it is written as one, in any form the system's resolver reads without
    asking DNS ("127.0.0.1", "::1", and the old IPv4 spellings "127.1", "0x7f.1", "2130706433"); None for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        return None
    return ipaddress.ip_address(str(infos[0][4][0]).split("%", 1)[0])


def webhook_url_problem(url: str, *, allow_private: bool = False) -> str | None:
    """Why a webhook URL is refused when it is registered, or None. Only what the URL itself says is judged here:
    its scheme, and its host when that is an address (or a name that is loopback by definition); what a name
    resolves to is checked at each connection. `allow_private` (WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS) lets any
    host through."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"not an http(s) URL: {url[:200]}"
    if allow_private:
        return None
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always the loopback interface
        return f"{host} is this machine: refused"
    address = literal_address(host)
    if address is None:
        return None
    refusal = address_refusal(address)
    if refusal is None:
        return None
    return f"{host} is a non-public address ({address}{refusal}): refused"
