"""The partners table: buyers, and the index that finds those a lead may meet.

**Writing.** Every write of a partner takes the next version of the partners' version item (in
the counters table) and adds itself to the item's log, in one transaction with the partner
(conditional on the version before, so no version is skipped or given twice), and in the same
transaction files the partner in the index: the counters table's items `partners#in#<lead
type>#<state>#<product>#<shard>` hold the IDs of the active partners whose filters may admit a
lead of that type, state and product (`*`: any; `placings`; each place spread over a few items
by partner ID). A partner of many states and products is filed more coarsely (by state alone,
by product alone, or by type alone: each place a superset of the leads it buys), so that its old
and new places fit in the transaction. A partner is never
deleted by the exchange: pausing one writes it `active: false`, which takes it out of the index.

**Reading.** A container holds only the partners of the leads it has met: for a lead, the few
index items of its neighbourhood (`neighbourhood`: its state or any, its product or any), read by
key, and the partners they name that it does not hold yet, read by key; a lead of the same
neighbourhood later meets the same indexed set. At most every `cache_seconds` it reads the
version item: when the version is the one it has, nothing else is read; when it moved, the log
names the partners of the last `LOG` writes, and the container reads those again (strongly
consistent, so it gets them as they are now, whatever the order their writes landed in), and
moves them in the index items it holds. A container further behind than the log reaches drops
what it holds and reads each neighbourhood again when a lead needs it.

A table written before the index (its version item not marked `indexed`) is read whole, as it
was, until `pingpost partners reindex` files every partner (`reindex`).

A container holds at most `partners_held` partners: past it, it lets go of the neighbourhoods
it met longest ago. A delivery looks its partner up by id (one read, kept `cache_seconds`).

One module of over 400 lines on purpose: the writes of partners and the containers' copies keep
one version and one index in step, and the conditions that keep them so read in one place.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pingpost.config import settings
from pingpost.fields import LEAD_TYPE
from pingpost.matching import Criteria, PartnerSet
from pingpost.models import STORED, Partner
from pingpost.observability import logger
from pingpost.store import Expiring, counters, dynamodb, from_item, secrets, to_item
from pingpost.store.placings import INDEX, moves, neighbourhood, placings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

VERSION = "partners#version"  # the counters table's item counting partner writes
LOG = 100  # the version item names the partners of this many latest writes
_ATTEMPTS = 20
# What cancels a partner's write when another write came at the same time: tried again.
_RACES = {"ConditionalCheckFailed", "TransactionConflict", "ThrottlingError"}


class _Kept:
    """What this container holds of the partners, as of a version of the partners table."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version: int | None = None  # None: nothing read yet
        self.indexed = False
        self.checked = 0.0  # time.monotonic() of the last look at the version
        self.partners: dict[int, Partner] = {}  # those read, active or not
        self.places: dict[str, frozenset[int]] = {}  # index items read
        # The indexed sets matched against, by neighbourhood (or "" for the whole of an
        # unindexed table), the same object until a partner of it or its places change.
        self.sets: dict[tuple[str, ...], PartnerSet] = {}
        self.whole = False  # every partner is held (an unindexed table)
        # IDs the index names that no partner has (one deleted by hand): not read again.
        self.absent: set[int] = set()


_kept = _Kept()
_one: Expiring[int, Partner | None] = Expiring(lambda: settings().cache_seconds)
_WHOLE: tuple[str, ...] = ("",)


def near(lead: Criteria) -> PartnerSet:
    """The active partners whose type, state and product filters may admit `lead`, indexed for
    matching (a superset: `matching.match` applies every filter): what this container holds,
    refreshed by what changed, and what it does not hold yet read by key."""
    with _kept.lock:
        _refresh()
        if not _kept.indexed:
            if not _kept.whole:
                _kept.partners = {p.id: p for p in all_partners()}
                _kept.whole = True
            return _set(_WHOLE, _kept.partners)
        keys = neighbourhood(lead)
        indexed = _kept.sets.pop(keys, None)
        if indexed is not None:
            _kept.sets[keys] = indexed  # met last: let go last
            return indexed
        _kept.places |= _read_places([k for k in keys if k not in _kept.places])
        ids = set().union(*(_kept.places[k] for k in keys))
        wanted = ids - _kept.partners.keys() - _kept.absent
        found = _read_many(wanted)
        _kept.partners |= found
        _kept.absent |= wanted - found.keys()
        made = _set(keys, {i: _kept.partners[i] for i in ids if i in _kept.partners})
        if len(_kept.partners) > settings().partners_held:
            _let_go(keys)
        return made


