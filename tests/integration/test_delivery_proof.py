"""The proof: sold leads, three troubled partners, nothing lost and nothing twice.

`make proof` (pytest --proof) sells 1,000 leads; `make test` sells 200, down the same paths
with the same assertions.

- partner A fails 30% of attempts at random (HTTP 500, nothing recorded);
- partner B is down (HTTP 503) for the first part of the run;
- partner C answers only after its timeout has passed: every attempt times out.
Deliveries run as on AWS: pollers feed the deliver function batches of ten from the delivery
queue (partial batch failures), the queue moves a message to the dead-letter queue after
maxReceiveCount receives, and the retry function redrives with backoff and finally parks.
Only the timings are shortened (visibility 1 s, backoff from 1 s, two redrives, partner C's
timeout 50 ms): the proof waits on a faster clock than AWS's.
Run alone in its long form, it prints the figures of docs/reliability.md:
    .venv/bin/python -m pytest tests/integration/test_delivery_proof.py --proof -s
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from tests.conftest import DEMO_SEED, ROOT
from tests.leads import complete

LEADS = {"short": 200, "long": 1000}
SLOW_SHARE = 20  # one lead in 20 is for partner C (its product)
POLLERS = 3  # concurrent deliver invocations, as Lambda scales out on a queue
# A bound on the drain, not a target: alone the long form takes about 55 s here, beside the
# other tests of a parallel run about twice that (moto's work is CPU-bound).
DEADLINE_SECONDS = 900


def _partners(a: str, b: str, c: str) -> list[dict[str, Any]]:
    def buyer(id: int, url: str, product: str, timeout: float) -> dict[str, Any]:
        return {
            "id": id,
            "company": f"Partner {id}",
            "price": 20,
            "dedupe_days": 0,
            "filters": {"products": [product]},
            "delivery": {"url": url, "timeout": timeout},
        }

    return [
        # A and B answer at once; their long timeout keeps a busy machine (every core taken by
        # a parallel test run) from timing out an attempt the partner has already recorded,
        # which the proof would count as a second delivery. C is the partner past its timeout.
        buyer(601, a, "Gutters", 20),
        buyer(602, b, "Gutters", 20),
        buyer(603, c, "Decks", 0.05),
    ]


def _queues_empty() -> bool:
    sqs = boto3.client("sqs")
    for name in ("DELIVERY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL"):
        counts = sqs.get_queue_attributes(
            QueueUrl=os.environ[name],
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        if any(int(v) for v in counts.values()):
            return False
    return True


def _states(lead_ids: list[int]) -> dict[tuple[int, int], dict[str, Any]]:
    from pingpost.store import leads

    out = {}
    for lead_id in lead_ids:
        lead = leads.get(lead_id)
        assert lead is not None
        for partner, record in lead.deliveries.items():
            out[lead_id, int(partner)] = record
    return out


@pytest.mark.long
@pytest.mark.proof
def test_every_sale_is_delivered_once_or_parked(aws: str, long_proof: bool) -> None:
    from pingpost import exchange, redrive
    from pingpost.config import settings
    from pingpost.decoding import Request
    from pingpost.store import Expiring, partners, vendors
    from pingpost_local import seed
    from pingpost_local.functions import LocalFunction
    from pingpost_local.partner import DemoPartner
    from pingpost_local.sqs import QueuePoller, sqs_sources
    from pingpost_local.template import load_template

    leads = LEADS["long" if long_proof else "short"]
    quick = settings()._replace(redrive_base_seconds=1, max_redrives=2)
    with (
        pytest.MonkeyPatch.context() as patch,
        DemoPartner(failure_rate=0.3, seed=7) as a,
        DemoPartner() as b,
        DemoPartner(latency=0.15) as c,
    ):
        patch.setattr(redrive, "settings", lambda: quick)
        # Containers keep vendors and partners for a while, as deployed (the other tests
        # read them every time, to see their own changes at once).
        patch.setattr(vendors, "_cache", Expiring(60))
        kept = settings()._replace(cache_seconds=60)
        patch.setattr(partners, "settings", lambda: kept)
        client = boto3.client("dynamodb")
        table = os.environ["PARTNERS_TABLE"]
        for item in client.scan(TableName=table, ProjectionExpression="partner_id")["Items"]:
            client.delete_item(TableName=table, Key=item)
        seed.apply(seed.load(DEMO_SEED).model_copy(update={"partners": []}))
        seed.apply(seed.Seed.model_validate({"partners": _partners(a.url, b.url, c.url)}))
        partners.forget()  # the partners deleted above, behind the versions' back

        # Given 1,000 sold leads (200 in the short form)
        def sell(n: int) -> int:
            product = "Decks" if n < leads // SLOW_SHARE else "Gutters"
            answer = exchange.submit(Request(complete("full", Home_Improvement_Product=product)))
            assert answer.status == "Matched"
            return answer.lead_id

        selling = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            lead_ids = list(pool.map(sell, range(leads)))
        selling = time.monotonic() - selling

        # When they are delivered, partner B being down for the first part of the run
        b.configure(down_seconds=6)
        started = time.monotonic()
        source = next(
            s
            for s in sqs_sources(load_template(ROOT / "template.yaml"))
            if s.function_id == "DeliverFunction"
        )
        url = os.environ["DELIVERY_QUEUE_URL"]
        pollers = [
            QueuePoller(
                source,
                # One function instance per poller: a Lambda sandbox runs one batch at a time.
                LocalFunction(
                    f"DeliverFunction{i}",
                    ROOT / "functions" / "deliver",
                    "app.lambda_handler",
                    dict(os.environ),
                ),
                url,
                retry_seconds=1,
                quiet=True,
            )
            for i in range(POLLERS)
        ]
        for poller in pollers:
            poller.start()
        runs = Counter[str]()
        try:
            while time.monotonic() - started < DEADLINE_SECONDS:
                report = redrive.run(5)
                runs.update(redriven=report.redriven, parked=report.parked)
                if not report.redriven and _queues_empty():
                    break
                time.sleep(1)
        finally:
            for poller in pollers:
                poller.stop()
        drained = time.monotonic() - started

    # Then every sale is delivered exactly once, as the partners count by idempotency key,
    # or parked as failed after the last attempt; and the counts reconcile.
    states = _states(lead_ids)
    delivered = {k for k, r in states.items() if r["state"] == "delivered"}
    parked = {k for k, r in states.items() if r["state"] == "failed"}
    assert len(states) == leads
    assert len(delivered) + len(parked) == leads, "a sale is neither delivered nor parked"
    seen = {**c.accepted, **b.accepted, **a.accepted}
    for lead_id, partner_id in delivered:
        partner = {601: a, 602: b, 603: c}[partner_id]
        assert partner.accepted.get(f"{lead_id}-{partner_id}") == 1
    assert all(partner_id == 603 for _, partner_id in parked)  # only the partner past its timeout
    # ... every one of its sales, after the redrives; A failed attempts and B was down meanwhile
    assert len(parked) == leads // SLOW_SHARE and runs["redriven"] > 0
    assert a.stats()["refused"] > 0 and b.stats()["refused"] > 0
    assert {int(k.split("-")[0]) for k in a.accepted} | {
        int(k.split("-")[0]) for k in b.accepted
    } <= set(lead_ids)
    attempts = sum(int(r.get("attempts", 0)) for r in states.values())
    print(
        f"\nleads {leads}, sales {len(states)}, attempts {attempts}, retries {attempts - leads},"
        f" redriven {runs['redriven']}, delivered {len(delivered)}, parked {len(parked)},"
        f" duplicates seen by partners {sum(v - 1 for v in seen.values())}"
        f" (A {a.stats()['duplicates']}, B {b.stats()['duplicates']},"
        f" C {c.stats()['duplicates']}), time to sell {selling:.1f} s, to drain {drained:.1f} s"
    )
