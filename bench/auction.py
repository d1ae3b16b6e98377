"""One auction over 1, 10 and 50 buyers that bid, each answering after 20 ms.

    .venv/bin/python bench/auction.py --sizes 1 10 50 --rounds 30

The buyers are demo bidders (local/pingpost_local/bidder.py) on loopback, in a process of
their own so that their work is not this one's; this process runs `pingpost.auction.ask` as a
ping does, over warm connections (a first auction of each size, not counted, opens them). For
each size: the auction's wall time (median) as a ratio of one buyer's latency (the floor: no
auction can answer before its buyers do), and this process's CPU per buyer asked.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LATENCY = 0.02
SERVE = """
import sys, time
from pingpost_local.bidder import DemoBidder
bidders = [DemoBidder(20, 40, latency={latency}) for _ in range({count})]
for bidder in bidders:
    bidder.start()
print(" ".join(b.url for b in bidders), flush=True)
sys.stdin.read()
"""


def measure(sizes: list[int], rounds: int) -> list[tuple[int, float, float, float]]:
    """Per size: buyers, median wall ms, wall / latency, CPU ms per buyer."""
    os.environ.setdefault("DELIVERY_HTTP_HOSTS", "127.0.0.1")
    from pingpost import auction
    from pingpost.models import Partner
    from tests.leads import complete

    buyers = max(sizes)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE.format(latency=LATENCY, count=buyers)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        urls = server.stdout.readline().split()
        partners = [
            Partner.model_validate(
                {
                    "id": n + 1,
                    "price": 1,
                    "bid": {
                        "url": f"{url}/ping",
                        "timeout": 2,
                        "answer": {"accepted": "status", "price": "price", "token": "bid_id"},
                        "accepted_values": ["bid"],
                    },
                    "post": {"url": f"{url}/post", "token_field": "bid_id"},
                }
            )
            for n, url in enumerate(urls)
        ]
        lead = complete("ping", Home_Improvement_Product="Gutters")
        rows = []
        for size in sizes:
            asked = partners[:size]
            auction.ask(asked, lead, test=False, seconds=2)  # connections opened
            walls, cpus = [], []
            for _ in range(rounds):
                cpu, wall = time.process_time(), time.perf_counter()
                answers = auction.ask(asked, lead, test=False, seconds=2)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
                assert all(a["outcome"] == "bid" for a in answers.values()), answers
            wall = statistics.median(walls)
            rows.append((size, wall * 1000, wall / LATENCY, statistics.median(cpus) * 1000 / size))
        return rows
    finally:
        server.kill()
        server.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    rows = measure(args.sizes, args.rounds)
    print(f"Buyers answering after {LATENCY * 1000:.0f} ms, {args.rounds} auctions each (medians)")
    print("| buyers | auction (ms) | x one buyer's latency | CPU per buyer (ms) |")
    print("|--:|--:|--:|--:|")
    for size, wall, ratio, cpu in rows:
        print(f"| {size} | {wall:.1f} | {ratio:.2f}x | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