def _let_go(keeping: tuple[str, ...]) -> None:
    """Let go of the neighbourhoods met longest ago (their sets, index items and partners)
    until the container holds at most `partners_held` partners, or only `keeping`'s."""
    while len(_kept.partners) > settings().partners_held and len(_kept.sets) > 1:
        oldest = next(k for k in _kept.sets if k != keeping)
        del _kept.sets[oldest]
        kept_places = {key for keys in _kept.sets for key in keys}
        _kept.places = {k: v for k, v in _kept.places.items() if k in kept_places}
        named = set().union(*_kept.places.values())
        _kept.partners = {i: p for i, p in _kept.partners.items() if i in named}


def _set(keys: tuple[str, ...], held: Mapping[int, Partner]) -> PartnerSet:
    found = _kept.sets.get(keys)
    if found is None:
        found = _kept.sets[keys] = PartnerSet(p for p in held.values() if p.active)
    return found


def _refresh() -> None:
    """Look at the partners' version (at most every `cache_seconds`) and apply what changed."""
    now = time.monotonic()
    if _kept.version is not None and now - _kept.checked < settings().cache_seconds:
        return
    version, log, indexed = _version()
    seen = _kept.version
    if (
        seen is None
        or version < seen
        or indexed != _kept.indexed
        or not _reaches(log, seen, version)
    ):
        _drop()
    elif version > seen:
        _apply({p for change, p in log if change > seen})
    _kept.version, _kept.indexed, _kept.checked = version, indexed, now


def _drop() -> None:
    _kept.partners, _kept.places, _kept.sets, _kept.whole = {}, {}, {}, False
    _kept.absent = set()


def _apply(written: set[int]) -> None:
    """The partners written since the version held, read as they are now, and moved in the
    index items held; the sets they were or are in are indexed again when next met."""
    fresh = _read_many(written)
    _kept.absent -= written
    moved: set[str] = set()
    for partner_id in written:
        partner = fresh.get(partner_id)
        now_in = placings(partner) if partner is not None else frozenset()
        # A set of these places may lack it even where they hold it (a copy held paused when
        # another container resumed it there): every set of them is indexed again.
        moved |= now_in
        for key, ids in _kept.places.items():
            if (partner_id in ids) != (key in now_in):
                _kept.places[key] = ids ^ {partner_id}
                moved.add(key)
        held = _kept.whole or partner_id in _kept.partners
        if partner is not None and (held or any(key in _kept.places for key in now_in)):
            _kept.partners[partner_id] = partner
        else:
            _kept.partners.pop(partner_id, None)
    if _kept.whole:
        _kept.sets.clear()
        return
    _kept.sets = {
        keys: kept
        for keys, kept in _kept.sets.items()
        if not moved.intersection(keys) and not any(i in kept for i in written)
    }


def _reaches(log: list[tuple[int, int]], seen: int, version: int) -> bool:
    """Whether the log names every write after version `seen` (up to `version`)."""
    return version == seen or (bool(log) and min(change for change, _ in log) <= seen + 1)


def _version() -> tuple[int, list[tuple[int, int]], bool]:
    """The partners' version, its log ((version, partner ID) of the latest writes), and whether
    the index files every partner."""
    item = dynamodb().get_item(
        TableName=settings().counters_table,
        Key={"counter": {"S": VERSION}},
        ConsistentRead=True,
    )
    values = from_item(item.get("Item", {}))
    log = [(int(change), int(partner)) for change, partner in values.get("log", [])]
    return int(values.get("version", 0)), log, values.get("indexed") is True


def _read_places(keys: Collection[str]) -> dict[str, frozenset[int]]:
    """Index items by key, as they are now (an item never written names nobody)."""
    found = counters.read(list(keys), consistent=True)
    return {key: frozenset(int(i) for i in found.get(key, {}).get("ids", ())) for key in keys}


def _read_many(ids: Iterable[int]) -> dict[int, Partner]:
    """The partners of these IDs that exist, as they are now (strongly consistent reads, 100 a
    call, the calls made at once)."""
    wanted = sorted(ids)
    chunks = [wanted[start : start + 100] for start in range(0, len(wanted), 100)]
    if len(chunks) <= 1:
        return _read_chunk(wanted) if wanted else {}
    found: dict[int, Partner] = {}
    with ThreadPoolExecutor(max_workers=min(len(chunks), 8)) as pool:
        for part in pool.map(_read_chunk, chunks):
            found |= part
    return found


