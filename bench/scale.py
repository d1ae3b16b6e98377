"""A new container's first ping and its warm pings, with 100 partners and with 100,000.

    .venv/bin/python bench/scale.py --sizes 100 100000 --leads 40

For each size, the exchange of bench/cost.py (the template's tables on an embedded AWS endpoint
in this process, the demo seed) gains `size` of bench/matching.py's random partners, written
straight to the partners table and filed in the index as `pingpost.store.partners.put` files
them (writing 100,000 through it would take an hour here). Then a new container: an interpreter
of its own (the ping function's folder and the layer on the path, as on Lambda) imports the
handler and serves `--leads` pings of random leads (bench/matching.py's: real ZIP codes, any
product), then the same leads again, each timed by the wall clock around the handler, its AWS
calls going to the endpoint. Reported, per size: the container's first ping; the median of the
next pings, each meeting a neighbourhood no lead met before in this container; the median of
the pings of the second round (neighbourhoods met); each by the wall clock and by the CPU the
container's process used (the endpoint runs in this one); the container's peak resident memory
(VmHWM) against the template's MemorySize; and each time as a ratio to the first size's,
measured in the same run. The endpoint answers slower than DynamoDB and reads items one by one:
its share of the wall clock grows with the partners read, so the wall-clock ratios are above
what they would be on AWS; the CPU is the container's own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

CHILD = """
import json, sys, time
def peak():  # VmHWM: this process's own peak
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    return int(status.split()[0]) / 1024
import app
from pingpost_local.functions import LambdaContext as Context
events = json.loads(sys.stdin.read())
times, cpu = [], []
for event in events:
    started, used = time.perf_counter(), time.process_time()
    result = app.lambda_handler(event, Context("PingFunction", 512, 10))
    times.append((time.perf_counter() - started) * 1000)
    cpu.append((time.process_time() - used) * 1000)
    assert result["statusCode"] == 200, result
print(json.dumps([times, cpu, peak()]))
"""
FIRST_ID = 100_000  # the random partners' IDs start here: clear of the demo seed's


def _add_partners(count: int) -> None:
    """`count` random partners written to the table and filed in the index."""
    import boto3
    from matching import random_partner

    from pingpost.store import partners, to_item

    client = boto3.client("dynamodb")
    rng = random.Random(1)
    filed: dict[str, list[str]] = {}
    items = []
    for n in range(count):
        partner = random_partner(FIRST_ID + n, rng)
        item = partners.compact(partner.model_dump(mode="python"))
        item["delivery"].pop("headers")
        item["partner_id"] = item.pop("id")
        item["change"] = 1
        items.append({"PutRequest": {"Item": to_item(item)}})
        for key in partners.placings(partner):
            filed.setdefault(key, []).append(str(partner.id))
    table = os.environ["PARTNERS_TABLE"]
    for start in range(0, len(items), 25):
        client.batch_write_item(RequestItems={table: items[start : start + 25]})
    for key, ids in filed.items():
        client.update_item(
            TableName=os.environ["COUNTERS_TABLE"],
            Key={"counter": {"S": key}},
            UpdateExpression="ADD ids :ids",
            ExpressionAttributeValues={":ids": {"NS": ids}},
        )


def _events(run: Any, leads: int) -> list[dict[str, Any]]:
    from matching import random_pings
    from memory import _event

    events = []
    for ping in random_pings(leads, seed=3):
        fields = run.lead("ping", Zip=ping.lead.zip)
        fields["Home_Improvement_Product"] = str(ping.lead.product)
        events.append(_event("ping", fields))
    return events


def measure(count: int, leads: int) -> tuple[list[float], list[float], float]:
    """A new container's ping times and CPU times (two rounds of `leads` leads), ms, and its
    peak MB."""
    import cost

    exchange = cost.Exchange()
    try:
        _add_partners(count)
        events = _events(cost.Run(exchange), leads)
        from memory import in_function

        times, cpu, peak = in_function("ping", CHILD, json.dumps(events + events), timeout=1800)
        return times, cpu, peak
    finally:
        exchange.close()


def _phases(times: list[float], leads: int) -> tuple[float, float, float]:
    """The first ping, the median of the rest of the first round, and of the second round."""
    first, met = times[:leads], times[leads:]
    return first[0], statistics.median(first[1:]), statistics.median(met)


def main(argv: list[str] | None = None) -> int:
    from pingpost_local.template import load_template

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 100_000])
    parser.add_argument("--leads", type=int, default=40)
    parser.add_argument(
        "--one", type=int, help=argparse.SUPPRESS
    )  # a size, in a process of its own
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one, args.leads)))
        return 0
    memory = load_template(ROOT / "template.yaml")["Parameters"]["FunctionMemorySize"]["Default"]
    rows = []
    for count in args.sizes:
        # Each size on an endpoint of its own, in a process of its own (its clients name it).
        one = [sys.executable, __file__, "--one", str(count), "--leads", str(args.leads)]
        done = subprocess.run(one, capture_output=True, text=True, check=False, timeout=3600)
        assert done.returncode == 0, done.stderr[-2000:]
        times, cpu, peak = json.loads(done.stdout.splitlines()[-1])
        rows.append((count, _phases(times, args.leads), _phases(cpu, args.leads), peak))
    print(
        "| partners | | first ping ms (ratio) | a new neighbourhood, median ms (ratio)"
        f" | a neighbourhood met, median ms (ratio) | peak MB of {memory} |"
    )
    print("|--:|---|--:|--:|--:|--:|")
    for count, wall, cpu, peak in rows:
        for what, phases, base in (("wall", wall, rows[0][1]), ("CPU", cpu, rows[0][2])):
            shown = " | ".join(
                f"{ms:,.1f} ({ms / was:.2f}x)" for ms, was in zip(phases, base, strict=True)
            )
            print(f"| {count:,} | {what} | {shown} | {peak:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
