"""URLs the exchange sends a browser to: http(s), a public host name, no private address.

Browsers read hosts generously, so a host is judged as the URL standard reads it: a name is
first mapped as browsers map it (`127。0。0。1` is `127.0.0.1`, fullwidth letters are letters,
a zero-width space is nothing); then a name that ends in a number is an IPv4 address however
it is written (`http://2130706433/` and `http://0x7f.1/` are 127.0.0.1), and an IPv6 address
that carries an IPv4 one (`[::ffff:127.0.0.1]`, NAT64 `[64:ff9b::7f00:1]`) is judged by it.

`location` turns a URL `public_url` accepted into the ASCII `Location` of a 303 with the outcome
in its query.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping
from typing import Final
from urllib.parse import SplitResult, quote, unquote_plus, urlencode, urlsplit

# Names that mean this machine or a private network, whatever DNS says.
_LOCAL_SUFFIXES: Final = ("localhost", ".localhost", ".local", ".internal", ".localdomain")
_LABEL: Final = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_WITH_AUTHORITY: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(?![0-9])")
_UNSAFE: Final = re.compile(r"[\s\\\x00-\x1f\x7f]")
# A host in brackets is an IPv6 address (no zone, no IPvFuture), then an optional port.
_BRACKETED: Final = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::[0-9]*)?")
# The last part of a host that makes it an IPv4 address (the URL standard's "ends in a number").
_NUMBER: Final = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")
# IPv6 prefixes whose address is only a wrapper of the IPv4 address in its last 32 bits.
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
# What a URI may carry as it is besides letters, digits and -._~ : the reserved characters, and
# % so that escapes already made are not escaped again.
_URI_SAFE: Final = "!#$%&'()*+,/:;=?@[]~"
# Query pairs are separated by & (and, for older parsers, ;).
_QUERY_SEPARATOR: Final = re.compile(r"([&;])")

_NOT_A_HOST: Final = "its host is neither a host name nor an IP address"
_PORT: Final = "its port is not a number from 1 to 65535"

type _Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """A URL the exchange will not send a browser to; the message says why."""


def _ipv4_part(part: str) -> int | None:
    """One part of an IPv4 host as the URL standard reads it (decimal, 0x hex, 0 octal)."""
    try:
        if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
            return int(part[2:] or "0", 16)
        if re.fullmatch(r"0[0-7]+", part):
            return int(part, 8)
        if re.fullmatch(r"0|[1-9][0-9]*", part):
            return int(part, 10)
    except ValueError:  # more digits than int() reads: far too large anyway
        pass
    return None


def _ends_in_number(host: str) -> bool:
    return _NUMBER.fullmatch(_parts(host)[-1]) is not None


def _parts(host: str) -> list[str]:
    """A host's dot-separated parts, less one empty last part (the root)."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    return parts


def _ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a host whose last part is a number stands for; raises if it is none."""
    if not _ends_in_number(host):
        return None
    parts = _parts(host)
    numbers = [_ipv4_part(p) for p in parts] if len(parts) <= 4 else [None]
    values = [n for n in numbers if n is not None]
    if len(values) < len(numbers):
        raise UnsafeUrl(_NOT_A_HOST)
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise UnsafeUrl(_NOT_A_HOST)
    address = values[-1]
    for index, n in enumerate(values[:-1]):
        address += n << (8 * (3 - index))
    return ipaddress.IPv4Address(address)


def _judged(address: _Address) -> list[_Address]:
    """The addresses that decide whether `address` is public: the IPv4 ones it carries."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in _IPV4_COMPATIBLE or address in _NAT64:  # only a wrapper of its last 32 bits
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    carried = [address.sixtofour] if address.sixtofour is not None else []
    if address.teredo is not None:
        carried.extend(address.teredo)
    return [address, *carried]


def _problem(address: _Address) -> str | None:
    """Why a browser may not be sent to `address` (one `_judged` returned), or None."""
    if not address.is_global or (
        isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    ):
        return "its host is a private, loopback or link-local address"
    if address.is_multicast or address.is_reserved:
        return "its host is a multicast or reserved address"
    return None


def address_problem(address: _Address) -> str | None:
    """Why `address` is not public (loopback, private, link-local, metadata...), or None."""
    return next(filter(None, map(_problem, _judged(address))), None)


def _check_address(address: _Address) -> None:
    problem = address_problem(address)
    if problem is not None:
        raise UnsafeUrl(problem)