def _read_chunk(ids: list[int]) -> dict[int, Partner]:
    table = settings().partners_table
    found: dict[int, Partner] = {}
    keys = [{"partner_id": {"N": str(p)}} for p in ids]
    pending: Any = {table: {"Keys": keys, "ConsistentRead": True}}
    while pending:
        response = dynamodb().batch_get_item(RequestItems=pending)
        for item in response.get("Responses", {}).get(table, []):
            partner = stored(item)
            found[partner.id] = partner
        pending = response.get("UnprocessedKeys") or None
    return found


def all_partners() -> list[Partner]:
    """Every partner, read from the table as it is now (a strongly consistent scan)."""
    pages = (
        dynamodb()
        .get_paginator("scan")
        .paginate(TableName=settings().partners_table, ConsistentRead=True)
    )
    return [stored(item) for page in pages for item in page.get("Items", [])]


def stored(raw: Mapping[str, Any]) -> Partner:
    """A partner from its item in the table (DynamoDB's typed attribute values)."""
    item = from_item(raw)
    item["id"] = item.pop("partner_id")
    item.pop("change", None)
    return Partner.model_validate(item, context=STORED)


class PartnerChanged(Exception):
    """A conditional write found the partner otherwise than its writer expected: there is one of
    its ID already (adding), or another write came since it was read (changing)."""


class PartnerNotWritten(RuntimeError):
    """Other writes took every version of the partners table while a partner was written."""


