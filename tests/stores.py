"""Stores held in memory, for the unit tests of exchange, delivery and redrive.

Each keeps what it is given and answers as the real store would in the case a test sets up;
`failing` makes a named call raise as DynamoDB or SQS would when unreachable. They stand in for
the `pingpost.store` modules (the `pingpost.stores` protocols), never for DynamoDB or SQS.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from pingpost.caps import Usage
from pingpost.matching import Criteria, PartnerSet
from pingpost.models import DONE, PINGED, POSTING, Partner, Vendor, key_hash
from pingpost.store.deliveries import RELEASED, RESERVED
from pingpost.store.figures import Figures, Tally, merged
from pingpost.store.leads import Lead, Repeat, Repeated
from pingpost.store.queues import DeadLetter, Delivery
from pingpost.stores import Stores

KEY = "unit-test-key"


def unreachable(operation: str) -> ClientError:
    """What botocore raises when the service fails a call."""
    return ClientError({"Error": {"Code": "InternalServerError", "Message": "down"}}, operation)


@dataclass
class Failing:
    """Calls to fail: name -> how many more times (each call takes one)."""

    calls: dict[str, int] = field(default_factory=dict)

    def check(self, name: str) -> None:
        if self.calls.get(name, 0) > 0:
            self.calls[name] -= 1
            raise unreachable(name)


@dataclass
class Leads:
    """The leads table: leads by ID, and the repeat records of full requests."""

    stored: dict[int, Lead] = field(default_factory=dict)
    repeats: dict[str, tuple[int, str]] = field(default_factory=dict)
    failing: Failing = field(default_factory=Failing)
    lose_claims: bool = False  # another post holds every lead this store is asked for
    watched: list[int] = field(default_factory=list)
    tallied: list[Tally] = field(default_factory=list)  # day figures of the writes made

    def add(self, lead: Lead, repeat: Repeat | None = None, tallies: Sequence[Tally] = ()) -> None:
        self.failing.check("add")
        if repeat is not None:
            if repeat.key in self.repeats:
                lead_id, request = self.repeats[repeat.key]
                raise Repeated(lead_id, request)
            self.repeats[repeat.key] = (lead.lead_id, repeat.request)
        if lead.lead_id in self.stored:
            raise unreachable("PutItem")  # the real put is conditional: never two leads an ID
        self.stored[lead.lead_id] = replace(lead)
        self.tallied += tallies

    def get(self, lead_id: int) -> Lead | None:
        self.failing.check("get")
        lead = self.stored.get(lead_id)
        return None if lead is None else replace(lead)

    def claim(
        self,
        lead_id: int,
        vendor_id: str,
        token: str,
        now_ms: int,
        seen: tuple[str, int] | None = None,
        posted: Lead | None = None,
        reopen: bool = False,
    ) -> Lead | None:
        self.failing.check("claim")
        lead = self.stored[lead_id]
        if self.lose_claims or (lead.status in DONE and not reopen):
            return None
        if lead.status == POSTING and seen != (lead.claim or "", lead.beat):
            return None
        if posted is not None:
            lead.data, lead.matches, lead.extra = posted.data, posted.matches, posted.extra
            lead.consent = posted.consent
        lead.status, lead.claim, lead.claimed_at = POSTING, token, now_ms
        return replace(lead)

    def finish(self, lead: Lead, token: str, tallies: Sequence[Tally] = ()) -> bool:
        self.failing.check("finish")
        if self.stored[lead.lead_id].claim != token:
            return False
        self.stored[lead.lead_id] = replace(lead, claim=None, ended_by=token, outbox=None)
        self.tallied += tallies
        return True

    def watch(self, lead: Lead) -> bool:
        self.watched.append(lead.lead_id)
        self.stored[lead.lead_id].sweep_seen = f"{lead.claim}#{lead.beat}"
        return True

    def abandon(
        self, lead: Lead, status: str, answer: dict[str, Any], event: dict[str, Any]
    ) -> bool:
        now = self.stored[lead.lead_id]
        if (now.claim, now.beat) != (lead.claim, lead.beat):
            return False
        now.status, now.answer, now.claim = status, answer, None
        now.timeline = [*now.timeline, event]
        return True


@dataclass
class Sales:
    """Sales: each made on the lead in `leads`, unless `refusals` names a reason for it."""

    leads: Leads
    refusals: dict[int, str] = field(default_factory=dict)  # partner ID -> why refused
    unreachable_for: set[int] = field(default_factory=set)  # sales that fail, not made
    applied_then_lost: set[int] = field(default_factory=set)  # sales made, their answer lost
    usages: dict[int, Usage] = field(default_factory=dict)
    made: list[tuple[int, int, bool]] = field(default_factory=list)  # lead, partner, ended it
    confirmed: list[tuple[int, int]] = field(default_factory=list)  # reserved, then posted
    released: list[tuple[int, int]] = field(default_factory=list)  # reserved, then given back
    given_back: list[tuple[int, int, list[str]]] = field(default_factory=list)  # returns

    def usage(self, partners: Sequence[Partner], now: datetime) -> dict[int, Usage]:
        return {p.id: self.usages[p.id] for p in partners if p.id in self.usages}

    def sell(
        self,
        lead_id: int,
        token: str,
        partner: Partner,
        now: datetime,
        *,
        allowed: int,
        consumer: Mapping[str, str],
        test: bool,
        finished: Lead | None = None,
        tallies: Sequence[Tally] = (),
        reserve: Mapping[str, Any] | None = None,
    ) -> str | None:
        if partner.id in self.unreachable_for:
            raise unreachable("TransactWriteItems")
        if partner.id in self.refusals:
            return self.refusals[partner.id]
        lead = self.leads.stored[lead_id]
        if str(partner.id) in lead.sold_to:
            return "already sold to this partner"
        lead.sold_to[str(partner.id)] = partner.price
        lead.beat += 1
        if reserve is not None:
            lead.deliveries[str(partner.id)] = dict(reserve)
        self.made.append((lead_id, partner.id, finished is not None))
        if finished is not None:
            ended = replace(finished, sold_to=dict(lead.sold_to), beat=lead.beat, claim=None)
            self.leads.stored[lead_id] = replace(ended, ended_by=token, outbox=None)
        self.leads.tallied += tallies
        if partner.id in self.applied_then_lost:
            raise unreachable("TransactWriteItems")
        return None

    def _reserved(self, lead_id: int, token: str, partner_id: int) -> Lead | None:
        lead = self.leads.stored[lead_id]
        record = lead.deliveries.get(str(partner_id), {})
        held = lead.claim == token and record.get("state") == RESERVED
        return lead if held else None

    def confirm(
        self,
        lead_id: int,
        token: str,
        partner_id: int,
        detail: str,
        now_ms: int,
        tallies: Sequence[Tally] = (),
    ) -> bool:
        lead = self._reserved(lead_id, token, partner_id)
        if lead is None:
            return False
        lead.deliveries[str(partner_id)] = {"state": "delivered", "detail": detail, "at": now_ms}
        lead.beat += 1
        self.leads.tallied += tallies
        self.confirmed.append((lead_id, partner_id))
        return True

    def release(
        self,
        lead_id: int,
        token: str,
        partner_id: int,
        record: Mapping[str, Any],
        *,
        why: str = "",
        tallies: Sequence[Tally] = (),
    ) -> bool:
        lead = self._reserved(lead_id, token, partner_id)
        if lead is None:
            return False
        self.leads.tallied += tallies
        del lead.sold_to[str(partner_id)]
        lead.deliveries[str(partner_id)] = {"state": RELEASED, "detail": why}
        lead.beat += 1
        self.released.append((lead_id, partner_id))
        return True

    def give_back(
        self,
        lead_id: int,
        partner_id: int,
        charged: Mapping[str, Any],
        record: Mapping[str, Any],
        tallies: Sequence[Tally] = (),
    ) -> bool:
        lead = self.leads.stored[lead_id]
        state = lead.deliveries.get(str(partner_id), {}).get("state")
        returned = any(r["partner_id"] == partner_id for r in lead.returns)
        if str(partner_id) not in lead.sold_to or state == RESERVED or returned:
            return False
        lead.returns.append(dict(record))
        self.given_back.append((lead_id, partner_id, list(charged.get("counters", []))))
        self.leads.tallied += tallies
        return True


@dataclass
class Partners:
    """The partners, all of them near every lead."""

    partners: dict[int, Partner] = field(default_factory=dict)

    @classmethod
    def of(cls, *partners: Partner) -> Partners:
        return cls({p.id: p for p in partners})

    def near(self, lead: Criteria) -> PartnerSet:
        return PartnerSet(p for p in self.partners.values() if p.active)

    def by_id(self, partner_id: int) -> Partner | None:
        return self.partners.get(partner_id)


@dataclass
class Vendors:
    """Vendors by Key."""

    by: dict[str, Vendor] = field(default_factory=dict)

    def by_key(self, key: str) -> Vendor | None:
        wanted = key_hash(key)
        return next((v for v in self.by.values() if wanted in (v.key_hash, v.next_key_hash)), None)


@dataclass
class Counters:
    """Rate limits: `over` names the vendors over theirs."""

    over: set[str] = field(default_factory=set)

    def take(self, vendor_id: str, limit: int, now: float | None = None) -> bool:
        return vendor_id not in self.over


class LeadIds:
    """Lead IDs from 1."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def next(self) -> int:
        return next(self._ids)


