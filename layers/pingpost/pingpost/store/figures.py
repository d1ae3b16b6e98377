"""The day figures `pingpost report` reads: per UTC day, per vendor and per partner.

They are items of the counters table (counters read back by key, BatchGetItem, never
scanned), one per day and what it counts (days are UTC, YYYY-MM-DD):

- `day#<day>#vendor#<vendor ID>`: a vendor's pings, matched, posts, sales, revenue and margin.
- `day#<day>#partner#<partner ID>`: a partner's sales, revenue, margin, deliveries failed and
  parked; and its posts as a buyer that won by its bid (won) and those it accepted.
- `day#<day>#bids#<vendor ID>#<partner ID mod 8>`: what the auctions of the vendor's leads
  asked of each buyer (asked, timeouts, and its bids counted by step of about 10%,
  `#at#<step>`, for their number and median), as attributes `bid#<partner ID>#<what>`
  (`Figures.bids`), spread over 8 items by partner ID. An item grows with the buyers asked and
  their steps (about 15 to 20 bytes an attribute).

No request writes them. What a write of a lead counts rides on that write, as the lead's
`tally` (`riding`, `carrying`): a write that fails or is refused carries nothing, and a repeat
that writes nothing carries nothing. The figures function reads the leads table's stream and
adds each write's tally to the day items once (`pingpost.store.counting`), a transaction for
many writes rather than a counter item in every request's transaction.
"""

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from secrets import token_hex
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import ClientError

from pingpost.config import settings
from pingpost.store import counters, dynamodb, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# A vendor's bids are spread over 8 items a day by partner ID (`bids_key`), so that an update
# adds a few of an auction's figures to each, and each has room for a day of them. (Before the
# stream counted them, a vendor's day was spread over 8 keys `#<0..7>` too, by lead ID: the
# report adds those up with the one key written now, `vendor_keys`.)
SHARDS = 8
TALLY = "tally"  # the lead's attribute: its last write's day figures, for the figures function
# Kept about 13 months, so a report can compare a month with the same month a year before.
_KEEP_SECONDS = 400 * 86_400


class Figures(NamedTuple):
    """What happened on a day (or what one write adds to it)."""

    pings: int = 0  # leads received by ping and full requests
    matched: int = 0  # of those, answered Matched
    posts: int = 0  # posts and full requests whose outcome was recorded
    sales: int = 0
    revenue: Decimal = Decimal(0)  # the partners' prices of the sales
    margin: Decimal = Decimal(0)  # what the exchange keeps of them (answering.margin)
    failed: int = 0  # delivery attempts that failed
    parked: int = 0  # deliveries given up (failed for good)
    returns: int = 0  # sales returned (their revenue and margin taken off the day they were)
    # What buyers that bid did: bid#<partner ID>#<what> -> count or total (see `bid_key`).
    bids: Mapping[str, Decimal] = MappingProxyType({})

    def __add__(self, other: "Figures") -> "Figures":  # type: ignore[override]  # figures add up
        added = {
            name: getattr(self, name) + getattr(other, name)
            for name in self._fields
            if name != "bids"
        }
        bids = dict(self.bids)
        for key, value in other.bids.items():
            bids[key] = bids.get(key, Decimal(0)) + value
        return Figures(**added, bids=bids)

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> "Figures":
        """The figures an item holds (an attribute it lacks counts 0)."""
        read: dict[str, Any] = {name: values[name] for name in cls._fields if name in values}
        for name in ("pings", "matched", "posts", "sales", "failed", "parked", "returns"):
            if name in read:
                read[name] = int(read[name])
        read["bids"] = {k: Decimal(v) for k, v in values.items() if k.startswith(_BID)}
        return cls(**read)


_BID = "bid#"
# What is counted of a buyer that bids (a Figures.bids key's last part).
ASKED, TIMEOUTS, WON, ACCEPTED = "asked", "timeouts", "won", "took"
STEP = "at#"  # ... followed by the step, in cents
# The steps bids are counted by for their median: 1.0, 1.1, ... 9.0 times a power of ten.
_STEPS: tuple[int, ...] = (10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 25, 28, 30, 33, 36, 40, 45)
_STEPS += (50, 55, 60, 70, 80, 90)


def bid_key(partner_id: int | str, what: str) -> str:
    """The name of what is counted of a buyer that bids."""
    return f"{_BID}{partner_id}#{what}"


def _steps(cents: int) -> tuple[int, list[int]]:
    """The power of ten whose steps `cents` falls among, and those steps (in cents)."""
    scale = int(10 ** (len(str(cents)) - 2))
    return scale, [step * scale for step in _STEPS]


def bid_step(price: Decimal) -> int:
    """The step a bid is counted in for its median, in cents: the largest of 1.0, 1.1, 1.2, ...
    9.0 times a power of ten not above it (25.00 to 27.99 count in 2500); whole cents below
    0.10."""
    cents = max(int(price * 100), 1)
    if cents < 10:
        return cents
    _, steps = _steps(cents)
    return max(step for step in steps if step <= cents)


