"""Decoding one request, by body kind: JSON and XML against form fields, the baseline.

    .venv/bin/python bench/decoding.py --rounds 200

The same lead (every field of the table at its example value, the full mode's request) is
encoded as form fields, as multipart/form-data, as the spec's XML and as JSON {"Request": {...}};
then each is padded with a long Comments-like extra field up to the body cap. Hostile bodies at
the cap are decoded too (each must be refused): JSON of nothing but brackets (the worst case of
the nesting check), and multipart bodies of header parameters, nested comments or tiny parts.
Times are medians; compare the ratios to the form baseline measured in the same run, not the
absolute times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from urllib.parse import urlencode

from lxml import etree

from pingpost.config import settings
from pingpost.decoding import decode
from pingpost.errors import InvalidRequest
from pingpost.fields import FIELDS

FORM = "application/x-www-form-urlencoded"
BOUNDARY = "b0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def lead(padding: int = 0) -> dict[str, str]:
    """Every field at its example value, plus an extra field `padding` characters long."""
    fields = {f.name: f.example for f in FIELDS}
    if padding:
        fields["Padding"] = "x" * padding
    return fields


def as_xml(fields: dict[str, str]) -> bytes:
    root = etree.Element("Request")
    data = etree.SubElement(root, "Data")
    for name, value in fields.items():
        etree.SubElement(data, name).text = value
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def as_multipart(parts: list[str]) -> bytes:
    """A multipart body of parts given as `headers\r\n\r\nvalue`."""
    return ("".join(f"--{BOUNDARY}\r\n{p}\r\n" for p in parts) + f"--{BOUNDARY}--\r\n").encode()


def named(name: str, value: str, disposition: str = "") -> str:
    return f'Content-Disposition: form-data; name="{name}"{disposition}\r\n\r\n{value}'


def bodies(padding: int) -> dict[str, tuple[str, bytes]]:
    fields = lead(padding)
    return {
        "form": (FORM, urlencode(fields).encode()),
        "multipart": (MULTIPART, as_multipart([named(k, v) for k, v in fields.items()])),
        "xml": ("text/xml", as_xml(fields)),
        "json": ("application/json", json.dumps({"Request": fields}).encode()),
    }


def hostile(cap: int) -> dict[str, tuple[str, bytes]]:
    """Bodies just under `cap` bytes that decoding must refuse, by what they try."""
    tiny, cap = named("f", "v"), cap - 1024
    return {
        "json nested to the cap": ("application/json", b"[" * cap),
        "json of brackets only": ("application/json", b"[]" * (cap // 2)),
        "multipart of header parameters": (
            MULTIPART,
            as_multipart([named("Zip", "1", "; a=b" * (cap // 5))]),
        ),
        "multipart of nested comments": (
            MULTIPART,
            as_multipart([named("Zip", "1", "; c=" + "(" * cap)]),
        ),
        "multipart of tiny parts": (MULTIPART, as_multipart([tiny] * (cap // (len(tiny) + 16)))),
    }


def median_us(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def refused(content_type: str, body: bytes, cap: int) -> Callable[[], object]:
    def work() -> object:
        try:
            return decode("POST", content_type, "", body, cap)
        except InvalidRequest as refusal:
            return refusal

    return work


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args(argv)
    cap = settings().max_body_bytes
    print("| body | bytes | µs (median) | x form |")
    print("| --- | --- | --- | --- |")
    for label, padding in (("a lead", 0), ("at the cap", cap - 12_000)):
        sized = bodies(padding)
        took = {k: median_us(refused(t, body, cap), args.rounds) for k, (t, body) in sized.items()}
        for kind, (_, body) in sized.items():
            ratio = took[kind] / took["form"]
            print(f"| {kind}, {label} | {len(body)} | {took[kind]:.0f} | {ratio:.2f} |")
    for label, (content_type, body) in hostile(cap).items():
        spent = median_us(refused(content_type, body, cap), args.rounds)
        ratio = spent / took["form"]
        print(f"| {label} (refused) | {len(body)} | {spent:.0f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
