"""What each request costs on AWS: its calls and write units, counted by bench/cost.py.

The figures are exact (calls are counted, units computed from item sizes), so any change that
adds a call or a written item to ping, post, full or a delivery fails here, on purpose: it
changes the price of every lead (docs/performance.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import made_once, run_bench


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    def measure(where: Path) -> None:
        (where / "cost.json").write_text(run_bench("cost", "--pairs", "3", "--json"))

    measured = made_once(tmp_path_factory, "cost", measure) / "cost.json"
    figures: dict[str, Any] = json.loads(measured.read_text())
    return figures


def test_a_ping_is_one_put_of_the_lead_its_day_figures_riding_on_it(
    figures: dict[str, Any],
) -> None:
    ping = figures["requests"]["ping"]
    # The vendor's day figures ride on the lead (its tally), for the figures function.
    assert ping["calls"] == {"dynamodb.PutItem": 1}
    assert ping["write_units"] == 1


def test_a_post_reads_the_lead_sells_and_ends_it_in_one_write(figures: dict[str, Any]) -> None:
    post = figures["requests"]["post"]
    # The lead read; claimed; sold and ended in one UpdateItem (its day figures riding on it:
    # a partner without caps or a dedupe window counts in no counter item, so the sale is no
    # transaction); its message; the outbox cleared.
    assert post["calls"] == {
        "dynamodb.GetItem": 1,
        "dynamodb.UpdateItem": 3,
        "sqs.SendMessageBatch": 1,
    }
    # The claim puts the lead in the outbox index and clearing it takes it out (1 + 1 each).
    assert post["write_units"] == 5


def test_a_full_request_stores_sells_and_ends_the_lead_in_three_writes(
    figures: dict[str, Any],
) -> None:
    full = figures["requests"]["full"]
    assert full["calls"] == {
        "dynamodb.TransactWriteItems": 1,
        "dynamodb.UpdateItem": 2,
        "sqs.SendMessageBatch": 1,
    }
    # The lead stored with its repeat record (2 items, twice in a transaction), the sale (into
    # the outbox index: 1 + 1), the outbox cleared (1 + 1).
    assert full["write_units"] == 8


def test_the_day_figures_cost_a_transaction_per_batch_of_the_stream(
    figures: dict[str, Any],
) -> None:
    # A batch reads its record, and writes it with the day items it adds to (a vendor's and a
    # partner's here), twice in a transaction: 6 units a batch, however many pairs it holds.
    one = figures["requests"]["figures_alone"]
    assert one["calls"] == {"dynamodb.GetItem": 1, "dynamodb.TransactWriteItems": 1}
    assert one["write_units"] == 6
    shared = figures["requests"]["figures"]  # the run's 3 pairs in one batch
    assert shared["write_units"] == 6 / 3


def test_a_delivery_reads_the_lead_once_and_writes_it_twice(figures: dict[str, Any]) -> None:
    delivery = figures["requests"]["delivery"]
    assert delivery["calls"] == {"dynamodb.GetItem": 1, "dynamodb.UpdateItem": 2}
    assert delivery["write_units"] == 2


def test_a_lead_stays_under_one_write_unit(figures: dict[str, Any]) -> None:
    assert figures["pinged_bytes"] < figures["lead_bytes"] < 1024
