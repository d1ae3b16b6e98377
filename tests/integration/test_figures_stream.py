"""The day figures counted from the leads table's stream (store/figures.count): each write's
figures once, however often its batch comes, whatever else the batch holds when it comes again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from pingpost.store import counting, figures
from pingpost.store.figures import Figures
from tests.integration.test_logs import logged as logged  # noqa: PLC0414 (the fixture)

AT = datetime(2026, 12, 7, 12, tzinfo=UTC)


@pytest.fixture
def day(aws: str) -> str:
    """A vendor of its own for each test, so its day item starts empty."""
    import uuid

    return f"stream-{uuid.uuid4().hex[:8]}"


def _write(sequence: int, vendor: str, carried: Figures | None, before: str | None = None) -> Any:
    """A stream record of a lead's write that carried `carried` (None: it carried nothing new;
    `before`: the ID of the tally the lead had)."""
    from pingpost.store import to_item

    tally = figures.riding([figures.vendor_day(vendor, AT, carried)]) if carried else None
    new: dict[str, Any] = {"lead_id": 1}
    old: dict[str, Any] = {"lead_id": 1}
    if tally is not None:
        new["tally"] = tally
    elif before is not None:
        new["tally"] = f"{before} 2026-12-07"
    if before is not None:
        old["tally"] = f"{before} 2026-12-07"
    return {
        "dynamodb": {
            "SequenceNumber": str(sequence),
            "NewImage": to_item(new),
            "OldImage": to_item(old),
        }
    }


def test_a_tally_is_short_and_reads_back_as_written() -> None:
    sale = Figures(sales=1, revenue=Decimal("20.50"), margin=Decimal("15"))
    back = Figures(returns=1, revenue=Decimal(-20), margin=Decimal(-20))
    bids = Figures(bids={"bid#142#asked": Decimal(1), "bid#142#at#2500": Decimal(2)})
    tallies = [
        figures.vendor_day("demo", AT, sale),
        figures.partner_day(142, AT, sale),
        figures.partner_day(7, AT, back),
        *figures.bids_days("demo", AT, bids.bids),
    ]
    text = figures.riding(tallies)
    assert text is not None
    assert text.split(" ", 1)[1] == (
        "2026-12-07 vdemo:S,R20.5,G15 p142:S,R20.5,G15 p7:R-20,G-20,X"
        " bdemo#6:@142#asked=1,@142#at#2500=2"  # 142 % 8: the bids of its shard
    )
    ident, read = figures.ridden(text)
    assert ident == text.split(" ")[0] and read == figures.merged(tallies)


def _day(vendor: str) -> Figures:
    key = figures.vendor_key(vendor, "2026-12-07")
    return figures.read([key]).get(key, Figures())


def test_each_write_is_counted_once_however_often_its_batch_comes(day: str) -> None:
    batch = [_write(100 + n, day, Figures(pings=1, matched=n % 2)) for n in range(5)]
    assert counting.count(batch).writes == 5
    assert counting.count(batch).writes == 0  # the same batch again (an answer lost): nothing more
    assert _day(day) == Figures(pings=5, matched=2)


def test_a_batch_that_comes_again_with_more_counts_only_the_more(day: str) -> None:
    first = [_write(200 + n, day, Figures(sales=1, revenue=Decimal("10.50"))) for n in range(3)]
    assert counting.count(first).writes == 3
    more = [_write(203 + n, day, Figures(sales=1, revenue=Decimal(2))) for n in range(2)]
    assert counting.count(first + more).writes == 2
    assert _day(day) == Figures(sales=5, revenue=Decimal("35.50"))


def test_a_write_that_carried_nothing_new_counts_nothing(day: str) -> None:
    kept = "a1b2c3d4"
    batch = [
        _write(300, day, Figures(pings=1)),
        _write(301, day, None, before=kept),  # a later write that left the tally as it was
        _write(302, day, Figures(posts=1), before=kept),
    ]
    assert counting.count(batch).writes == 2
    assert _day(day) == Figures(pings=1, posts=1)


def test_a_batch_counted_in_part_before_it_failed_counts_the_rest_once(
    day: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More day items than one transaction takes: the batch is counted in parts, each moving its
    # record. The call fails after the first part; the batch comes again, whole.
    batch = [_write(400 + n, f"{day}-{n}", Figures(pings=1)) for n in range(counting._MOST + 5)]
    real = counting.transact
    calls = {"n": 0}

    def failing_second(items: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the function died")
        return real(items)

    monkeypatch.setattr(counting, "transact", failing_second)
    with pytest.raises(RuntimeError):
        counting.count(batch)
    monkeypatch.setattr(counting, "transact", real)
    assert counting.count(batch).writes == 5
    assert all(_day(f"{day}-{n}") == Figures(pings=1) for n in range(counting._MOST + 5))


def test_the_event_file_is_counted_once(aws: str) -> None:
    import json

    from tests.conftest import EVENTS, local_function

    event = json.loads((EVENTS / "figures-stream.json").read_text())
    key = "day#2026-12-07#vendor#demo"
    before = figures.read([key]).get(key, Figures())
    function = local_function("FiguresFunction")
    assert function.invoke(event) == {"records": 1, "counted": 1}
    assert function.invoke(event) == {"records": 1, "counted": 0}
    assert figures.read([key])[key] == before + Figures(pings=1, matched=1)


def test_a_batch_of_big_auctions_is_counted_in_updates_dynamodb_takes(day: str) -> None:
    # Found in review: a batch's auctions of one vendor were merged into one ADD on its bids
    # item; 5 leads that asked 64 buyers made an UpdateExpression of over 4 KB, which DynamoDB
    # refuses (the embedded endpoint failed sooner), every time the batch came: the stream
    # stalled and its figures were lost.
    from pingpost import auction
    from pingpost.store import dynamodb, to_item

    def auctioned(sequence: int) -> Any:
        asked = {
            str(n): {"outcome": "bid", "price": Decimal(n * 7 + sequence) / 4, "token": "t"}
            for n in range(1, auction.MOST_BUYERS + 1)
        }
        tally = figures.riding(auction.tallies(day, AT, asked))
        image = {"lead_id": sequence, "tally": tally}
        return {"dynamodb": {"SequenceNumber": str(sequence), "NewImage": to_item(image)}}

    longest: list[int] = []

    def sent(params: dict[str, Any], **_: Any) -> None:
        for item in params["TransactItems"]:
            longest.append(len(item["Update"]["UpdateExpression"]))

    events = dynamodb().meta.events
    events.register("before-parameter-build.dynamodb.TransactWriteItems", sent)
    try:
        assert counting.count([auctioned(n) for n in range(1, 41)]).writes == 40
    finally:
        events.unregister("before-parameter-build.dynamodb.TransactWriteItems", sent)
    assert max(longest) <= 4096
    keys = figures.bids_keys(day, "2026-12-07")
    bids = sum(figures.read(keys).values(), Figures()).bids
    assert sum(v for k, v in bids.items() if k.endswith("#asked")) == 40 * auction.MOST_BUYERS


def _auction(sequence: int, vendor: str, draw: Any, buyers: int = 64) -> Any:
    """A stream record of a ping whose auction asked `buyers` that all bid 10 to 100 (the mix
    of bench/bids_item.py)."""
    from pingpost import auction
    from pingpost.store import to_item

    asked = {
        str(4400 + b): {"outcome": "bid", "price": Decimal(str(round(draw.uniform(10, 100), 2)))}
        for b in range(buyers)
    }
    tally = figures.riding(
        [figures.vendor_day(vendor, AT, Figures(pings=1)), *auction.tallies(vendor, AT, asked)]
    )
    image = to_item({"lead_id": sequence, "tally": tally})
    return {"dynamodb": {"SequenceNumber": str(sequence), "NewImage": image}}


def test_a_batch_of_auctions_writes_the_vendors_bids_items_once(
    day: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found in review: with the vendor's bids in one item, a transaction ended every two
    # auctions of 64 buyers (200 figures an update), and each rewrote the whole item (a
    # transaction pays for an item by its size, twice): spread over 8 items by partner ID, a
    # batch of 20 such auctions is one transaction.
    import random

    draw = random.Random(7)
    batch = [_auction(1000 + n, day, draw) for n in range(20)]
    real, calls = counting.transact, []

    def counted(items: Any) -> Any:
        calls.append(len(items))
        return real(items)

    monkeypatch.setattr(counting, "transact", counted)
    assert counting.count(batch).writes == 20
    assert calls == [1 + 1 + 8]  # the batch's record, the vendor's day, its 8 bids items


def test_a_day_item_that_cannot_grow_is_left_out_and_the_rest_counted(day: str) -> None:
    # Found in review: an ADD that would take a day item past 400 KB failed its transaction
    # every time the batch came (the template retries a batch for ever): the other writes of
    # the stream's shard waited, then were lost with it after 24 hours.
    import random

    from pingpost.config import settings
    from pingpost.store import dynamodb, to_item

    busy = f"{day}-busy"
    full = figures.bids_key(busy, "2026-12-07", 4400)
    attrs: dict[str, int] = {}
    size, n = len("counter") + len(full), 0
    while size < 404_990:  # past DynamoDB's 400 KB with the next ADD (the endpoint's 405,000)
        name = f"bid#{10_000 + n // 260}#at#{n % 260 + 1000}"
        attrs[name], size, n = 1, size + len(name) + 1, n + 1
    dynamodb().put_item(
        TableName=settings().counters_table, Item=to_item({"counter": full, **attrs})
    )
    batch = [_write(2000, f"{day}-other", Figures(pings=1)), _auction(2001, busy, random.Random(1))]
    counted = counting.count(batch)
    assert counted.writes == 2 and list(counted.dropped) == [full]
    assert counted.dropped[full].bids[figures.bid_key(4400, "asked")] == 1
    assert _day(f"{day}-other") == Figures(pings=1)
    assert _day(busy) == Figures(pings=1)  # its other items counted
    others = figures.read([k for k in figures.bids_keys(busy, "2026-12-07") if k != full])
    assert len(others) == 7
    assert counting.count(batch).writes == 0  # the batch again: nothing twice


def test_the_figures_function_reports_figures_it_could_not_count(
    monkeypatch: pytest.MonkeyPatch, logged: Any
) -> None:
    from pingpost.observability import metrics
    from tests.conftest import local_function

    added: list[str] = []
    monkeypatch.setattr(metrics, "add_metric", lambda name, **_: added.append(name))

    dropped = Figures(pings=2, sales=1, bids={"bid#8#asked": Decimal(1)})
    full = counting.Counted(1, {"day#2026-12-07#bids#x#0": dropped})
    monkeypatch.setattr(counting, "count", lambda records: full)
    assert local_function("FiguresFunction").invoke({"Records": [{}]}) == {
        "records": 1,
        "counted": 1,
    }
    (line,) = [json.loads(t) for t in logged.getvalue().splitlines() if "day item full" in t]
    # What an operator adds to the day item by hand: each figure by the name the item keeps.
    assert line["key"] == "day#2026-12-07#bids#x#0"
    assert line["figures"] == {"pings": 2, "sales": 1, "bid#8#asked": "1"}
    assert added == ["FiguresDropped"]  # the alarm's metric
