"""Requests as publishers send them: a query string, a form post, or the XML <Request>."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from lxml import etree

from pingpost.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from pingpost.fields import HASH_TYPES, HASH_VALUE_TYPES, MATCH_HASH_TYPES
from pingpost.matching import HashedValue

MAX_FIELDS = 400
MAX_HASHED_VALUES = 500
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
XML_TYPES = ("text/xml", "application/xml")


@dataclass(frozen=True)
class Request:
    """The fields of a request by name, and the XML-only lists of hashed partner values."""

    fields: dict[str, str]
    matches: tuple[HashedValue, ...] = ()
    selected: tuple[HashedValue, ...] = field(default=())


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower-cased, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for count, (name, value) in enumerate(pairs):
        if count == MAX_FIELDS:
            raise InvalidRequest([f"Too many fields: at most {MAX_FIELDS} are accepted"])
        out[name] = value  # a repeated name keeps its last value, as PHP does
    return out


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(["The request is not valid UTF-8"]) from None


def query(raw_query: str) -> dict[str, str]:
    """Fields of a URL query string."""
    try:
        return _pairs(parse_qsl(raw_query, keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError:
        raise InvalidRequest(["The query string is not valid UTF-8"]) from None


def form(body: bytes, content_type: str) -> dict[str, str]:
    """Fields of an application/x-www-form-urlencoded or multipart/form-data body."""
    if media_type(content_type) == FORM:
        return query(_text(body))
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise InvalidRequest(["The multipart/form-data body could not be read"])
    pairs = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and part.get_filename() is None:
            payload = part.get_payload(decode=True)
            pairs.append((name, _text(payload if isinstance(payload, bytes) else b"")))
    return _pairs(pairs)


_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


def _hashed(
    nodes: Iterable[etree._Element], tag: str, hash_types: tuple[str, ...]
) -> tuple[HashedValue, ...]:
    out = []
    for node in nodes:
        if not isinstance(node.tag, str) or node.tag != tag:
            continue
        value_type = (node.get("ValueType") or "").strip()
        hash_type = (node.get("HashType") or "").strip()
        value = (node.text or "").strip()
        if value_type not in HASH_VALUE_TYPES:
            raise InvalidRequest(
                [f"Invalid {tag}: ValueType must be one of: {', '.join(HASH_VALUE_TYPES)}"]
            )
        if hash_type not in hash_types:
            raise InvalidRequest(
                [f"Invalid {tag}: HashType must be one of: {', '.join(hash_types)}"]
            )
        if not value:
            raise InvalidRequest([f"Invalid {tag}: the value is empty"])
        out.append(HashedValue(value_type, hash_type, value))
        if len(out) > MAX_HASHED_VALUES:
            raise InvalidRequest([f"Too many {tag} values: at most {MAX_HASHED_VALUES}"])
    return tuple(out)


def _text_of(node: etree._Element) -> str:
    return "".join(str(part) for part in node.itertext())


def xml(body: bytes) -> Request:
    """Fields of the XML <Request>: control tags at the top, lead fields in <Data>."""
    if not body.strip():
        raise InvalidRequest(["The XML request is empty"])
    try:
        root = etree.fromstring(body, parser=_PARSER)
    except etree.XMLSyntaxError as error:
        raise InvalidRequest([f"The XML request is not well-formed: {error.msg}"]) from None
    info: Any = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:
        raise InvalidRequest(["The XML request may not have a DOCTYPE"])
    if root.tag != "Request":
        raise InvalidRequest(["The XML root element must be <Request>"])
    pairs: list[tuple[str, str]] = []
    matches: tuple[HashedValue, ...] = ()
    selected: tuple[HashedValue, ...] = ()
    for node in root:
        if not isinstance(node.tag, str):
            continue
        if node.tag == "Data":
            pairs.extend((c.tag, _text_of(c)) for c in node if isinstance(c.tag, str))
        elif node.tag == "Matches":
            matches = _hashed(node, "Match", MATCH_HASH_TYPES)
        elif node.tag == "Match_With_Partner_Hashes":
            selected = _hashed(node, "Selected_Partner_Hash", HASH_TYPES)
        else:
            pairs.append((node.tag, _text_of(node)))
    return Request(_pairs(pairs), matches, selected)


def decode(
    route: str, method: str, content_type: str | None, raw_query: str, body: bytes, max_bytes: int
) -> Request:
    """The request sent to `route` (/api.php, /apiXML.php, /ping, /post or /full)."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"The request body is over {max_bytes} bytes")
    fields = query(raw_query)
    kind = media_type(content_type)
    if method == "GET" or (not body.strip() and route != "/apiXML.php"):
        return Request(fields)
    looks_xml = kind in XML_TYPES or kind.endswith("+xml") or body.lstrip().startswith(b"<")
    if route == "/apiXML.php" or (route != "/api.php" and looks_xml):
        sent = xml(body)
        return Request(fields | sent.fields, sent.matches, sent.selected)
    if kind in (FORM, MULTIPART):
        return Request(fields | form(body, content_type or FORM))
    if route == "/api.php" and looks_xml:
        raise UnsupportedMediaType("Send XML requests to /apiXML.php")
    raise UnsupportedMediaType(
        f"Unsupported Content-Type {kind or '(none)'}: send {FORM}, {MULTIPART} or XML"
    )
