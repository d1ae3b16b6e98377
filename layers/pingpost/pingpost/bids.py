"""What a buyer that bids is sent, and what its answers say.

A bid request carries the partial lead: every field of the lead but those the field table
marks personal (a name, email, phone, street address, IP address, comments) and the consent
evidence that identifies the consumer (TrustedForm certificate, LeadiD token, browser, landing
page), renamed and completed as the buyer's `bid` endpoint asks. A post carries the whole lead,
with the token (and any other values) the winning bid answered.

An answer is read by its endpoint's paths (`models.AnswerPaths`), whatever shape the buyer
gives it: JSON (dotted paths), XML (XPath, read without namespaces, so that a default namespace
changes nothing; no external DTD is loaded, no entity expanded, nothing fetched) or a
form-encoded body (field names); a body starting with `{` or `[` is read as JSON whatever its
Content-Type says. A JSON or form path may name alternatives, `reason|errors`: the first that finds
something (in XPath, `|` is its own union). What `accepted` finds means yes when it is one of
the endpoint's `accepted_values` (any case), by default true, 1, yes, accepted or success. A
price is a number or a string of one, with any number of decimals, taken to the cent below; 0,
null or none is no bid; anything else (a word, a list, a negative number, more than
9,999,999,999.99) is a bad answer, as is a token over 256 characters or with characters that
cannot be sent back. Reasons are kept printable and at most 200 characters long.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from functools import cache
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import parse_qs

from lxml import etree

from pingpost.endpoints import BuyerEndpoint, Outbound
from pingpost.fields import Table, table
from pingpost.models import Partner
from pingpost.reasons import BAD_ANSWER, BID, NO_BID

MAX_TOKEN = 256
MAX_REASON = 200
# The largest bid a buyer may make (a partner's price is Money: 12 digits, 2 decimals).
MAX_PRICE = Decimal("9999999999.99")
_NONE: Mapping[str, str] = MappingProxyType({})
DEFAULT_ACCEPTED = frozenset({"true", "1", "yes", "accepted", "success"})
_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
# Never in a bid request: personal data, and the consent evidence that leads to it (a
# TrustedForm certificate replays the consumer's session; an address, a browser, a landing
# page's query identify them). Whether the consumer consented goes.
_IDENTIFYING = frozenset({"ip", "user_agent", "landing_page", "trusted_form_url", "leadid_token"})


@cache
def withheld(lead_table: Table) -> frozenset[str]:
    """The fields of a lead type never in a bid request: its personal data and identifying
    consent evidence."""
    fields = lead_table.by_name
    return frozenset(
        name
        for name in lead_table.data_fields
        if fields[name].pii or fields[name].consent in _IDENTIFYING
    )


# Characters no token or reason keeps: controls, format characters (bidi overrides among
# them), surrogates, unassigned code points and noncharacters (U+FFFE, U+FFFF).
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Cn", "Co"})


def named(endpoint: Outbound, sent: Mapping[str, str]) -> dict[str, str]:
    """Fields as the endpoint names them (only those it names, when it names any), with its
    static fields added."""
    names = endpoint.fields
    renamed = {names[k]: v for k, v in sent.items() if k in names} if names else dict(sent)
    return renamed | endpoint.static


def bid_fields(partner: Partner, data: Mapping[str, str], *, test: bool) -> dict[str, str]:
    """What a bidding partner is asked about a lead: its fields less the personal ones."""
    assert partner.bid is not None
    lead_table = table(data)
    kept_back = withheld(lead_table)
    sent = {n: data[n] for n in lead_table.data_fields if n in data and n not in kept_back}
    if test:
        sent["Test_Lead"] = "1"
    return named(partner.bid, sent)


def json_path(document: Any, path: str) -> Any:
    """The value at a dotted path of a JSON document (`result.price`, `errors.0`), or None."""
    for step in path.split("."):
        if isinstance(document, list) and step.isdigit() and int(step) < len(document):
            document = document[int(step)]
        elif isinstance(document, dict) and step in document:
            document = document[step]
        else:
            return None
    return document


class Unreadable(ValueError):
    """An answer whose body cannot be read as the format it appears to be."""


def _document(body: bytes, content_type: str) -> tuple[str, Any]:
    """The answer parsed: ("json", value), ("xml", root without namespaces) or ("form", dict).

    The body says what it is before the Content-Type does: buyers label JSON text/html or
    text/plain often enough."""
    kind = content_type.lower()
    start = body.lstrip()[:1]
    if start in (b"{", b"[") or ("json" in kind and start != b"<"):
        try:
            return "json", json.loads(body)
        except (ValueError, RecursionError):
            raise Unreadable("the answer is not JSON") from None
    if start == b"<" or "xml" in kind:
        try:
            root = etree.fromstring(body, parser=_XML)
        except etree.XMLSyntaxError:
            raise Unreadable("the answer is not XML") from None
        return "xml", _local_names(root)
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise Unreadable("the answer is not text") from None
    return "form", {k: v if len(v) > 1 else v[0] for k, v in parse_qs(text).items()}


def _local_names(root: etree._Element) -> etree._Element:
    """The tree with every element and attribute named without its namespace."""
    for node in root.iter():
        if isinstance(node.tag, str):
            node.tag = etree.QName(node).localname
        for name in [str(a) for a in node.attrib if str(a).startswith("{")]:
            value = node.attrib.pop(name)
            node.attrib[etree.QName(name).localname] = value
    etree.cleanup_namespaces(root)
    return root


def _found(kind: str, document: Any, path: str) -> Any:
    """What `path` finds in the document: None, a value, or a list of values."""
    if not path:
        return None
    if kind != "xml":  # alternatives, "reason|errors": the first that finds something
        for one in path.split("|"):
            found = json_path(document, one.strip()) if kind == "json" else document.get(one)
            if found not in (None, "", [], {}):
                return found
        return None
    try:
        found = document.xpath(path)
    except etree.XPathError:
        raise Unreadable(f"the path {path!r} is not an XPath") from None
    if isinstance(found, list):
        values = [
            "".join(map(str, item.itertext())).strip()
            if isinstance(item, etree._Element)
            else str(item)
            for item in found
        ]
        # One node found is a value, as in JSON; several, a list (a reason's parts)
        return values[0] if len(values) == 1 else (values or None)
    return found


def clean(text: str, most: int = MAX_REASON) -> str:
    """Text a buyer wrote, as the lead keeps and shows it: without unprintable characters (a
    terminal's escape, a bidi override, a lone surrogate), at most `most` characters."""
    kept = "".join(c for c in text if unicodedata.category(c) not in _UNPRINTABLE)
    return kept if len(kept) <= most else kept[: most - 1] + "…"


def _text(value: Any, depth: int = 0) -> str:
    """A reason's part as text: objects as their values ("zip: invalid"), lists joined."""
    if value is None or depth > 4:
        return ""
    if isinstance(value, list):
        return "; ".join(part for item in value if (part := _text(item, depth + 1)))
    if isinstance(value, dict):
        return ": ".join(part for item in value.values() if (part := _text(item, depth + 1)))
    return str(value).strip()


def _shown(value: Any) -> str:
    """A buyer's value as a message quotes it: short and printable."""
    return clean(repr(value), 40)


def _price(value: Any) -> Decimal | None:
    """A bid's amount, to the cent below (a buyer is never charged more than it bid): None for
    none, 0 or null; raises ValueError for anything not a price."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"the price {_shown(value)} is not a number")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"the price {_shown(value)} is not a number") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_PRICE:
        raise ValueError(f"the price {_shown(value)} is not a price")
    cents = amount.quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    return cents if cents else None


def _value(name: str, value: Any) -> str:
    """A value to send back (a token): printable text of at most 256 characters."""
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        raise ValueError(f"the {name} is not a value")
    text = str(value).strip()
    if len(text) > MAX_TOKEN:
        raise ValueError(f"the {name} is over {MAX_TOKEN} characters")
    if clean(text, MAX_TOKEN) != text:
        raise ValueError(f"the {name} has characters that cannot be sent back")
    return text


class Reading(NamedTuple):
    """What a buyer's answer says, by its endpoint's paths."""

    accepted: bool
    price: Decimal | None = None  # None: no price, or 0
    token: str = ""
    reason: str = ""
    carried: Mapping[str, str] = _NONE  # post field -> value
    problem: str = ""  # why the answer is a bad one, or ""


def read(
    endpoint: BuyerEndpoint,
    body: bytes,
    content_type: str = "",
    carry: Mapping[str, str] | None = None,
) -> Reading:
    """Read a buyer's answer by the endpoint's paths (and the `carry` paths: post field -> path
    in this answer, for a bid whose post wants them)."""
    paths = endpoint.answer
    try:
        kind, document = _document(body, content_type)
        reason = clean(_text(_found(kind, document, paths.reason)))
        said = _found(kind, document, paths.accepted)
        price = _price(_found(kind, document, paths.price))
        token = _value("token", _found(kind, document, paths.token))
        carried = {
            post_field: _value(post_field, _found(kind, document, path))
            for post_field, path in (carry or {}).items()
        }
    except ValueError as problem:  # Unreadable too
        return Reading(False, problem=str(problem))
    if not paths.accepted:
        accepted = price is not None
    else:
        yes = {v.casefold() for v in endpoint.accepted_values} or DEFAULT_ACCEPTED
        accepted = isinstance(said, str | int | float | bool) and _text(said).casefold() in yes
    return Reading(accepted, price, token, reason, carried)


class Offer(NamedTuple):
    """What a buyer's answer to a bid request comes to."""

    outcome: str  # BID, NO_BID or BAD_ANSWER
    price: Decimal | None = None
    token: str = ""
    carried: Mapping[str, str] = _NONE
    reason: str = ""

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> Offer:
        """The offer a lead's record of a bid keeps (pingpost.auction)."""
        price = record.get("price")
        return cls(
            str(record["outcome"]),
            None if price is None else Decimal(price),
            str(record.get("token", "")),
            dict(record.get("carried", {})),
            str(record.get("reason", "")),
        )


def _refused(status: int, reason: str) -> str:
    """Why an answer of a status other than 2xx is no bid or no sale."""
    later = " (try later)" if status == 429 or status >= 500 else ""
    return f"HTTP {status}{later}" + (f": {reason}" if reason else "")


def offer(partner: Partner, status: int, body: bytes, content_type: str = "") -> Offer:
    """A bid, no bid or a bad answer, from the buyer's answer to its bid request."""
    assert partner.bid is not None and partner.post is not None
    reading = read(partner.bid, body, content_type, partner.post.carry)
    if not 200 <= status < 300:
        return Offer(NO_BID, reason=_refused(status, "" if reading.problem else reading.reason))
    if reading.problem:
        return Offer(BAD_ANSWER, reason=reading.problem)
    if not reading.accepted:
        return Offer(NO_BID, reason=reading.reason or "declined")
    if reading.price is None:
        return Offer(NO_BID, reason=reading.reason or "no price")
    if partner.post.token_field and not reading.token:
        return Offer(BAD_ANSWER, reason="a bid without its token")
    return Offer(BID, reading.price, reading.token, reading.carried, reading.reason)


def post_fields(
    partner: Partner, lead_id: int, data: Mapping[str, str], won: Offer, *, test: bool
) -> dict[str, str]:
    """What a winning buyer is posted: the whole lead as it names it, its token and what else
    its bid answered that it wants back."""
    assert partner.post is not None
    sent = {name: data[name] for name in table(data).data_fields if name in data}
    sent["Lead_ID"] = str(lead_id)
    if test:
        sent["Test_Lead"] = "1"
    fields = named(partner.post, sent)
    if partner.post.token_field:
        fields[partner.post.token_field] = won.token
    return fields | dict(won.carried)


def accepted(partner: Partner, status: int, body: bytes, content_type: str = "") -> str | None:
    """None when the buyer's answer to a post accepts the lead, else why not."""
    assert partner.post is not None
    reading = read(partner.post, body, content_type)
    if not 200 <= status < 300:
        return _refused(status, "" if reading.problem else reading.reason)
    if not partner.post.answer.accepted:
        return None  # without a path to read, the status says it
    if reading.problem:
        return f"{BAD_ANSWER}: {reading.problem}"
    if not reading.accepted:
        return reading.reason or "rejected"
    return None
