"""The leads table: every lead, its status, its sales and the answer it was given.

Status goes pinged -> posting -> sold | unsold (or straight to sold | unsold in full mode).
Every change is a conditional write, so two requests can never both sell a lead.
One module of over 400 lines on purpose: each write here guards the same claim (token and
beat), kept in one place.
"""

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from pingpost.config import settings
from pingpost.errors import Conflict
from pingpost.models import PINGED, POSTING, SOLD, UNSOLD
from pingpost.store import dynamodb, figures, from_item, to_item
from pingpost.store.deliveries import outbox_shard
from pingpost.store.figures import Tally

CHARGED = "charged#"  # top level: a sale sets it in a lead of any age (a map's member would not)


@dataclass
class Lead:
    """A lead as stored: who sent it, what it holds and where it stands."""

    lead_id: int
    vendor_id: str
    status: str
    data: dict[str, str]
    cost: Decimal
    created_at: int  # epoch milliseconds
    answer: dict[str, Any]  # the latest answer (ping's, then post's), replayed on a repeat post
    extra: dict[str, str] = field(default_factory=dict)
    matches: list[dict[str, str]] = field(default_factory=list)  # the vendor's XML <Matches>
    sold_to: dict[str, Decimal] = field(default_factory=dict)  # partner ID -> price, per sale
    times_sold: int = 0
    # partner ID -> {"state": queued | sending | delivered | failed, "attempts", "detail", "at"}
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)
    # [partner ID, "matched" | "sold" | the first rule that excluded it], per partner considered
    decisions: list[list[Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)  # {"at": ms, "event", "detail"}
    test: bool = False
    # The consumer's consent and its evidence (pingpost.consent), when the lead carries any.
    consent: dict[str, Any] = field(default_factory=dict)
    expires_at: int | None = None  # epoch seconds: the ping's TTL, then the retention
    claim: str | None = None  # the token of the post (or full request) selling the lead now
    ended_by: str | None = None  # the token of the post whose write recorded its outcome
    claimed_at: int | None = None  # epoch milliseconds, by the claimant's clock (for reading)
    # The claimant's progress: every sale adds one. A claim whose token and beat stay the same
    # while another request (or the sweep) watches is presumed dead: stored values, no clocks.
    beat: int = 0
    sweep_seen: str | None = None  # the claim#beat the sweep saw last; the same next time: dead
    # A full request's lead that the sweep ended unsold when its request died before any answer:
    # nobody was told Unmatched, so a repeat of the request may still sell it.
    unanswered: bool = False
    # The outbox marker: the sweep looks at the lead after a grace period (see store.deliveries).
    outbox: str | None = None
    outbox_since: int | None = None
    # What each buyer that bids answered when asked (pingpost.auction), by partner ID.
    bids: dict[str, dict[str, Any]] = field(default_factory=dict)
    returns: list[dict[str, Any]] = field(default_factory=list)  # partner_id, at, reason, price
    charged: dict[str, str] = field(default_factory=dict)  # what each sale held (store.sales)

    @property
    def sales(self) -> list[dict[str, Any]]:
        """The sales of this lead, best price first."""
        ordered = sorted(self.sold_to.items(), key=lambda sale: (-sale[1], int(sale[0])))
        return [{"partner_id": int(partner), "price": price} for partner, price in ordered]

    def item(self) -> dict[str, Any]:
        """The DynamoDB item of this lead."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "charged"}
        values["decisions"] = stored_decisions(self.decisions)
        return to_item(values | {CHARGED + p: v for p, v in self.charged.items()})

    @classmethod
    def of(cls, item: dict[str, Any]) -> "Lead":
        """The lead in a DynamoDB item."""
        known = {f.name for f in fields(cls)}
        read = from_item(item)
        values = {k: v for k, v in read.items() if k in known and k != "charged"}
        values["charged"] = {k[len(CHARGED) :]: v for k, v in read.items() if k.startswith(CHARGED)}
        whole = ("lead_id", "created_at", "expires_at", "claimed_at", "times_sold", "beat")
        for name in (*whole, "outbox_since"):
            if values.get(name) is not None:
                values[name] = int(values[name])
        values["decisions"] = read_decisions(values.get("decisions", []))
        return cls(**values)


def stored_decisions(decisions: Sequence[Sequence[Any]]) -> dict[str, str]:
    """A lead's decisions as stored: the partners of each verdict, their IDs in one text (a
    lead may have hundreds; a pair each made the item several times larger to write)."""
    by_verdict: dict[str, list[str]] = {}
    for partner_id, verdict in decisions:
        by_verdict.setdefault(str(verdict), []).append(str(partner_id))
    return {verdict: " ".join(ids) for verdict, ids in by_verdict.items()}


def read_decisions(stored: Any) -> list[list[Any]]:
    """A lead's decisions ([partner ID, verdict], by partner ID) as `stored_decisions` keeps
    them, or as pairs (leads stored before)."""
    if isinstance(stored, Mapping):
        pairs = [[int(p), verdict] for verdict, ids in stored.items() for p in ids.split()]
        return sorted(pairs, key=lambda pair: pair[0])
    return [[int(p), verdict] for p, verdict in stored]


def _beat_is(beat: int) -> str:
    """The condition that the lead's beat is `beat` (a lead claimed before beats had none)."""
    return "(beat = :beat OR attribute_not_exists(beat))" if beat == 0 else "beat = :beat"


