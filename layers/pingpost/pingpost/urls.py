"""URLs the exchange sends a browser to: http(s), a public host name, no private address.

Browsers read hosts generously (`http://2130706433/` and `http://0x7f.1/` are 127.0.0.1), so
an IPv4 host is read here as the URL standard reads it before its address is judged.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

# Names that mean this machine or a private network, whatever DNS says.
_LOCAL_SUFFIXES: Final = ("localhost", ".localhost", ".local", ".internal", ".localdomain")
_LABEL: Final = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(?![0-9])")
_UNSAFE: Final = re.compile(r"[\s\\\x00-\x1f\x7f]")


class UnsafeUrl(ValueError):
    """A URL the exchange will not send a browser to; the message says why."""


def _ipv4_part(part: str) -> int | None:
    """One part of an IPv4 host as the URL standard reads it (decimal, 0x hex, 0 octal)."""
    try:
        if part[:2].lower() == "0x":
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10)
    except ValueError:
        return None


def _ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a host whose last part is a number stands for; raises if it is none."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    if not (last.isdigit() or re.fullmatch(r"0[xX][0-9a-fA-F]*", last)):
        return None
    numbers = [_ipv4_part(p) for p in parts] if "" not in parts and len(parts) <= 4 else [None]
    if any(n is None for n in numbers):
        raise UnsafeUrl("its host is neither a host name nor an IP address")
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise UnsafeUrl("its host is neither a host name nor an IP address")
    address = values[-1]
    for index, n in enumerate(values[:-1]):
        address += n << (8 * (3 - index))
    return ipaddress.IPv4Address(address)


def _check_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    mapped = getattr(address, "ipv4_mapped", None)
    if not (mapped or address).is_global:
        raise UnsafeUrl("its host is a private, loopback or link-local address")


def _check_host(host: str) -> None:
    if ":" in host:  # an IPv6 literal (urlsplit removed its brackets)
        try:
            _check_address(ipaddress.IPv6Address(host))
        except ipaddress.AddressValueError:
            raise UnsafeUrl("its host is neither a host name nor an IP address") from None
        return
    address = _ipv4(host)
    if address is not None:
        _check_address(address)
        return
    try:
        name = host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        raise UnsafeUrl("its host is not a valid host name") from None
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise UnsafeUrl("its host must be a public host name such as www.example.com")
    if name.endswith(_LOCAL_SUFFIXES):
        raise UnsafeUrl("its host names this machine or a private network")


def public_url(value: str) -> str:
    """`value` as a URL to send a browser to: https:// when it names no scheme.

    Raises UnsafeUrl unless it is http(s) with a public host and no user name or password.
    """
    if _UNSAFE.search(value):
        raise UnsafeUrl("it contains spaces, backslashes or control characters")
    url = value
    if "://" not in value:
        if _SCHEME.match(value):
            raise UnsafeUrl("it must be an http or https URL")
        url = "https:" + value if value.startswith("//") else "https://" + value
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeUrl("it must be an http or https URL")
    try:
        parts.port  # noqa: B018 (an invalid port raises here)
    except ValueError:
        raise UnsafeUrl("its port is not a number from 1 to 65535") from None
    if "@" in parts.netloc:
        raise UnsafeUrl("it may not carry a user name or password")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("it has no host name")
    _check_host(host)
    return url


def host_of(url: str) -> str:
    """The lower-cased host name of a URL `public_url` returned."""
    return (urlsplit(url).hostname or "").rstrip(".")
