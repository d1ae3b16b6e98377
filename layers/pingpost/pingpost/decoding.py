"""Requests as publishers send them: a query string, form fields, the XML <Request> or JSON.

One module of over 400 lines on purpose: every format ends in the same `Request`, through the
same limits and helpers (field pairs, canonical names, hashed values, problems); split by
format, each part would import those from the others.
"""

import binascii
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from lxml import etree

from pingpost.errors import InvalidRequest, PayloadTooLarge
from pingpost.fields import (
    DATA,
    HASH_TYPES,
    HASH_VALUE_TYPES,
    MATCH,
    MATCH_HASH_TYPES,
    MATCHES,
    MAX_FIELDS,
    MAX_HASHED_VALUE_LENGTH,
    MAX_HASHED_VALUES,
    MAX_HEADER_PARAMETERS,
    MAX_JSON_DEPTH,
    MAX_PART_HEADER_BYTES,
    PROTOCOL,
    REQUEST,
    SELECTED,
    SELECTED_HASH,
    TYPE,
    YES_NO,
    Kind,
    table,
)
from pingpost.identity import HashedValue

MAX_PROBLEMS = 10  # the first few are enough to act on
_ID_LISTS = frozenset(f.name for f in PROTOCOL.fields if f.kind is Kind.ID_LIST)
MULTIPART = "multipart/form-data"


class Request(NamedTuple):
    """The fields of a request by name, and the lists of hashed partner values (XML or JSON)."""

    fields: dict[str, str]
    matches: tuple[HashedValue, ...] = ()
    selected: tuple[HashedValue, ...] = ()
    # What is wrong with a body that could be read (a key sent twice, a list where a value
    # belongs): refused once the request's Key and Format are known, so the refusal is
    # answered as the request asked.
    problems: tuple[str, ...] = ()


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower-cased, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def shown(name: str) -> str:
    """A name the request gave, as a message may quote it: printable, at most 64 characters."""
    return "".join(c for c in name[:64] if c.isprintable()) or "(unnamed)"


def _pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for count, (name, value) in enumerate(pairs):
        if count == MAX_FIELDS:
            raise InvalidRequest([f"Too many fields: at most {MAX_FIELDS} are accepted"])
        base, bracket, _ = name.partition("[")
        if bracket and name.endswith("]") and base in _ID_LISTS:
            # PHP's array notation (Skip_Partner_ID[]=142&Skip_Partner_ID[]=225): one list.
            out[base] = f"{out[base]},{value}" if out.get(base) else value
            continue
        out[name] = value  # a repeated name keeps its last value, as PHP does
    return out


def canonical(fields: dict[str, str]) -> dict[str, str]:
    """The fields under their TYPE's table names: an alias is read as its field, unless both
    are sent."""
    aliases = table(fields).aliases
    out = {name: value for name, value in fields.items() if name not in aliases}
    for alias, name in aliases.items():
        if alias in fields and not out.get(name, "").strip():
            out[name] = fields[alias]
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


def urlencoded(body: bytes) -> dict[str, str]:
    """Fields of an application/x-www-form-urlencoded body (whatever its label said)."""
    text = _text(body)
    if "=" not in text:
        raise InvalidRequest(
            ["The request body is neither XML, JSON nor form fields (name=value&name=value)"]
        )
    return query(text.strip())


# A header parameter: `; name=value` or `; name="quoted \" value"` (RFC 7578, 9110).
_PARAMETER = re.compile(
    r'\s*;\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s"]*)\s*'
)
_QUOTED_PAIR = re.compile(r"\\(.)")


def _parameters(header: str, what: str) -> dict[str, str]:
    """The parameters of a header value (`form-data; name="Zip"`), lower-cased names.

    Read left to right in one pass, at most MAX_HEADER_PARAMETERS of them: a header of
    thousands of parameters, or of nested comments, is refused instead of being parsed.
    """
    out: dict[str, str] = {}
    position = header.find(";")
    if position < 0:
        return out
    count = 0
    while header[position:].strip(" \t;"):  # a trailing `;` ends the list like its end
        found = _PARAMETER.match(header, position)
        if found is None:
            raise InvalidRequest([f"The {what} header could not be read"])
        count += 1
        if count > MAX_HEADER_PARAMETERS:
            raise InvalidRequest([f"The {what} header has over {MAX_HEADER_PARAMETERS} parameters"])
        name, value = found.groups()
        if value.startswith('"'):
            value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
        out[name.lower()] = value
        position = found.end()
    return out


def _boundary(content_type: str) -> bytes:
    boundary = _parameters(content_type, "Content-Type").get("boundary", "")
    # RFC 2046: 1 to 70 characters, none of them blank at the end.
    if not 0 < len(boundary) <= 70 or not boundary.isascii() or boundary.endswith(" "):
        raise InvalidRequest(["The multipart/form-data boundary is missing or invalid"])
    return boundary.encode("ascii")


