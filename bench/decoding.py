"""Decoding one request, by body kind: JSON and XML against form fields, the baseline.

    .venv/bin/python bench/decoding.py --rounds 200

The same lead (every field of the table at its example value, the full mode's request) is
encoded as form fields, as the spec's XML and as JSON {"Request": {...}}; then each is padded
with a long Comments-like extra field up to the body cap, and a JSON body of nothing but
brackets (the worst case of the nesting check) is decoded too. Times are medians; compare the
ratios to the form baseline measured in the same run, not the absolute times.
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


def bodies(padding: int) -> dict[str, tuple[str, bytes]]:
    fields = lead(padding)
    return {
        "form": (FORM, urlencode(fields).encode()),
        "xml": ("text/xml", as_xml(fields)),
        "json": ("application/json", json.dumps({"Request": fields}).encode()),
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
    for label, hostile in (
        ("json nested to the cap (refused)", b"[" * cap),
        ("json of brackets only (refused)", b"[]" * (cap // 2)),
    ):
        spent = median_us(refused("application/json", hostile, cap), args.rounds)
        print(f"| {label} | {len(hostile)} | {spent:.0f} | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