def _step_after(cents: int) -> int:
    if cents < 10:
        return cents + 1
    scale, steps = _steps(cents)
    return next((step for step in steps if step > cents), 100 * scale)


def bid_median(
    bids: Mapping[str, Decimal], partner_id: int | str
) -> tuple[Decimal, Decimal] | None:
    """The step the partner's median bid (the lower median) falls in, as dollars (from, to);
    None without bids."""
    prefix = bid_key(partner_id, STEP)
    counted = sorted((int(k[len(prefix) :]), n) for k, n in bids.items() if k.startswith(prefix))
    total = sum(n for _, n in counted)
    seen = Decimal(0)
    for cents, n in counted:
        seen += n
        if total and seen * 2 >= total:
            return Decimal(cents) / 100, Decimal(_step_after(cents)) / 100
    return None


class Tally(NamedTuple):
    """Figures to ADD to the day item named `key`."""

    key: str
    figures: Figures


def day(at: datetime | date) -> str:
    """The UTC day a time falls on (a date is its own day)."""
    if isinstance(at, datetime):
        at = at.astimezone(UTC).date()
    return at.isoformat()


def vendor_key(vendor_id: str, on: str) -> str:
    """The key of a vendor's day."""
    return f"day#{on}#vendor#{vendor_id}"


def vendor_keys(vendor_id: str, on: str) -> list[str]:
    """Every key a vendor's day may be under: its own and those of earlier versions."""
    key = vendor_key(vendor_id, on)
    return [key, *(f"{key}#{shard}" for shard in range(SHARDS))]


def partner_key(partner_id: int, on: str) -> str:
    """The key of a partner's day."""
    return f"day#{on}#partner#{partner_id}"


def bids_key(vendor_id: str, on: str, partner_id: int | str) -> str:
    """The key of what the auctions of a vendor's leads counted on a day of the buyers of one
    shard (by partner ID)."""
    return f"day#{on}#bids#{vendor_id}#{int(partner_id) % SHARDS}"


def bids_keys(vendor_id: str, on: str) -> list[str]:
    """Every key of what the auctions of a vendor's leads counted on a day (`bids_key`)."""
    return [bids_key(vendor_id, on, shard) for shard in range(SHARDS)]


def bids_days(vendor_id: str, at: datetime, bids: Mapping[str, Decimal]) -> list[Tally]:
    """What an auction of a vendor's lead counted of its buyers, for their day items."""
    shards: dict[str, dict[str, Decimal]] = {}
    for name, value in bids.items():
        partner_id = name[len(_BID) :].split("#", 1)[0]
        shards.setdefault(bids_key(vendor_id, day(at), partner_id), {})[name] = value
    return [Tally(key, Figures(bids=counted)) for key, counted in sorted(shards.items())]


def bids_made(bids: Mapping[str, Decimal], partner_id: int | str) -> Decimal:
    """How many bids the partner made: its bids counted by step, added up."""
    prefix = bid_key(partner_id, STEP)
    return sum((n for k, n in bids.items() if k.startswith(prefix)), Decimal(0))


def vendor_day(vendor_id: str, at: datetime, figures: Figures) -> Tally:
    """Figures of a vendor's lead, for its day."""
    return Tally(vendor_key(vendor_id, day(at)), figures)


def partner_day(partner_id: int, at: datetime, figures: Figures) -> Tally:
    """Figures of a partner, for its day."""
    return Tally(partner_key(partner_id, day(at)), figures)


def merged(tallies: Sequence[Tally]) -> list[Tally]:
    """One tally per key: a transaction may not name the same item twice."""
    out: dict[str, Figures] = {}
    for tally in tallies:
        out[tally.key] = out.get(tally.key, Figures()) + tally.figures
    return [Tally(key, figures) for key, figures in out.items()]


def adding(tally: Tally) -> "TransactWriteItemTypeDef":
    """The transaction item that ADDs a tally's figures (those that are not 0)."""
    # Each figure by a placeholder: its own name, or b<n> for a bid's (they hold '#').
    named: dict[str, tuple[str, Any]] = {}
    for name, value in added(tally.figures).items():
        named[f"b{len(named)}" if name.startswith(_BID) else name] = (name, value)
    update = "SET expires_at = :expires"
    if named:
        update = "ADD " + ", ".join(f"#{k} :{k}" for k in named) + " " + update
    item: Any = {
        "TableName": settings().counters_table,
        "Key": {"counter": {"S": tally.key}},
        "UpdateExpression": update,
        "ExpressionAttributeValues": to_item(
            {f":{k}": v for k, (_, v) in named.items()} | {":expires": _expires()}
        ),
    }
    if named:
        item["ExpressionAttributeNames"] = {f"#{k}": name for k, (name, _) in named.items()}
    return {"Update": item}