def _part_headers(block: bytes) -> dict[str, str]:
    """The headers of one part by lower-cased name (a folded line continues the one before)."""
    if len(block) > MAX_PART_HEADER_BYTES:
        raise InvalidRequest(
            [f"The headers of a multipart part are over {MAX_PART_HEADER_BYTES} bytes"]
        )
    headers: dict[str, str] = {}
    last = ""
    for line in _text(block).replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and last:
            headers[last] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise InvalidRequest(["A multipart part has a header line without a name"])
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers


def _part(part: bytes) -> tuple[str, bytes] | None:
    """The name and value of one part of a form, or None for a file or a part without a name."""
    if part.startswith((b"\r\n", b"\n")):
        block, content = b"", part[2 if part.startswith(b"\r") else 1 :]
    else:
        # The headers end at the first blank line, CRLF or bare LF, whichever comes first.
        found = [
            (at, size)
            for at, size in (
                (part.find(b"\r\n\r\n", 0, MAX_PART_HEADER_BYTES + 4), 4),
                (part.find(b"\n\n", 0, MAX_PART_HEADER_BYTES + 2), 2),
            )
            if at >= 0
        ]
        end, size = min(found) if found else (-1, 0)
        if end < 0:
            if len(part) > MAX_PART_HEADER_BYTES:
                _part_headers(part)  # refused: over the size
            raise InvalidRequest(["A multipart part has no blank line after its headers"])
        block, content = part[:end], part[end + size :]
    headers = _part_headers(block)
    disposition = _parameters(headers.get("content-disposition", ""), "Content-Disposition")
    if "name" not in disposition or {"filename", "filename*"} & set(disposition):
        return None
    encoding = headers.get("content-transfer-encoding", "").lower()
    try:
        if encoding == "base64":
            content = binascii.a2b_base64(content)
        elif encoding == "quoted-printable":
            content = binascii.a2b_qp(content)
    except binascii.Error:
        raise InvalidRequest(["A multipart part is not valid base64"]) from None
    return disposition["name"], content


def form(body: bytes, content_type: str) -> dict[str, str]:
    """Fields of a multipart/form-data body, read in one pass and refused at the first limit."""
    delimiter = b"--" + _boundary(content_type)
    position = body.find(delimiter)
    while position > 0 and body[position - 1 : position] != b"\n":
        position = body.find(delimiter, position + 1)  # in the preamble, not at a line's start
    if position < 0:
        raise InvalidRequest(["The multipart/form-data body does not start with its boundary"])
    pairs: list[tuple[str, str]] = []
    for count in range(MAX_FIELDS + 1):
        position += len(delimiter)
        if body.startswith(b"--", position):
            return _pairs(pairs)  # the closing delimiter; what follows is ignored
        line_end = body.find(b"\n", position)
        following = body.find(b"\n" + delimiter, line_end)
        if line_end < 0 or following < 0:
            raise InvalidRequest(["The multipart/form-data body ends before its closing boundary"])
        if count == MAX_FIELDS:
            break
        end = following - 1 if body[following - 1 : following] == b"\r" else following
        named = _part(body[line_end + 1 : max(end, line_end + 1)])
        if named is not None:
            pairs.append((named[0], _text(named[1])))
        position = following + 1
    raise InvalidRequest([f"Too many fields: at most {MAX_FIELDS} are accepted"])


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
    items: Iterable[tuple[object, object, object]], tag: str, hash_types: tuple[str, ...]
) -> tuple[HashedValue, ...]:
    """Checked hashed values from (ValueType, HashType, value), as XML or JSON gave them."""
    out = []
    for item in items:
        value_type, hash_type, value = (v.strip() if isinstance(v, str) else "" for v in item)
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
        if len(value) > MAX_HASHED_VALUE_LENGTH:
            raise InvalidRequest(
                [f"Invalid {tag}: a value is over {MAX_HASHED_VALUE_LENGTH} characters"]
            )
        out.append(HashedValue(value_type, hash_type, value))
        if len(out) > MAX_HASHED_VALUES:
            raise InvalidRequest([f"Too many {tag} values: at most {MAX_HASHED_VALUES}"])
    return tuple(out)


def _xml_hashed(nodes: Iterable[etree._Element], tag: str) -> Iterator[tuple[str, str, str]]:
    for node in nodes:
        if isinstance(node.tag, str) and node.tag == tag:
            yield node.get("ValueType") or "", node.get("HashType") or "", node.text or ""


def _text_of(node: etree._Element) -> str:
    return "".join(str(part) for part in node.itertext())