@dataclass
class Deliveries:
    """Delivery records (lead, partner) -> record, and the leads in the outbox."""

    records: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    outbox: dict[int, set[int]] = field(default_factory=dict)  # lead -> sales awaiting a message
    failing: Failing = field(default_factory=Failing)
    cleared: list[tuple[int, set[int]]] = field(default_factory=list)
    busy: bool = False  # another worker holds the lease
    park_refused: bool = False
    tallied: list[Tally] = field(default_factory=list)  # day figures of the writes made

    def state(self, lead_id: int, partner_id: int) -> dict[str, Any] | None:
        return self.records.get((lead_id, partner_id))

    def begin(self, lead_id: int, partner_id: int, now_ms: int, lease_ms: int) -> str:
        record = self.records.setdefault((lead_id, partner_id), {"state": "queued"})
        if self.busy:
            return "busy"
        if record["state"] in ("delivered", "failed"):
            return str(record["state"])
        record["state"] = "sending"
        return "started"

    def settle(
        self,
        lead_id: int,
        partner_id: int,
        outcome: str,
        detail: str,
        now_ms: int,
        tallies: Sequence[Tally] = (),
    ) -> bool:
        self.failing.check("settle")
        self.records[lead_id, partner_id] = {"state": outcome, "detail": detail}
        self.tallied += tallies
        return True

    def park(
        self,
        lead_id: int,
        partner_id: int,
        detail: str,
        now_ms: int,
        tallies: Sequence[Tally] = (),
    ) -> bool:
        if (
            self.park_refused
            or self.records.get((lead_id, partner_id), {}).get("state") == "failed"
        ):
            return False
        self.records[lead_id, partner_id] = {"state": "failed", "detail": detail}
        self.tallied += tallies
        return True

    def awaiting_queue(self, lead_id: int) -> set[int]:
        return set(self.outbox.get(lead_id, set()))

    def clear_outbox(self, lead_id: int, partner_ids: Collection[int]) -> None:
        self.failing.check("clear_outbox")
        self.cleared.append((lead_id, set(partner_ids)))
        left = self.outbox.get(lead_id, set()) - set(partner_ids)
        if left:
            self.outbox[lead_id] = left
        else:
            self.outbox.pop(lead_id, None)

    def in_outbox(self, older_than_ms: int) -> list[int]:
        return sorted(self.outbox)