def read(partner_id: int) -> tuple[Partner, int] | None:
    """A partner as stored now, with the version that wrote it (for `put(written=...)`)."""
    item = (
        dynamodb()
        .get_item(
            TableName=settings().partners_table,
            Key={"partner_id": {"N": str(partner_id)}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    if item is None:
        return None
    return stored(item), int(item.get("change", {}).get("N", 0))


def compact(item: dict[str, Any]) -> dict[str, Any]:
    """A partner's item without what its defaults say: a partner that does not bid stores
    nothing of bidding, one of Home Improvement's alone no lead types, one without field
    filters none (each attribute is memory and read units for every container that holds it)."""
    for request in ("bid", "post"):
        if item.get(request, False) is None:
            del item[request]
    if item.get("lead_types") == [LEAD_TYPE]:
        del item["lead_types"]
    if not item.get("filters", {}).get("fields", True):
        del item["filters"]["fields"]
    return item


def put(partner: Partner, *, new: bool = False, written: int | None = None) -> None:
    """Create or replace a partner, filed in the index; its header values go to SSM, their
    names to the table.

    `new`: only if there is no partner of its ID; `written`: only if the version that wrote the
    partner is still that one (as `read` gave it). Either raises PartnerChanged otherwise.
    """
    # Checked before the secrets are written too: the transaction checks it again.
    before = _as_expected(partner.id, new, written)
    item = partner.model_dump(mode="python")
    sending: dict[str, dict[str, str]] = {}
    gone = []
    for request in secrets.PARAMETERS:  # delivery, bid, post
        endpoint = getattr(partner, request)
        sent = item[request].pop("headers") if endpoint is not None else {}
        if sent:
            sending[request] = sent
            item[request]["secret_headers"] = sorted(sent)
        elif endpoint is None or not endpoint.secret_headers:
            gone.append(request)  # headers removed: their values go too, once it is written
    item = compact(item)
    item["partner_id"] = item.pop("id")
    # New values are stored before the partner that names them; the partner as it stands sends
    # the values it had again if this one is certainly not written, and keeps those it drops
    # until it is. (Parameter Store writes no value on a condition: a write between a check
    # and what follows it may still be undone; these narrow that to one call's time.)
    dropping = secrets.versions(partner.id, gone)
    versions: dict[str, int] = {}
    outcome = _Outcome()
    try:
        for request, sent in sending.items():
            versions[request] = secrets.put(partner.id, sent, request)
        _write(partner, item, before, new=new, written=written, outcome=outcome)
    except BaseException:
        if not outcome.maybe_written:
            _put_back(partner.id, versions)
        raise
    now = secrets.versions(partner.id, list(dropping))
    # Each unless another write stored it since.
    secrets.forget(partner.id, [r for r, version in dropping.items() if now.get(r) == version])


class _Outcome:
    """Whether a partner's transaction may have been written: sent, and not refused (a timeout
    or a server's error leaves it unknown)."""

    def __init__(self) -> None:
        self.maybe_written = False


def _put_back(partner_id: int, versions: Mapping[str, int]) -> None:
    """Undo the secret headers a partner's write stored (`versions`: the parameters' versions
    it made) when it is certainly not written: each goes back to the version before it, while
    it is still that write's (another write's values stand). One that cannot be put back is
    logged, and the write's own error is what its caller sees."""
    for request, version in versions.items():
        try:
            if secrets.versions(partner_id, [request]).get(request) != version:
                continue  # written again since
            was = secrets.stored(partner_id, request, version - 1) if version > 1 else None
            if was is None:
                secrets.forget(partner_id, [request])
            else:
                secrets.put(partner_id, was[0], request)
        except (BotoCoreError, ClientError, ValueError) as error:  # (ValueError: not JSON)
            logger.error(
                "partner %s: its %s headers as they were could not be put back: %s",
                partner_id,
                request,
                error,
            )


def _write(
    partner: Partner,
    item: dict[str, Any],
    before: tuple[Partner, int] | None,
    *,
    new: bool,
    written: int | None,
    outcome: _Outcome,
) -> None:
    """Write a partner's item, filed in the index, in a transaction with the table's version
    (`put`'s conditions; PartnerChanged when they fail)."""
    for attempt in range(_ATTEMPTS):
        if attempt:  # another write of it may have come: as it is now
            before = _as_expected(partner.id, new, written)
        version, log, _ = _version()
        item["change"] = version + 1  # the version that wrote it, for the reader of the table
        logged = [*log, (version + 1, partner.id)][-LOG:]
        was = placings(before[0]) if before is not None else frozenset()
        # The table's first write through here indexes it from the start, unless partners
        # were written to it otherwise (by hand): those are filed by `reindex`.
        fresh = version == 0 and before is None and not _any_partner()
        items = [
            _put(item, None if before is None else before[1]),
            _next_version(version, logged, fresh=fresh),
            *moves(partner.id, was, placings(partner)),
        ]
        outcome.maybe_written = True
        try:
            dynamodb().transact_write_items(TransactItems=items)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
            outcome.maybe_written = status >= 500  # refused (4xx): nothing of it is written
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            codes = [r.get("Code") for r in error.response.get("CancellationReasons") or [{}]]
            if codes[0] == "ConditionalCheckFailed" and (new or written is not None):
                raise PartnerChanged(partner.id) from None
            if not set(codes) & _RACES:
                raise  # not a race with another write (an index item too large, say)
        else:
            with _kept.lock:
                _kept.checked = 0.0  # this container looks at the version at its next use
            _one.forget(partner.id)
            return
        # Another write took this version (or wrote this partner): again, after a while.
        time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
    raise PartnerNotWritten(f"partner {partner.id} not written: other writes took every version")


def _as_expected(partner_id: int, new: bool, written: int | None) -> tuple[Partner, int] | None:
    """The partner as stored now (`read`); PartnerChanged when it is not as the writer expects
    (`new`: none; `written`: written by that version)."""
    before = read(partner_id)
    if (
        (before is not None)
        if new
        else (written is not None and (before is None or before[1] != written))
    ):
        raise PartnerChanged(partner_id)
    return before


def _put(item: dict[str, Any], change: int | None) -> TransactWriteItemTypeDef:
    """The Put of a partner, on the condition that it is as it was read (`change`: the version
    that wrote it; None: there was none)."""
    condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(partner_id)"}
    if change == 0:  # written before versions: it has none
        condition = {
            "ConditionExpression": "attribute_exists(partner_id) AND attribute_not_exists(change)"
        }
    elif change is not None:
        condition = {
            "ConditionExpression": "change = :written",
            "ExpressionAttributeValues": to_item({":written": change}),
        }
    put: Any = {"TableName": settings().partners_table, "Item": to_item(item), **condition}
    return {"Put": put}


def _any_partner() -> bool:
    """Whether the partners table has any item."""
    found = dynamodb().scan(TableName=settings().partners_table, Limit=1, ConsistentRead=True)
    return bool(found.get("Items"))


def _next_version(
    version: int, logged: list[tuple[int, int]], *, fresh: bool
) -> TransactWriteItemTypeDef:
    """The version item's next version and log; `fresh`: the table is indexed from now on
    (its first partner is written now)."""
    return {
        "Update": {
            "TableName": settings().counters_table,
            "Key": {"counter": {"S": VERSION}},
            "UpdateExpression": (
                "SET version = :next, #log = :log, #ix = if_not_exists(#ix, :fresh)"
            ),
            "ConditionExpression": "attribute_not_exists(version) OR version = :seen",
            "ExpressionAttributeNames": {"#log": "log", "#ix": "indexed"},
            "ExpressionAttributeValues": to_item(
                {
                    ":next": version + 1,
                    ":seen": version,
                    ":log": [list(entry) for entry in logged],
                    ":fresh": fresh,
                }
            ),
        }
    }


def reindex() -> int:
    """File every partner in the index, as the table is now, and mark the table indexed (a table
    written before the index; any time after, it files them as they are, and every container
    reads the index again). The number of index items; done again when a partner is written
    meanwhile.

    An index item may name a partner too many, never one too few: IDs are added by plain writes
    (a partner written meanwhile is added by its own write too), and taken out only in
    transactions that hold while the partners' version is the one this pass read.
    """
    for attempt in range(_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0.01, 0.05) * attempt)
        version, _, _ = _version()
        filed: dict[str, set[int]] = {}
        for partner in all_partners():
            for key in placings(partner):
                filed.setdefault(key, set()).add(partner.id)
        try:
            _reindex(version, filed)
        except ClientError as error:
            if _raced(error):
                continue  # a partner was written meanwhile: file them again
            raise
        return len(filed)
    raise RuntimeError("partners not indexed: other writes kept coming")


def _reindex(version: int, filed: Mapping[str, set[int]]) -> None:
    table = settings().counters_table
    for key, ids in filed.items():
        dynamodb().update_item(
            TableName=table,
            Key={"counter": {"S": key}},
            UpdateExpression="ADD ids :ids",
            ExpressionAttributeValues={":ids": {"NS": [str(i) for i in sorted(ids)]}},
        )
    stale: list[tuple[str, set[int]]] = []
    pages = (
        dynamodb()
        .get_paginator("scan")
        .paginate(
            TableName=table,
            ConsistentRead=True,
            ProjectionExpression="#c, ids",
            FilterExpression="begins_with(#c, :index)",
            ExpressionAttributeNames={"#c": "counter"},
            ExpressionAttributeValues={":index": {"S": INDEX}},
        )
    )
    for page in pages:
        for item in page.get("Items", []):
            key = item["counter"]["S"]
            extra = {int(i) for i in item.get("ids", {}).get("NS", [])} - filed.get(key, set())
            if extra:
                stale.append((key, extra))
    unchanged = "attribute_not_exists(version) OR version = :seen"
    seen = to_item({":seen": version})
    for start in range(0, len(stale), 99):
        check: Any = {
            "ConditionCheck": {
                "TableName": table,
                "Key": {"counter": {"S": VERSION}},
                "ConditionExpression": unchanged,
                "ExpressionAttributeValues": seen,
            }
        }
        taken: list[Any] = [
            {
                "Update": {
                    "TableName": table,
                    "Key": {"counter": {"S": key}},
                    "UpdateExpression": "DELETE ids :ids",
                    "ExpressionAttributeValues": {":ids": {"NS": [str(i) for i in sorted(ids)]}},
                }
            }
            for key, ids in stale[start : start + 99]
        ]
        dynamodb().transact_write_items(TransactItems=[check, *taken])
    dynamodb().update_item(
        TableName=table,
        Key={"counter": {"S": VERSION}},
        # The next version with an empty log: every container lets go of what it holds (it
        # may have read an index item this changed) and reads it again.
        UpdateExpression="SET #ix = :yes, version = :next, #log = :none",
        ConditionExpression=unchanged,
        ExpressionAttributeNames={"#ix": "indexed", "#log": "log"},
        ExpressionAttributeValues=to_item(
            {":yes": True, ":next": version + 1, ":none": [], ":seen": version}
        ),
    )


def _raced(error: ClientError) -> bool:
    """Whether a write failed because another write came at the same time."""
    code = error.response.get("Error", {}).get("Code")
    if code in ("ConditionalCheckFailedException", "TransactionConflictException"):
        return True
    reasons = error.response.get("CancellationReasons") or []
    return code == "TransactionCanceledException" and bool(
        {r.get("Code") for r in reasons} & _RACES
    )


def by_id(partner_id: int) -> Partner | None:
    """Any partner, active or not (a sale is delivered even if its buyer was paused since)."""

    def load() -> Partner | None:
        found = read(partner_id)
        return None if found is None else found[0]

    return _one.get(partner_id, load)


def forget() -> None:
    """Drop this container's copies: the next look reads the partners afresh."""
    with _kept.lock:
        _kept.version = None
        _drop()
    _one.clear()
