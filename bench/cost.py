"""What a lead costs on AWS: every call of ping, post, full and delivery, against the floor.

    .venv/bin/python bench/cost.py --pairs 50

The exchange runs in this process on the embedded AWS endpoint with the demo seed, warm (the
first requests, not counted, fill its caches as a container's first requests do, and vendors
and partners stay cached through the run), through the
real handlers: `pairs` ping+post pairs of a lead partner 142 buys (no caps, the partner's
default dedupe window), and as many full requests, each sale delivered to a local partner by
the deliver function. Every call of the product's clients is counted (pingpost_local.meter),
with the DynamoDB capacity units computed from the sizes of the items it touches.

Dollars per million ping+post pairs, at the list prices below (us-east-1, on-demand; change
them here): API requests, Lambda requests and duration, SQS requests (a message sent, and
received and deleted by the event source), DynamoDB write and read units. Lambda duration is
modelled, not measured on AWS: 5 ms of waiting per AWS call (a round trip in a region) plus the
CPU this process spent in the handler. Not counted: logs, storage, data transfer, and X-Ray
(off by default; docs/performance.md prices it).

The floor of the design is priced the same way: two API requests and two invocations (ping and
post) and a delivery invocation; the pinged lead put; the post reading the lead; one
transaction writing the sold lead and one cap counter; one queue message sent, received and
deleted; the delivery reading the lead and writing its status once.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "demo" / "seed.json"
TEMPLATE = ROOT / "template.yaml"

# us-east-1 list prices in dollars per unit.
PRICES = {
    "api_request": 1.00 / 1e6,  # HTTP API, first 300 million a month
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000133334,  # arm64
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB chunk
    "write_unit": 0.625 / 1e6,  # DynamoDB on-demand write request unit
    "read_unit": 0.125 / 1e6,  # DynamoDB on-demand read request unit
}
WAIT_MS_PER_CALL = 5.0
KB = 1024


@dataclass
class Usage:
    """What some requests used: calls by name, capacity units, invocations, handler CPU."""

    calls: Counter[str] = field(default_factory=Counter)
    write_units: float = 0
    read_units: float = 0
    invocations: int = 0
    api_requests: int = 0
    sqs_event_requests: int = 0  # the event source's receives and deletes, per message
    cpu_ms: float = 0

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.write_units += other.write_units
        self.read_units += other.read_units
        self.invocations += other.invocations
        self.api_requests += other.api_requests
        self.sqs_event_requests += other.sqs_event_requests
        self.cpu_ms += other.cpu_ms

    def per(self, n: int) -> Usage:
        out = Usage(Counter({k: v / n for k, v in self.calls.items()}))  # type: ignore[misc]
        out.write_units, out.read_units = self.write_units / n, self.read_units / n
        out.invocations, out.api_requests = self.invocations / n, self.api_requests / n  # type: ignore[assignment]
        out.sqs_event_requests = self.sqs_event_requests / n  # type: ignore[assignment]
        out.cpu_ms = self.cpu_ms / n
        return out

    def dollars(self, memory_mb: int) -> dict[str, float]:
        """The cost of this usage, by service."""
        aws_calls = sum(self.calls.values())
        sqs = sum(v for k, v in self.calls.items() if k.startswith("sqs."))
        duration_ms = WAIT_MS_PER_CALL * aws_calls + self.cpu_ms
        return {
            "API Gateway": self.api_requests * PRICES["api_request"],
            "Lambda": self.invocations * PRICES["lambda_request"]
            + duration_ms / 1000 * memory_mb / 1024 * PRICES["lambda_gb_second"],
            "SQS": (sqs + self.sqs_event_requests) * PRICES["sqs_request"],
            "DynamoDB writes": self.write_units * PRICES["write_unit"],
            "DynamoDB reads": self.read_units * PRICES["read_unit"],
        }


def _units(size: int, per: int) -> int:
    return max(1, math.ceil(size / per))


class Exchange:
    """The exchange of the template, in this process, on an embedded endpoint, seeded."""

    def __init__(self) -> None:
        import boto3

        from pingpost_local.embedded_aws import start_aws_endpoint
        from pingpost_local.partner import DemoPartner
        from pingpost_local.resources import create_resources
        from pingpost_local.template import (
            function_environment,
            function_ids,
            load_template,
            parameter_values,
            resolve,
        )

        self._server, url = start_aws_endpoint()
        # Cap usage kept as deployed (template.yaml sets nothing); vendors and partners kept
        # through the run: a container reads the partners' version once every 30 s, which
        # costs nothing per lead (docs/performance.md: the partner cache).
        os.environ.pop("USAGE_CACHE_SECONDS", None)
        os.environ["CACHE_SECONDS"] = "3600"
        os.environ.update(
            AWS_ENDPOINT_URL=url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 (the embedded endpoint takes any)
            AWS_DEFAULT_REGION="us-east-1",
            POWERTOOLS_METRICS_DISABLED="true",
        )
        template = load_template(TEMPLATE)
        self.template = template
        parameters = parameter_values(template)
        physical = create_resources(
            template, boto3.client("dynamodb"), boto3.client("sqs"), parameters
        )
        for function_id in function_ids(template):
            os.environ.update(function_environment(template, function_id, physical, parameters))
        os.environ["DELIVERY_HTTP_HOSTS"] = "127.0.0.1"  # the local partner
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"  # the figures alone on the output
        # The functions answering publishers (a delivery's smaller memory is not counted apart).
        memory = template["Globals"]["Function"]["MemorySize"]
        self.memory_mb = int(resolve(memory, physical, parameters, template=template))
        self.partner = DemoPartner()
        self.partner.start()
        self._seed()
        self.sqs = boto3.client("sqs")
        self.raw = boto3.client("dynamodb")

    def _seed(self) -> None:
        from pingpost_local import seed
        from pingpost_local.cli import _to_demo_partner

        document = seed.load(SEED)
        seed.apply(_to_demo_partner(document, self.partner.url))
        self.key = document.vendors[0].key

    def close(self) -> None:
        self.partner.stop()
        self._server.stop()

    def function(self, function_id: str) -> Any:
        from pingpost_local.functions import in_this_environment

        return in_this_environment(ROOT / "template.yaml", function_id)


class Run:
    """Requests through the handlers, metered."""

    def __init__(self, exchange: Exchange) -> None:
        from pingpost.store import dynamodb
        from pingpost.store.queues import sqs
        from pingpost.store.secrets import ssm
        from pingpost_local.meter import Meter

        self.exchange = exchange
        self.meter = Meter([dynamodb(), sqs(), ssm()], exchange.raw)
        self.functions = {
            name: exchange.function(f"{name.title()}Function")
            for name in ("ping", "post", "full", "deliver")
        }
        self._consumer = 0
        from pingpost_local.streams import StreamPoller, StreamSource

        table = exchange.raw.describe_table(TableName=os.environ["LEADS_TABLE"])["Table"]
        source = StreamSource("FiguresFunction", "Leads", "LeadsTable", batch_size=1000)
        self.stream = StreamPoller(
            source, exchange.function("FiguresFunction"), table["LatestStreamArn"], quiet=True
        )

    def count_figures(self, usage: Usage) -> int:
        """The figures function over every lead write since the last call, as the stream's
        batches (up to 1,000 records); the batches."""
        before = self.stream.batches
        with self.metered(usage):
            self.stream.drain()
        usage.invocations += self.stream.batches - before
        return self.stream.batches - before

    @contextmanager
    def metered(self, usage: Usage) -> Iterator[None]:
        from pingpost.observability import metrics

        with self.meter.metering() as calls:
            started = time.thread_time()
            yield
            usage.cpu_ms += (time.thread_time() - started) * 1000
        usage.calls += calls.count()
        usage.write_units += calls.write_units
        usage.read_units += calls.read_units
        # With metrics off they pile up, and Powertools prints them at 100: not on this output.
        metrics.clear_metrics()

    def lead(self, mode: str, **more: str) -> dict[str, str]:
        from pingpost.fields import FIELDS, Need

        self._consumer += 1
        n = self._consumer
        fields = {
            f.name: f.example
            for f in FIELDS
            if f.required(mode) is Need.YES and f.name not in ("State", "Lead_ID")
        }
        fields |= {"Key": self.exchange.key, "Mode": mode, **more}
        if mode != "post":
            fields["Home_Improvement_Product"] = "Roofing - Metal"
        if mode != "ping":
            fields |= {"Email": f"consumer{n}@example.com", "Home_Phone": f"312555{n:04d}"}
        return fields

    def http(self, name: str, fields: dict[str, str], usage: Usage) -> dict[str, Any]:
        event = json.loads((ROOT / "events" / f"{name}-get.json").read_text())
        event["rawQueryString"] = urlencode(fields)
        event["queryStringParameters"] = fields
        with self.metered(usage):
            result: dict[str, Any] = self.functions[name].invoke(event)
        usage.invocations += 1
        usage.api_requests += 1
        assert result["statusCode"] == 200, result["body"]
        return result

    def deliver_all(self, usage: Usage) -> int:
        """Deliver every queued sale, one message an invocation; how many were delivered."""
        from pingpost_local.sqs import sqs_event

        queue = os.environ["DELIVERY_QUEUE_URL"]
        arn = self.exchange.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        delivered = 0
        while True:
            got = self.exchange.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)
            if not got.get("Messages"):
                return delivered
            with self.metered(usage):
                result = self.functions["deliver"].invoke(
                    sqs_event(got["Messages"], arn["Attributes"]["QueueArn"])
                )
            usage.invocations += 1
            usage.sqs_event_requests += 2  # the event source's receive and delete
            assert not result["batchItemFailures"], result
            self.exchange.sqs.delete_message(
                QueueUrl=queue, ReceiptHandle=got["Messages"][0]["ReceiptHandle"]
            )
            delivered += 1

    def pair(self, ping: Usage, post: Usage) -> int:
        answer = self.http("ping", self.lead("ping"), ping)
        lead_id = _lead_id(answer["body"])
        self.http("post", self.lead("post", Lead_ID=str(lead_id)), post)
        return lead_id

    def full(self, usage: Usage) -> None:
        self.http("full", self.lead("full"), usage)


def _lead_id(body: str) -> int:
    from lxml import etree

    return int(etree.fromstring(body.encode()).findtext("lead_id") or 0)


@dataclass
class Measured:
    """Per request averages of a run."""

    ping: Usage
    post: Usage
    full: Usage
    delivery: Usage
    figures: Usage  # the figures function per pair and delivery, the run's pairs in its batches
    figures_alone: Usage  # ... one pair and its delivery a batch
    lead_bytes: int  # the size of a sold lead's item after its delivery
    pinged_bytes: int  # the size of a pinged lead's item
    memory_mb: int


def measure(pairs: int) -> Measured:
    """Run `pairs` ping+post pairs and as many full requests, every sale delivered."""
    from pingpost.store import leads

    exchange = Exchange()
    try:
        run = Run(exchange)
        warm = Usage()
        run.pair(warm, warm)  # caches, the block of lead IDs, clients: as a warm container
        run.full(warm)
        run.deliver_all(warm)
        run.count_figures(warm)
        # One pair and its delivery alone in the stream's batch (a quiet exchange).
        alone = Usage()
        run.pair(warm, warm)
        run.deliver_all(warm)
        run.count_figures(alone)
        ping, post, full, delivery = Usage(), Usage(), Usage(), Usage()
        last = 0
        for _ in range(pairs):
            last = run.pair(ping, post)
        assert run.deliver_all(delivery) == pairs
        together = Usage()  # every pair and delivery of the run in the stream's batches
        run.count_figures(together)
        for _ in range(pairs):
            run.full(full)
        full_delivery = Usage()
        assert run.deliver_all(full_delivery) == pairs
        delivery.add(full_delivery)
        pinged = run.http("ping", run.lead("ping"), Usage())
        sold = leads.get(last)
        assert sold is not None and sold.deliveries[str(142)]["state"] == "delivered", sold
        from pingpost_local.meter import item_size

        def size(lead_id: int) -> int:
            item = exchange.raw.get_item(
                TableName=os.environ["LEADS_TABLE"], Key={"lead_id": {"N": str(lead_id)}}
            )["Item"]
            return item_size(item)

        return Measured(
            ping.per(pairs),
            post.per(pairs),
            full.per(pairs),
            delivery.per(2 * pairs),
            together.per(pairs),
            alone,
            size(last),
            size(_lead_id(pinged["body"])),
            exchange.memory_mb,
        )
    finally:
        exchange.close()


def floor(measured: Measured) -> Usage:
    """The floor of the design for one ping+post pair and its delivery (see the docstring)."""
    pinged = _units(measured.pinged_bytes, KB)
    lead = _units(measured.lead_bytes, KB)
    return Usage(
        calls=Counter(
            {
                "dynamodb.PutItem": 1,  # the pinged lead
                "dynamodb.GetItem": 2,  # the post and the delivery read the lead
                "dynamodb.TransactWriteItems": 1,  # the sold lead and one counter
                "dynamodb.UpdateItem": 1,  # the delivery's status
                "sqs.SendMessageBatch": 1,
            }
        ),
        write_units=pinged + 2 * (lead + 1) + lead,
        read_units=_units(measured.pinged_bytes, 4 * KB) + _units(measured.lead_bytes, 4 * KB),
        invocations=3,
        api_requests=2,
        sqs_event_requests=2,
        cpu_ms=measured.ping.cpu_ms + measured.post.cpu_ms + measured.delivery.cpu_ms,
    )


def pair_usage(measured: Measured) -> Usage:
    total = Usage()
    for part in (measured.ping, measured.post, measured.delivery, measured.figures):
        total.add(part)
    return total


def _calls(usage: Usage) -> str:
    return ", ".join(f"{name} {count:g}" for name, count in sorted(usage.calls.items()))


def report(measured: Measured) -> str:
    rows = [
        "| per request | AWS calls | write units | read units |",
        "|---|---|--:|--:|",
    ]
    named = {
        "ping": measured.ping,
        "post": measured.post,
        "full": measured.full,
        "delivery": measured.delivery,
        "day figures, per pair (the run's pairs in a batch)": measured.figures,
        "day figures, one pair a batch": measured.figures_alone,
    }
    for name, usage in named.items():
        rows.append(
            f"| {name} | {_calls(usage)} | {usage.write_units:.1f} | {usage.read_units:.1f} |"
        )
    ours, least = pair_usage(measured), floor(measured)
    mine, floors = ours.dollars(measured.memory_mb), least.dollars(measured.memory_mb)
    rows += [
        "",
        f"A pinged lead is {measured.pinged_bytes} B; a sold and delivered lead"
        f" {measured.lead_bytes} B.",
        "",
        "| $ per million ping+post pairs | this code | floor |",
        "|---|--:|--:|",
    ]
    rows += [f"| {k} | {mine[k] * 1e6:.2f} | {floors[k] * 1e6:.2f} |" for k in mine]
    total, least_total = sum(mine.values()), sum(floors.values())
    rows.append(f"| total | {total * 1e6:.2f} | {least_total * 1e6:.2f} |")
    rows.append(f"\nThis code costs {total / least_total:.2f}x the floor.")
    return "\n".join(rows)


def as_json(measured: Measured) -> str:
    """The per request figures and the totals, for tests and tools."""
    ours, least = pair_usage(measured), floor(measured)
    requests = {
        name: {
            "calls": dict(getattr(measured, name).calls),
            "write_units": getattr(measured, name).write_units,
            "read_units": getattr(measured, name).read_units,
        }
        for name in ("ping", "post", "full", "delivery", "figures", "figures_alone")
    }
    return json.dumps(
        {
            "requests": requests,
            "pinged_bytes": measured.pinged_bytes,
            "lead_bytes": measured.lead_bytes,
            "dollars_per_million_pairs": sum(ours.dollars(measured.memory_mb).values()) * 1e6,
            "floor_dollars_per_million_pairs": sum(least.dollars(measured.memory_mb).values())
            * 1e6,
        },
        indent=2,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    measured = measure(args.pairs)
    print(as_json(measured) if args.json else report(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