# .NET's StringWriter declares UTF-16 whatever bytes are sent; such a body is UTF-8 text.
_UTF16_DECLARED = re.compile(
    rb"""^(\s*<\?xml[^>]*?encoding\s*=\s*["'])utf-16(["'])""", re.IGNORECASE
)


def _utf8_declared(body: bytes) -> bytes:
    """The body with a UTF-16 declaration said as UTF-8 when its bytes are not UTF-16."""
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in body[:64]:
        return body
    return _UTF16_DECLARED.sub(rb"\1UTF-8\2", body, count=1)


def _hashed_or_problem(
    items: Iterable[tuple[object, object, object]],
    tag: str,
    hash_types: tuple[str, ...],
    problems: list[str],
) -> tuple[HashedValue, ...]:
    try:
        return _hashed(items, tag, hash_types)
    except InvalidRequest as refused:
        problems.extend(refused.messages)
        return ()


def xml(body: bytes) -> Request:
    """Fields of the XML <Request>: control tags at the top, lead fields in <Data>."""
    try:
        root = etree.fromstring(_utf8_declared(body), parser=_PARSER)
    except etree.XMLSyntaxError as error:
        raise InvalidRequest([f"The XML request is not well-formed: {error.msg}"]) from None
    info: Any = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:
        raise InvalidRequest(["The XML request may not have a DOCTYPE"])
    if root.tag != REQUEST:
        raise InvalidRequest([f"The XML root element must be <{REQUEST}>"])
    pairs: list[tuple[str, str]] = []
    matches: tuple[HashedValue, ...] = ()
    selected: tuple[HashedValue, ...] = ()
    problems: list[str] = []
    for node in root:
        if not isinstance(node.tag, str):
            continue
        if node.tag == DATA:
            pairs.extend((c.tag, _text_of(c)) for c in node if isinstance(c.tag, str))
        elif node.tag == MATCHES:
            items = _xml_hashed(node, MATCH)
            matches = _hashed_or_problem(items, MATCH, MATCH_HASH_TYPES, problems)
        elif node.tag == SELECTED:
            items = _xml_hashed(node, SELECTED_HASH)
            selected = _hashed_or_problem(items, SELECTED_HASH, HASH_TYPES, problems)
        else:
            pairs.append((node.tag, _text_of(node)))
    return Request(_pairs(pairs), matches, selected, tuple(problems))


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# Where JSON converters of XML put an element's attributes and its text.
_ATTRIBUTE_HOLDERS = ("@attributes", "$", "_attributes", "attributes")
_ATTRIBUTE_PREFIXES = ("", "@", "@_", "-", "_")
_TEXT_KEYS = ("value", "Value", "#text", "_", "$t", "_text", "#")