def _conditional_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class Repeat(NamedTuple):
    """What makes a full request the repeat of an earlier one (kept in the counters table).

    `key`: the record's key (the vendor and its Idempotency-Key, or the request's digest);
    `request`: the request's digest; `expires_at`: epoch seconds, the end of the window.
    """

    key: str
    request: str
    expires_at: int


class Repeated(Exception):
    """The request repeats one that was given `lead_id`, within its window."""

    def __init__(self, lead_id: int, request: str) -> None:
        super().__init__(f"a repeat of lead {lead_id}")
        self.lead_id = lead_id
        self.request = request


_ATTEMPTS = 5


def kept_until(now: int) -> int:
    """The epoch second DynamoDB may delete a lead (or dedupe record) last written at `now`."""
    return now + settings().lead_retention_days * 86_400


def add(lead: Lead, repeat: Repeat | None = None, tallies: Sequence[Tally] = ()) -> None:
    """Store a new lead; its ID must be new. `tallies`: day figures counted with it.

    With `repeat`, the lead and its repeat record are written together, unless a record with
    that key is still in its window: then Repeated names the lead it was written with.
    """
    put: Any = {
        "TableName": settings().leads_table,
        "Item": lead.item(),
        "ConditionExpression": "attribute_not_exists(lead_id)",
    }
    tally = figures.riding(tallies)
    if tally is not None:
        put["Item"][figures.TALLY] = {"S": tally}
    if repeat is None:
        try:
            dynamodb().put_item(**put, ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except (ClientError, BotoCoreError) as error:
            # An attempt whose answer was lost may have stored it (botocore's next attempt then
            # finds it there, or its retries were spent): is the lead there this very write?
            found: Any = error.response.get("Item") if isinstance(error, ClientError) else None
            if not _same(put["Item"], found or _stored_item(lead.lead_id)):
                raise
        return
    for attempt in range(_ATTEMPTS):
        records: list[Any] = [] if repeat is None else [{"Put": _record(lead, repeat)}]
        try:
            # botocore gives the call a ClientRequestToken and keeps it across its own retries,
            # so DynamoDB applies it once even when an answer is lost on the way.
            dynamodb().transact_write_items(TransactItems=[{"Put": put}, *records])
            return
        except BotoCoreError:
            if _same(put["Item"], _stored_item(lead.lead_id)):
                return  # applied; only its answer was lost
            raise
        except ClientError as error:
            reasons: Any = error.response.get("CancellationReasons", [])
            codes = [r.get("Code") for r in reasons]
            if repeat is not None and codes[1:2] == ["ConditionalCheckFailed"]:
                earlier = _repeat_record(repeat.key)
                if earlier is None:
                    continue  # its window ended meanwhile
                if earlier.lead_id != lead.lead_id:
                    raise earlier from None
                return  # our own write, applied by an attempt whose answer was lost
            if "TransactionConflict" in codes and attempt < _ATTEMPTS - 1:
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
                continue
            if not codes and _same(put["Item"], _stored_item(lead.lead_id)):
                return  # applied; only its answer was lost
            raise
    raise Conflict(  # pragma: no cover (the record's window ended under every attempt)
        "A request like this one is being stored by another request; retry shortly"
    )


def _record(lead: Lead, repeat: Repeat) -> Any:
    """The put of a full request's repeat record, unless one is still in its window."""
    return {
        "TableName": settings().counters_table,
        "Item": to_item(
            {
                "counter": repeat.key,
                "lead_id": lead.lead_id,
                "request": repeat.request,
                "expires_at": repeat.expires_at,
            }
        ),
        "ConditionExpression": "attribute_not_exists(#c) OR expires_at < :now",
        "ExpressionAttributeNames": {"#c": "counter"},
        "ExpressionAttributeValues": {":now": {"N": str(int(time.time()))}},
    }


def _same(mine: Mapping[str, Any], found: Mapping[str, Any] | None) -> bool:
    """Whether the stored lead `found` is the write `mine` (items as DynamoDB holds them): its ID
    is new, and it was made by this vendor at this millisecond, with this tally's random ID."""
    marks = ("vendor_id", "created_at", figures.TALLY)
    return bool(found) and all(found.get(k) == mine.get(k) for k in marks)  # type: ignore[union-attr]


def _stored_item(lead_id: int) -> Mapping[str, Any] | None:
    try:
        key = {"lead_id": {"N": str(lead_id)}}
        found: Any = dynamodb().get_item(
            TableName=settings().leads_table, Key=key, ConsistentRead=True
        )
    except (ClientError, BotoCoreError):
        return None
    item: Mapping[str, Any] | None = found.get("Item")
    return item


def _repeat_record(key: str) -> Repeated | None:
    item = (
        dynamodb()
        .get_item(
            TableName=settings().counters_table,
            Key={"counter": {"S": key}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    if item is None:
        return None
    values = from_item(item)
    if int(values["expires_at"]) < int(time.time()):
        return None
    return Repeated(int(values["lead_id"]), str(values["request"]))


def get(lead_id: int) -> Lead | None:
    """The lead with this ID, read consistently, or None."""
    response = dynamodb().get_item(
        TableName=settings().leads_table,
        Key={"lead_id": {"N": str(lead_id)}},
        ConsistentRead=True,
    )
    item = response.get("Item")
    return None if item is None else Lead.of(item)


def claim(
    lead_id: int,
    vendor_id: str,
    token: str,
    now_ms: int,
    seen: tuple[str, int] | None = None,
    posted: Lead | None = None,
    reopen: bool = False,
) -> Lead | None:
    """Take the lead for one post: the lead as claimed (with the sales earlier posts recorded on
    it); None when another post has it or it is already done.

    `seen`: the (claim, beat) of a post that another request watched make no progress; the lead
    is taken over only if that claim is still the lead's, at the same beat.
    `posted`: the lead with the post's data, recorded with the claim, so that whatever happens
    after it, its sales are delivered with the data they were sold with.
    `reopen`: take an unanswered lead (see Lead.unanswered) for a repeat of its request.
    """
    condition = "vendor_id = :vendor AND #s = :pinged"
    if seen:
        condition = (
            "vendor_id = :vendor AND (#s = :pinged OR"
            f" (#s = :posting AND claim = :seen AND {_beat_is(seen[1])}))"
        )
    if reopen:
        condition = "vendor_id = :vendor AND #s = :unsold AND unanswered = :yes"
    try:
        response = dynamodb().update_item(
            TableName=settings().leads_table,
            Key={"lead_id": {"N": str(lead_id)}},
            UpdateExpression=(
                "SET #s = :posting, claim = :token, claimed_at = :now, beat = :zero,"
                " sold_to = if_not_exists(sold_to, :none),"
                " deliveries = if_not_exists(deliveries, :none),"
                # Until the post is recorded the sweep watches the lead.
                " outbox = :shard, outbox_since = if_not_exists(outbox_since, :now)"
                + (
                    ", #d = :data, extra = :extra, matches = :matches, consent = :consent,"
                    " test = :test"
                    if posted
                    else ""
                )
                # The ping's expiry ends here: the lead is kept for the retention period.
                # The ping's figures were counted from its write: not carried further.
                + ", expires_at = :kept REMOVE sweep_seen, unanswered, "
                + figures.TALLY
            ),
            ConditionExpression=condition,
            ExpressionAttributeNames={"#s": "status", **({"#d": "data"} if posted else {})},
            ExpressionAttributeValues=to_item(
                {
                    ":posting": POSTING,
                    **({":unsold": UNSOLD, ":yes": True} if reopen else {":pinged": PINGED}),
                    ":token": token,
                    ":now": now_ms,
                    ":zero": 0,
                    ":vendor": vendor_id,
                    ":none": {},
                    ":shard": outbox_shard(lead_id),
                    ":kept": kept_until(now_ms // 1000),
                    **({":seen": seen[0], ":beat": seen[1]} if seen else {}),
                    **(
                        {
                            ":data": posted.data,
                            ":extra": posted.extra,
                            ":matches": posted.matches,
                            ":consent": posted.consent,
                            ":test": posted.test,
                        }
                        if posted
                        else {}
                    ),
                }
            ),
            ReturnValues="ALL_NEW",
        )
    except ClientError as error:
        if _conditional_failed(error):
            return None
        raise
    return Lead.of(response["Attributes"])


def finishing(lead: Lead) -> tuple[str, str, dict[str, str], dict[str, Any]]:
    """What records a post's outcome (`lead` as it ends, its `timeline` to append): the SET and
    REMOVE clauses of an update, with their names and values (`:token`, the post's, is the
    caller's). The last sale writes them with it; `finish` alone when the post ends otherwise."""
    sets = (
        "#s = :status, #d = :data, extra = :extra, answer = :answer, matches = :matches,"
        " decisions = :decisions, test = :test, consent = :consent,"
        " timeline = list_append(if_not_exists(timeline, :none), :timeline), expires_at = :kept,"
        " ended_by = :token"
    )
    # A lead with sales leaves the outbox once their messages are queued.
    removes = "claim, claimed_at" + ("" if lead.status == SOLD else ", outbox, outbox_since")
    values = {
        ":status": lead.status,
        ":data": lead.data,
        ":extra": lead.extra,
        ":answer": lead.answer,
        ":matches": lead.matches,
        ":decisions": stored_decisions(lead.decisions),
        ":test": lead.test,
        ":consent": lead.consent,
        ":timeline": lead.timeline,
        ":kept": kept_until(int(time.time())),
        ":none": [],
    }
    return sets, removes, {"#s": "status", "#d": "data"}, values


def finish(lead: Lead, token: str, tallies: Sequence[Tally] = ()) -> bool:
    """Record a post's outcome (and `tallies`, its day figures) if this post still holds the
    claim; `lead.timeline` is appended."""
    sets, removes, names, values = finishing(lead)
    update = {
        "TableName": settings().leads_table,
        "Key": {"lead_id": {"N": str(lead.lead_id)}},
        "UpdateExpression": f"SET {sets} REMOVE {removes}",
        "ConditionExpression": "#s = :posting AND claim = :token",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_item(values | {":posting": POSTING, ":token": token}),
    }
    return figures.write(update, tallies)


def _held(lead: Lead) -> tuple[str, dict[str, Any]]:
    """The condition that a claim is as it was seen (the same post, the same progress)."""
    condition = f"#s = :posting AND claim = :claim AND {_beat_is(lead.beat)}"
    return condition, {":posting": POSTING, ":claim": lead.claim or "", ":beat": lead.beat}


def watch(lead: Lead) -> bool:
    """Note (for the sweep's next run) the claim and progress of a lead seen posting."""
    held, values = _held(lead)
    try:
        dynamodb().update_item(
            TableName=settings().leads_table,
            Key={"lead_id": {"N": str(lead.lead_id)}},
            UpdateExpression="SET sweep_seen = :seen",
            ConditionExpression=held,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=to_item(values | {":seen": f"{lead.claim}#{lead.beat}"}),
        )
    except ClientError as error:
        if _conditional_failed(error):
            return False
        raise
    return True


def abandon(lead: Lead, status: str, answer: dict[str, Any], event: dict[str, Any]) -> bool:
    """End a post that died holding the lead: record `status` and `answer` if the claim and its
    progress are still those seen. PINGED puts the lead back to await a post (with the ping's
    expiry again); UNSOLD (a full request's lead without sales) marks it unanswered; a lead
    without sales leaves the outbox."""
    update = (
        "SET #s = :status, answer = :answer,"
        " timeline = list_append(if_not_exists(timeline, :none), :event)"
    )
    held, values = _held(lead)
    values |= {":status": status, ":answer": answer, ":event": [event], ":none": []}
    if status == UNSOLD:
        update += ", unanswered = :yes"
        values[":yes"] = True
    if status == PINGED:
        update += ", expires_at = :expires"
        values[":expires"] = int(event["at"]) // 1000 + settings().ping_ttl_hours * 3600
    update += " REMOVE claim, claimed_at, sweep_seen" + (
        "" if lead.sold_to else ", outbox, outbox_since"
    )
    try:
        dynamodb().update_item(
            TableName=settings().leads_table,
            Key={"lead_id": {"N": str(lead.lead_id)}},
            UpdateExpression=update,
            ConditionExpression=held,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=to_item(values),
        )
    except ClientError as error:
        if _conditional_failed(error):
            return False
        raise
    return True
