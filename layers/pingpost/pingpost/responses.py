"""The answers of the pingPostLead API: the XML of the specification, or the same as JSON."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

from lxml import etree

from pingpost.answers import ERROR, Answer, Contact, money

STYLESHEET = "response.xsl"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
CONTENT_TYPE = "application/xml; charset=UTF-8"
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
# Elements whose children are a list (in JSON: an array).
_LISTS = frozenset({"hashes", "partners"})


@cache
def _not_xml() -> re.Pattern[str]:
    """What XML 1.0 cannot carry (controls, lone surrogates, U+FFFE/U+FFFF): left out of error
    messages. Named as what it is not (the complement of what XML allows, with the astral
    planes in it, took 5 ms to compile), and compiled by the first error (still about 1 ms:
    the surrogates' range), not by every cold start."""
    return re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _document(root: etree._Element, *, stylesheet: bool) -> bytes:
    etree.indent(root, space="  ")
    head = XML_DECLARATION
    if stylesheet:
        head += f'<?xml-stylesheet type="text/xsl" href="{STYLESHEET}"?>\n'.encode()
    return head + etree.tostring(root, encoding="UTF-8") + b"\n"


def _json(node: etree._Element) -> object:
    """An element as JSON: text as a string, attributes and children as keys, lists as arrays."""
    if node.tag in _LISTS:
        # Each item is an object, even one that shows nothing (a partner that shows no details).
        return [_json(child) or {} for child in node]
    if not len(node) and not node.attrib:
        return node.text or ""
    out: dict[str, object] = {str(k): str(v) for k, v in node.attrib.items()}
    out |= {str(child.tag): _json(child) for child in node}
    if node.text and node.text.strip():
        out["value"] = node.text
    return out


def _rendered(root: etree._Element, *, as_json: bool, stylesheet: bool) -> bytes:
    if as_json:
        return json.dumps({root.tag: _json(root)}, ensure_ascii=False).encode() + b"\n"
    return _document(root, stylesheet=stylesheet)


def answer_xml(answer: Answer, *, stylesheet: bool = True, as_json: bool = False) -> bytes:
    """<response> with status, lead_id and, when asked for, price, matches, hashes, partners.

    `as_json`: the same elements as {"response": {...}}, every value a string.
    """
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
    if answer.partners:
        partners = etree.SubElement(root, "partners")
        for contact in answer.partners:
            partner = etree.SubElement(partners, "partner")
            for detail in Contact._fields:
                if value := getattr(contact, detail):
                    etree.SubElement(partner, detail).text = value
    return _rendered(root, as_json=as_json, stylesheet=stylesheet)


def error_xml(message: str, *, stylesheet: bool = True, as_json: bool = False) -> bytes:
    """<response><status>Error</status><error>message</error></response> (or as JSON)."""
    root = etree.Element("response")
    etree.SubElement(root, "status").text = ERROR
    etree.SubElement(root, "error").text = _not_xml().sub("", message)
    return _rendered(root, as_json=as_json, stylesheet=stylesheet)


def stylesheet_xsl() -> bytes:
    """The XSL that shows an answer as a readable page in a browser."""
    return resources.files("pingpost").joinpath("data", STYLESHEET).read_bytes()


# Stylesheets and answers are parsed without DTDs, entities or network access, and a stylesheet
# may read or write no file and open no URL (document(), xsl:include, exsl:document).
_SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def compiled(xsl: bytes) -> etree.XSLT:
    """A stylesheet, compiled to run with no access to files or the network."""
    deny_all = etree.XSLTAccessControl.DENY_ALL  # type: ignore[attr-defined]  # not in the stubs
    return etree.XSLT(etree.fromstring(xsl, parser=_SAFE), access_control=deny_all)


@cache
def _transform() -> etree.XSLT:
    return compiled(stylesheet_xsl())


def page(document: bytes) -> str:
    """An answer as the HTML page its stylesheet makes, for browsers that no longer run XSLT."""
    return str(_transform()(etree.fromstring(document, parser=_SAFE)))


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
