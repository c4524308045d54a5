"""The address an agent advertises when it binds every interface: the one private IPv4 address of the host,
as Consul finds it (go-sockaddr's RFC 6890 private ranges and RFC 6598 shared space; loopback and link-local
left out). Imports: stdlib.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct

SIOCGIFADDR = 0x8915
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class AddressDetectionError(Exception):
    """No single private IPv4 address to advertise; `str()` is Consul's message."""


def interface_ipv4_addresses() -> list[str]:
    """The IPv4 address of each network interface that has one (Linux)."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            with contextlib.suppress(OSError):
                reply = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
                found.append(socket.inet_ntoa(reply[20:24]))
    return found


def private_ipv4(addresses: list[str]) -> str:
    """The one private address among `addresses`, else AddressDetectionError with Consul's text."""
    private = []
    for text in addresses:
        address = ipaddress.IPv4Address(text)
        if address.is_loopback or address.is_link_local or address.is_unspecified:
            continue
        if (address.is_private or address in _SHARED) and text not in private:
            private.append(text)
    if not private:
        raise AddressDetectionError("No private IPv4 address found")
    if len(private) > 1:
        raise AddressDetectionError("Multiple private IPv4 addresses found. Please configure one with 'bind' "
                                    "and/or 'advertise'.")
    return private[0]