def _unique(problems: list[str]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """The JSON parser's object hook: a key sent twice is a problem; too many fields, refused."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len(pairs) > MAX_FIELDS:
            raise InvalidRequest([f"Too many fields: at most {MAX_FIELDS} are accepted"])
        out: dict[str, Any] = {}
        for name, value in pairs:
            if name in out and len(problems) < MAX_PROBLEMS:
                problems.append(f"The JSON request names {shown(name)} twice")
            out[name] = value
        return out

    return hook


def _no_constant(name: str) -> Any:
    raise InvalidRequest([f"The JSON request is not well-formed: {name} is not a JSON number"])


def _too_deep(document: Any) -> bool:
    """Whether objects and lists nest deeper than MAX_JSON_DEPTH (stops at the first that does)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth > MAX_JSON_DEPTH:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _json_document(body: bytes, problems: list[str]) -> Any:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest(["The request is not valid UTF-8"]) from None
    too_deep = InvalidRequest([f"The JSON request is nested deeper than {MAX_JSON_DEPTH} levels"])
    try:
        # Numbers stay the text they were sent as: validation reads them like any other value.
        document = json.loads(
            text,
            object_pairs_hook=_unique(problems),
            parse_int=str,
            parse_float=str,
            parse_constant=_no_constant,
        )
    except RecursionError:
        # The parser recurses once per level: the interpreter's limit stops it, long before
        # the stack would, within a few milliseconds at the body cap (bench/decoding.py).
        raise too_deep from None
    except json.JSONDecodeError as error:
        raise InvalidRequest(
            [
                f"The JSON request is not well-formed: {error.msg}"
                f" (line {error.lineno}, column {error.colno})"
            ]
        ) from None
    if isinstance(document, dict | list) and _too_deep(document):
        raise too_deep
    try:
        # \ud800 escapes make strings no UTF-8 can carry (nor DynamoDB store); a valid pair
        # (an emoji) is one character once parsed. Only a text with such escapes is checked.
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(["The request is not valid UTF-8"]) from None
    return document


def _json_value(name: str, value: Any, yes_no: frozenset[str]) -> str:
    """A JSON value as the text a form would have sent (see docs/leadtypes); `yes_no`: the
    fields of the request's type whose values are Yes and No."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        if name in yes_no:
            return YES_NO[0] if value else YES_NO[1]
        return "1" if value else "0"
    if value is None or value in ({}, []):
        return ""  # null, and the empty element of an XML converter: not sent
    # A list of partner IDs (numbers arrive as their text) is the comma-delimited list.
    id_list = name in _ID_LISTS
    if id_list and isinstance(value, list) and all(isinstance(i, str) for i in value):
        return ",".join(value)
    kind = "an object" if isinstance(value, dict) else "a list"
    raise InvalidRequest(
        [f"Invalid value for {shown(name)}: must be text, a number or true/false, not {kind}"]
    )


def _json_attribute(item: dict[str, Any], name: str) -> object:
    attributes = dict(item)
    for holder in _ATTRIBUTE_HOLDERS:
        if isinstance(item.get(holder), dict):
            attributes |= item[holder]
    return next((attributes[p + name] for p in _ATTRIBUTE_PREFIXES if p + name in attributes), None)


def _json_hashed(value: Any, tag: str) -> Iterator[tuple[object, object, object]]:
    """A list of {ValueType, HashType, value}, or the {tag: ...} object of an XML converter."""
    if value in ("", None):
        return
    if isinstance(value, dict) and tag in value:
        value = value[tag]
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            raise InvalidRequest(
                [f"Invalid {tag}: each must be an object with ValueType, HashType and value"]
            )
        text = next((item[k] for k in _TEXT_KEYS if k in item), None)
        yield _json_attribute(item, "ValueType"), _json_attribute(item, "HashType"), text


def json_request(body: bytes) -> Request:
    """Fields of a JSON request: {"Request": {...}} or a flat object, with the XML's structure."""
    problems: list[str] = []
    document = _json_document(body, problems)
    if not isinstance(document, dict):
        raise InvalidRequest(["The JSON request must be an object of fields"])
    inner = document.get(REQUEST)
    if isinstance(inner, dict):
        document = {k: v for k, v in document.items() if k != REQUEST} | inner
    pairs: list[tuple[str, str]] = []
    matches: tuple[HashedValue, ...] = ()
    selected: tuple[HashedValue, ...] = ()
    code = document.get(TYPE)
    typed = isinstance(code, (str, int)) and not isinstance(code, bool)
    yes_no = table({TYPE: code} if typed else {}).yes_no
    for name, value in document.items():
        if name.startswith(("?", "#")):
            continue  # an XML converter's declaration ("?xml") or comment ("#comment")
        if name == MATCHES:
            matches = _hashed_or_problem(
                _json_hashed(value, MATCH), MATCH, MATCH_HASH_TYPES, problems
            )
        elif name == SELECTED:
            selected = _hashed_or_problem(
                _json_hashed(value, SELECTED_HASH), SELECTED_HASH, HASH_TYPES, problems
            )
        else:
            given = value.items() if name == DATA and isinstance(value, dict) else [(name, value)]
            for field_name, field_value in given:
                try:
                    pairs.append((field_name, _json_value(field_name, field_value, yes_no)))
                except InvalidRequest as refused:
                    problems.extend(refused.messages)
    return Request(_pairs(pairs), matches, selected, tuple(problems[:MAX_PROBLEMS]))


def _start(body: bytes) -> bytes:
    """The first byte of the body that is not blank (after a UTF-8 byte order mark)."""
    return body.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip()[:1]


def decode(
    method: str, content_type: str | None, raw_query: str, body: bytes, max_bytes: int
) -> Request:
    """The fields of a request: its query string, merged with (and under) those of its body.

    A body is read by its content, because publishers' code mislabels bodies: `<` starts the
    XML <Request>, `{` a JSON request (`[`, a JSON mistake); anything else is form fields
    (multipart when so labelled).
    """
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"The request body is over {max_bytes} bytes")
    fields = query(raw_query)
    start = _start(body)
    if method == "GET" or not start:
        return Request(canonical(fields))
    if start == b"<":
        sent = xml(body)
    elif start in (b"{", b"["):
        sent = json_request(body)
    elif media_type(content_type) == MULTIPART:
        sent = Request(form(body, content_type or MULTIPART))
    else:
        sent = Request(urlencoded(body))
    problems = sent.problems
    if fields.get("Key", sent.fields.get("Key")) != sent.fields.get("Key", fields.get("Key")):
        # Which one did the publisher mean? Neither is guessed.
        problems += ("Key is sent in the query string and in the body with different values",)
    return Request(canonical(fields | sent.fields), sent.matches, sent.selected, problems)
