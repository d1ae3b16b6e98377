"""Items read back from DynamoDB: `store.from_item` gives what boto3's TypeDeserializer gives."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer
from hypothesis import given
from hypothesis import strategies as st

from pingpost.store import from_item, to_item

NUMBERS = st.decimals(
    allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20
)
SCALARS = st.one_of(st.text(max_size=20), NUMBERS, st.booleans(), st.none())
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(min_size=1, max_size=10), VALUES, max_size=8))
def test_an_item_reads_back_as_boto3_reads_it(values: dict[str, Any]) -> None:
    item = to_item(values)
    boto3_reading = {k: TypeDeserializer().deserialize(v) for k, v in item.items()}
    assert from_item(item) == boto3_reading
    assert [type(v) for v in from_item(item).values()] == [type(v) for v in boto3_reading.values()]


def test_the_kinds_items_seldom_hold_are_read_by_boto3() -> None:
    item = {
        "n": {"NULL": True},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "b": {"B": b"\x00"},
        "big": {"N": "12345678901234567890123456789012345678"},
    }
    assert from_item(item) == {
        "n": None,
        "ss": {"a", "b"},
        "ns": {Decimal(1), Decimal("2.5")},
        "b": Binary(b"\x00"),
        "big": Decimal("12345678901234567890123456789012345678"),
    }


@given(
    st.dictionaries(
        st.integers(min_value=1, max_value=10**9),
        st.sampled_from(["matched", "sold", "zip", "Driver_1_Age 19 below 25", "a b: c (at sale)"]),
        max_size=300,
    )
)
def test_a_leads_decisions_read_back_as_they_were_by_partner(verdicts: dict[int, str]) -> None:
    from pingpost.store.leads import read_decisions, stored_decisions

    decisions = [[partner_id, verdict] for partner_id, verdict in sorted(verdicts.items())]
    stored = from_item(to_item({"d": stored_decisions(decisions)}))["d"]
    assert read_decisions(stored) == decisions
    # One text per verdict: hundreds of partners make an item of a few KB, not tens.
    assert len(stored) == len(set(verdicts.values()))


def test_decisions_stored_as_pairs_before_are_read() -> None:
    from pingpost.store.leads import read_decisions

    assert read_decisions([[Decimal(7), "zip"], [Decimal(9), "matched"]]) == [
        [7, "zip"],
        [9, "matched"],
    ]
