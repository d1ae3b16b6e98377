"""What an auction's figures cost: the size of one of a vendor's bids items of the day, and the
write units the figures function pays for it in each transaction that adds to it, as auctions
add up over the day.

    .venv/bin/python bench/bids_item.py --auctions 200

Auctions of 10, 40 and 64 buyers that all bid (prices drawn, with a fixed seed, from 20 to 40,
20 to 45 and 10 to 100) are counted as `pingpost.auction.tallies` counts them, into the items
of a vendor's day (8, by partner ID); the one of the buyers whose ID is 0 modulo 8 is measured.
Its size is reckoned as DynamoDB does (attribute names and values; a number's bytes from its
significant digits), and its write units as a transaction's: twice a unit per KB begun.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "day#2026-12-07#bids#demo#0"
MIXES = ((10, (20, 40)), (40, (20, 45)), (64, (10, 100)))


def number_bytes(value: Decimal | int) -> int:
    digits = str(abs(Decimal(value)).normalize()).replace(".", "").lstrip("0") or "0"
    return 1 + math.ceil(len(digits) / 2)


def item_bytes(bids: dict[str, Decimal]) -> int:
    fixed = len("counter") + len(KEY) + len("expires_at") + number_bytes(1796601600)
    return fixed + sum(len(name) + number_bytes(value) for name, value in bids.items())


def measure(auctions: int) -> list[tuple[int, int, int, int, int]]:
    """Per mix: buyers, bytes after one auction and after all, write units for each."""
    from datetime import UTC, datetime

    from pingpost import auction
    from pingpost.store.figures import Figures

    at = datetime(2026, 12, 7, tzinfo=UTC)

    draw = random.Random(7)
    rows = []
    for buyers, (low, high) in MIXES:
        total, first = Figures(), 0
        for n in range(auctions):
            asked = {
                str(4400 + b): {
                    "outcome": "bid",
                    "price": Decimal(str(round(draw.uniform(low, high), 2))),
                }
                for b in range(buyers)
            }
            total += next(t.figures for t in auction.tallies("demo", at, asked) if t.key == KEY)
            if n == 0:
                first = item_bytes(dict(total.bids))
        last = item_bytes(dict(total.bids))
        rows.append((buyers, first, last, 2 * math.ceil(first / 1024), 2 * math.ceil(last / 1024)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--auctions", type=int, default=200)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    print(f"One of a vendor's 8 bids items after 1 and {args.auctions} auctions of its day")
    print("| buyers | bytes after 1 | write units | bytes after all | write units |")
    print("|--:|--:|--:|--:|--:|")
    for buyers, first, last, first_units, last_units in measure(args.auctions):
        print(f"| {buyers} | {first} | {first_units} | {last} | {last_units} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