def _split(url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError:  # unbalanced brackets, or characters NFKC turns into / ? # @ :
        raise UnsafeUrl(_NOT_A_HOST) from None


def _host(netloc: str) -> tuple[str, bool]:
    """The host of a netloc without user name, as written, and whether it was in brackets."""
    if "[" in netloc or "]" in netloc:
        bracketed = _BRACKETED.fullmatch(netloc)
        if bracketed is None:
            raise UnsafeUrl(_NOT_A_HOST)
        return bracketed[1], True
    return netloc.partition(":")[0], False


def _mapped(host: str) -> str:
    """A host name as browsers map it (UTS #46): lower-case ASCII, IDNA-encoded.

    Unicode dots become dots, ignored characters (zero-width space, soft hyphen) go,
    compatibility forms (fullwidth letters and digits) become their plain letters and digits.
    That is Python's "idna" codec (IDNA 2003), which knows Unicode 3.2 only: a code point
    unassigned there is refused, since today's tables may map it to a dot or a digit, or drop it.
    """
    if host.isascii():
        return host.lower()
    import stringprep  # (with unicodedata: only for a host that is not ASCII)

    if any(stringprep.in_table_a1(c) for c in host):
        raise UnsafeUrl("its host is not a valid host name")
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UnsafeUrl("its host is not a valid host name") from None


def _without_root(name: str) -> str:
    return name[:-1] if name.endswith(".") else name


def _name_problem(name: str) -> str | None:
    """Why `name` (mapped, without the root dot) is no public host name, or None."""
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return "its host must be a public host name such as www.example.com"
    if name.endswith(_LOCAL_SUFFIXES):
        return "its host names this machine or a private network"
    return None


def is_host_name(name: str) -> bool:
    """Whether `name` is a public DNS host name as `public_url` accepts one, written canonically.

    That is lower-case ASCII labels of letters, digits and inner hyphens (IDNA names in their
    xn-- form), at least two of them, no root dot, not a name of this machine or a private
    network, and not ending in a number (a browser reads that as an IPv4 address).
    """
    return not _ends_in_number(name) and _name_problem(name) is None


def _check_host(host: str, bracketed: bool) -> None:
    if bracketed:
        try:
            _check_address(ipaddress.IPv6Address(host))
        except ipaddress.AddressValueError:
            raise UnsafeUrl(_NOT_A_HOST) from None
        return
    name = _mapped(host)
    address = _ipv4(name)
    if address is not None:
        _check_address(address)
        return
    problem = _name_problem(_without_root(name))
    if problem is not None:
        raise UnsafeUrl(problem)


def public_url(value: str, trusted: Collection[str] = ()) -> str:
    """`value` as a URL to send a browser to: https:// when it names no scheme.

    Raises UnsafeUrl unless it is http(s) with a public host, or a host of `trusted` (names the
    operator allows at private addresses, lower-case, as `host_of` reads them), and no user
    name or password.
    """
    if _UNSAFE.search(value):
        raise UnsafeUrl("it contains spaces, backslashes or control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeUrl("it is not valid Unicode text (it has a lone surrogate)") from None
    url = value
    if not _WITH_AUTHORITY.match(value):  # no scheme:// of its own (one later is not its own)
        if _SCHEME.match(value):
            raise UnsafeUrl("it must be an http or https URL")
        url = "https:" + value if value.startswith("//") else "https://" + value
    parts = _split(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeUrl("it must be an http or https URL")
    try:
        port = parts.port
    except ValueError:
        raise UnsafeUrl(_PORT) from None
    if port == 0:
        raise UnsafeUrl(_PORT)
    if "@" in parts.netloc:
        raise UnsafeUrl("it may not carry a user name or password")
    host, bracketed = _host(parts.netloc)
    if not host:
        raise UnsafeUrl("it has no host name")
    if not trusted or host_of(url) not in trusted:
        _check_host(host, bracketed)
    return url


def host_of(url: str) -> str:
    """The host of a URL `public_url` returned, as `location` sends the browser to it.

    Lower-case, without the root dot; a name is mapped and IDNA-encoded (`bücher.example` is
    `xn--bcher-kva.example`, `www。example。com` is `www.example.com`); an IPv6 address comes
    without its brackets.
    """
    host, bracketed = _host(urlsplit(url).netloc)
    return host.lower() if bracketed else _without_root(_mapped(host))


def _uri(text: str) -> str:
    """IRI text as URI text: non-ASCII and unsafe characters percent-encoded, nothing else."""
    return quote(text, safe=_URI_SAFE)


def _without_pairs(query: str, names: set[str]) -> str:
    """The raw query without the pairs whose percent-decoded name is one of `names` (casefolded).

    The pairs kept, and the separators between them, are kept exactly as written.
    """
    pieces = _QUERY_SEPARATOR.split(query)  # pair, separator, pair, ...
    kept: list[str] = []
    for index in range(0, len(pieces), 2):
        pair = pieces[index]
        if unquote_plus(pair.partition("=")[0]).casefold() in names:
            continue
        if kept:
            kept.append(pieces[index - 1])
        kept.append(pair)
    return "".join(kept)


def location(target: str, outcome: Mapping[str, str], trusted: Collection[str] = ()) -> str:
    """The `Location` of a 303 sending a browser to `target` with `outcome` in its query.

    `target` is a URL `public_url` accepted with `trusted` (it is checked again: raises
    UnsafeUrl otherwise).
    The result is ASCII: a non-ASCII host is IDNA-encoded as `host_of` reads it, non-ASCII and
    unsafe characters are percent-encoded. The target's own query is kept as written, less any
    pair named like an outcome key (so it cannot shadow the outcome); the outcome's pairs are
    URL-encoded after it, and the fragment follows.
    """
    url = public_url(target, trusted)
    parts = urlsplit(url)
    netloc = parts.netloc
    if not netloc.isascii():  # a name (an IPv6 address is ASCII); a port is ASCII digits
        host, _ = _host(netloc)
        netloc = _mapped(host) + netloc[len(host) :]
    names = {name.casefold() for name in outcome}
    kept = _uri(_without_pairs(parts.query, names))
    query = "&".join(text for text in (kept, urlencode(outcome, errors="replace")) if text)
    result = f"{parts.scheme}://{netloc}{_uri(parts.path) or '/'}"
    if query:
        result += "?" + query
    if "#" in url:
        result += "#" + _uri(parts.fragment)
    return result