@dataclass
class Queues:
    """The delivery queue (what was sent, with its delay) and the dead letters."""

    sent: list[tuple[Delivery, int]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    refuse: bool = False
    failing: Failing = field(default_factory=Failing)

    def enqueue(self, deliveries: Sequence[Delivery], delay_seconds: int = 0) -> list[Delivery]:
        self.failing.check("enqueue")
        if self.refuse:
            return list(deliveries)
        self.sent += [(d, delay_seconds) for d in deliveries]
        return []

    def dead_letters(self, most: int = 10) -> list[DeadLetter]:
        return self.dead[:most]

    def forget(self, letter: DeadLetter) -> None:
        self.dead.remove(letter)


@dataclass
class Secrets:
    """Partners' header values."""

    values: dict[int, dict[str, str]] = field(default_factory=dict)  # a delivery's
    others: dict[tuple[int, str], dict[str, str]] = field(default_factory=dict)  # bid, post

    def headers(self, partner_id: int, request: str = "delivery") -> dict[str, str]:
        if request != "delivery":
            return dict(self.others.get((partner_id, request), {}))
        return dict(self.values.get(partner_id, {}))


def vendor(**fields: Any) -> Vendor:
    """The test vendor, whose Key is KEY."""
    return Vendor.model_validate({"id": "v1", "key_hash": key_hash(KEY), "cost": 5} | fields)


def buyer(id: int, price: float = 20, **fields: Any) -> Partner:
    """A partner buying every lead at `price`."""
    return Partner.model_validate(
        {"id": id, "price": Decimal(str(price)), "company": f"Buyer {id}"} | fields
    )


@dataclass
class World:
    """Every store, in memory, and the `Stores` the code under test is given."""

    leads: Leads = field(default_factory=Leads)
    partners: Partners = field(default_factory=Partners)
    vendors: Vendors = field(default_factory=Vendors)
    counters: Counters = field(default_factory=Counters)
    deliveries: Deliveries = field(default_factory=Deliveries)
    queues: Queues = field(default_factory=Queues)
    secrets: Secrets = field(default_factory=Secrets)
    lead_ids: LeadIds = field(default_factory=LeadIds)
    sales: Sales = field(init=False)

    def __post_init__(self) -> None:
        self.sales = Sales(self.leads)

    def figures(self) -> dict[str, Figures]:
        """The day figures every write made so far added, by item key."""
        return {t.key: t.figures for t in merged([*self.leads.tallied, *self.deliveries.tallied])}

    def stores(self) -> Stores:
        return Stores(
            leads=self.leads,
            sales=self.sales,
            partners=self.partners,
            vendors=self.vendors,
            counters=self.counters,
            lead_ids=self.lead_ids,
            deliveries=self.deliveries,
            queues=self.queues,
            secrets=self.secrets,
        )


def pinged(lead_id: int, data: Mapping[str, str], vendor_id: str = "v1", **fields: Any) -> Lead:
    """A lead as a ping left it, awaiting its post (`fields` change it)."""
    values: dict[str, Any] = {
        "status": PINGED,
        "cost": Decimal(5),
        "created_at": 0,
        "answer": {"status": "Matched", "lead_id": lead_id},
    }
    return Lead(lead_id=lead_id, vendor_id=vendor_id, data=dict(data), **(values | fields))
