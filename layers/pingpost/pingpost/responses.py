"""The XML answers of the pingPostLead API, exactly as the specification shows them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from lxml import etree

STYLESHEET = "response.xsl"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
CONTENT_TYPE = "application/xml; charset=UTF-8"
MATCHED, UNMATCHED, ERROR = "Matched", "Unmatched", "Error"


@dataclass(frozen=True, slots=True)
class Hash:
    """One <hash> of a ping answer: a matched partner's hashed identity value."""

    value_type: str
    hash_type: str
    value: str


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful answer: Matched or Unmatched, with what the request asked to be told."""

    status: str
    lead_id: int
    price: Decimal | None = None
    matches: int | None = None
    hashes: tuple[Hash, ...] = ()

    def stored(self) -> dict[str, Any]:
        """The answer as plain values, to replay it to a repeated post."""
        return {
            "status": self.status,
            "lead_id": self.lead_id,
            "price": self.price,
            "matches": self.matches,
            "hashes": [[h.value_type, h.hash_type, h.value] for h in self.hashes],
        }

    @classmethod
    def restored(cls, values: dict[str, Any]) -> Answer:
        """The answer `stored` saved."""
        matches = values.get("matches")
        return cls(
            status=str(values["status"]),
            lead_id=int(values["lead_id"]),
            price=values.get("price"),
            matches=None if matches is None else int(matches),
            hashes=tuple(Hash(*h) for h in values.get("hashes", [])),
        )


def money(amount: Decimal) -> str:
    """A price as the spec writes it: 25, 25.50, 2.55."""
    cents = amount.quantize(Decimal("0.01"))
    return str(cents.to_integral()) if cents == cents.to_integral() else str(cents)


def _document(root: etree._Element, *, stylesheet: bool) -> bytes:
    etree.indent(root, space="  ")
    head = XML_DECLARATION
    if stylesheet:
        head += f'<?xml-stylesheet type="text/xsl" href="{STYLESHEET}"?>\n'.encode()
    return head + etree.tostring(root, encoding="UTF-8") + b"\n"


def answer_xml(answer: Answer, *, stylesheet: bool = True) -> bytes:
    """<response> with status, lead_id and, when asked for, price, matches and hashes."""
    root = etree.Element("response")
    etree.SubElement(root, "status").text = answer.status
    etree.SubElement(root, "lead_id").text = str(answer.lead_id)
    if answer.price is not None:
        etree.SubElement(root, "price").text = money(answer.price)
    if answer.matches is not None:
        etree.SubElement(root, "matches").text = str(answer.matches)
    if answer.hashes:
        hashes = etree.SubElement(root, "hashes")
        for h in answer.hashes:
            node = etree.SubElement(hashes, "hash", ValueType=h.value_type, HashType=h.hash_type)
            node.text = h.value
    return _document(root, stylesheet=stylesheet)


def error_xml(message: str, *, stylesheet: bool = True) -> bytes:
    """<response><status>Error</status><error>message</error></response>."""
    root = etree.Element("response")
    etree.SubElement(root, "status").text = ERROR
    etree.SubElement(root, "error").text = message
    return _document(root, stylesheet=stylesheet)


def stylesheet_xsl() -> bytes:
    """The XSL that shows an answer as a readable page in a browser."""
    return resources.files("pingpost").joinpath("data", STYLESHEET).read_bytes()


@cache
def _transform() -> etree.XSLT:
    return etree.XSLT(etree.fromstring(stylesheet_xsl()))


def page(document: bytes) -> str:
    """An answer as the HTML page its stylesheet makes, for browsers that no longer run XSLT."""
    return str(_transform()(etree.fromstring(document)))


def _quality(accept: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media:
            weights[media.lower()] = max(q, weights.get(media.lower(), 0.0))
    return weights


def wants_page(accept: str | None) -> bool:
    """Whether the client prefers HTML to XML, as a browser navigating to a form's result does.

    API clients send no Accept, */* or an XML type, and keep getting the XML of the spec.
    """
    weights = _quality(accept or "")
    html = weights.get("text/html", 0.0)
    xml = max(weights.get(t, 0.0) for t in ("application/xml", "text/xml", "*/*", "application/*"))
    return html > xml
