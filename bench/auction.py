"""One auction over 1, 10 and 50 buyers that bid, each answering after 20 ms.

    .venv/bin/python bench/auction.py --sizes 1 10 50 --rounds 30 [--buyers lean|demo]

The buyers are on loopback, in a process of their own so that their work is not this one's;
this process runs `pingpost.auction.ask` as a ping does, over warm connections (a first
auction of each size, not counted, opens them). For each size: the auction's wall time
(median) as a ratio of one buyer's latency (the floor: no auction can answer before its buyers
do), and this process's CPU per buyer asked.

`lean` buyers (the default) are an asyncio server that reads a request and answers a bid 20 ms
later, with as little work as a buyer can do: on this machine's two cores their process and
this one share the CPU, and buyers on machines of their own cost the exchange nothing.
`demo` buyers are the demo bidders (local/pingpost_local/bidder.py, http.server: about 0.2 ms
of CPU a request), whose process, answering 50 requests at once, delays the last answers.
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


LEAN = """
import asyncio, itertools, sys
ids = itertools.count(1)

async def answer(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            await asyncio.sleep({latency})
            body = b'{{"status": "bid", "price": 25.5, "bid_id": "b%d"}}' % next(ids)
            writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                         b"Content-Length: %d\\r\\n\\r\\n%s" % (len(body), body))
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()

async def main():
    servers = [await asyncio.start_server(answer, "127.0.0.1", 0) for _ in range({count})]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    print(" ".join(f"http://127.0.0.1:{{port}}" for port in ports), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def measure(
    sizes: list[int], rounds: int, buyers_kind: str = "lean"
) -> list[tuple[int, float, float, float]]:
    """Per size: buyers, median wall ms, wall / latency, CPU ms per buyer."""
    os.environ.setdefault("DELIVERY_HTTP_HOSTS", "127.0.0.1")
    from pingpost import auction
    from pingpost.models import Partner
    from tests.leads import complete

    buyers = max(sizes)
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (LEAN if buyers_kind == "lean" else SERVE).format(latency=LATENCY, count=buyers),
        ],
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
    parser.add_argument("--buyers", choices=["lean", "demo"], default="lean")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    rows = measure(args.sizes, args.rounds, args.buyers)
    print(
        f"{args.buyers.capitalize()} buyers answering after {LATENCY * 1000:.0f} ms,"
        f" {args.rounds} auctions each (medians)"
    )
    print("| buyers | auction (ms) | x one buyer's latency | CPU per buyer (ms) |")
    print("|--:|--:|--:|--:|")
    for size, wall, ratio, cpu in rows:
        print(f"| {size} | {wall:.1f} | {ratio:.2f}x | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