def added(figures: Figures) -> dict[str, Any]:
    """A tally's figures that are not 0, by the name its day item keeps them under."""
    values = {name: getattr(figures, name) for name in Figures._fields if name != "bids"}
    return {k: v for k, v in values.items() if v} | {k: v for k, v in figures.bids.items() if v}


def size(figures: Figures) -> int:
    """How many figures an update of a day item by `figures` adds (those that are not 0)."""
    return len(added(figures))


def _expires() -> int:
    return int(time.time()) + _KEEP_SECONDS


# A tally's figures by one letter each (a bid's are written whole, after "@").
_CODES = {
    "pings": "P",
    "matched": "M",
    "posts": "O",
    "sales": "S",
    "revenue": "R",
    "margin": "G",
    "failed": "F",
    "parked": "K",
    "returns": "X",
}
_NAMES = {code: name for name, code in _CODES.items()}
_KINDS = {"vendor": "v", "partner": "p", "bids": "b"}
_KIND_NAMES = {code: kind for kind, code in _KINDS.items()}


def riding(tallies: Sequence[Tally]) -> str | None:
    """What a write of a lead carries of its day figures (its `tally` attribute, which the
    figures function adds to the day items from the leads table's stream), as short a text as
    the lead's one write unit needs: a new ID, the day, then each day item's figures, e.g.
    `1f0c2b9a5e3d 2026-12-07 vdemo:S,R20,G15 p142:S,R20,G15` (a count of 1 is its letter alone).
    None without figures."""
    counted = [(t.key, added(t.figures)) for t in merged(tallies)]
    counted = [(key, values) for key, values in counted if values]
    if not counted:
        return None
    day = counted[0][0].split("#")[1]
    parts = [token_hex(6), day]  # the ID: 48 random bits, new with each write
    for key, values in counted:
        _, on, kind, rest = key.split("#", 3)
        if on != day:
            raise ValueError(f"one write's figures are of one day: {key} is not of {day}")
        figures = [
            f"@{name[len(_BID) :]}={_number(value)}"
            if name.startswith(_BID)
            else _CODES[name] + ("" if value == 1 else _number(value))
            for name, value in values.items()
        ]
        parts.append(f"{_KINDS[kind]}{rest}:{','.join(figures)}")
    return " ".join(parts)


def _number(value: Any) -> str:
    return format(Decimal(value).normalize(), "f")


def ridden(text: str) -> tuple[str, list[Tally]]:
    """The ID and the tallies of a lead's `tally` (`riding`)."""
    ident, day, *entries = text.split(" ")
    tallies = []
    for entry in entries:
        where, _, written = entry.partition(":")
        values: dict[str, Decimal] = {}
        for figure in written.split(","):
            if figure.startswith("@"):
                name, _, value = figure[1:].partition("=")
                values[_BID + name] = Decimal(value)
            else:
                values[_NAMES[figure[0]]] = Decimal(figure[1:] or 1)
        key = f"day#{day}#{_KIND_NAMES[where[0]]}#{where[1:]}"
        tallies.append(Tally(key, Figures.of(values)))
    return ident, tallies


def carrying(update: Mapping[str, Any], tallies: Sequence[Tally]) -> dict[str, Any]:
    """An UpdateItem of a lead (its parameters) that also sets its `tally` (`riding`)."""
    tally = riding(tallies)
    out = dict(update)
    expression = str(update["UpdateExpression"])
    if tally is None:
        # A write that carries none takes off what an earlier one carried (the stream has it).
        out["UpdateExpression"] = (
            expression.replace(" REMOVE ", f" REMOVE {TALLY}, ", 1)
            if " REMOVE " in expression
            else f"{expression} REMOVE {TALLY}"
        )
        return out
    set_tally = f"#{TALLY} = :{TALLY}"
    out["UpdateExpression"] = (
        f"SET {set_tally}, {expression[4:]}"
        if expression.startswith("SET ")
        else f"SET {set_tally} {expression}"
    )
    out["ExpressionAttributeNames"] = {
        **update.get("ExpressionAttributeNames", {}),
        f"#{TALLY}": TALLY,
    }
    out["ExpressionAttributeValues"] = {
        **update.get("ExpressionAttributeValues", {}),
        f":{TALLY}": {"S": tally},
    }
    return out


def write(update: Mapping[str, Any], tallies: Sequence[Tally]) -> bool:
    """Apply a conditional UpdateItem of a lead (its parameters), carrying the tallies (see
    `carrying`). False when the update's condition failed."""
    try:
        dynamodb().update_item(**carrying(update, tallies))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def read(keys: Sequence[str]) -> dict[str, Figures]:
    """The figures of the day items named (eventually consistent; a missing item is absent)."""
    return {key: Figures.of(values) for key, values in counters.read(keys).items()}
