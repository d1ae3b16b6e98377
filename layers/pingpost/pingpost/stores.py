"""What the exchange, deliveries and redrives ask of storage, and the stores that answer.

Each protocol lists the calls one `pingpost.store` module answers (the module itself satisfies
it). `Stores()` holds the real modules; a unit test passes a `Stores` of its own, so that the
services' logic runs without AWS.
"""

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from pingpost.caps import Usage
from pingpost.matching import Criteria, Outcome, PartnerSet, match
from pingpost.models import Partner, Vendor
from pingpost.store import counters, deliveries, leads, partners, queues, sales, secrets, vendors
from pingpost.store.counters import lead_ids
from pingpost.store.figures import Tally
from pingpost.store.leads import Lead, Repeat
from pingpost.store.queues import DeadLetter, Delivery


class LeadStore(Protocol):
    """The leads table (`pingpost.store.leads`)."""

    def add(
        self, lead: Lead, repeat: Repeat | None = None, tallies: Sequence[Tally] = ()
    ) -> None: ...

    def get(self, lead_id: int) -> Lead | None: ...

    def claim(
        self,
        lead_id: int,
        vendor_id: str,
        token: str,
        now_ms: int,
        seen: tuple[str, int] | None = None,
        posted: Lead | None = None,
        reopen: bool = False,
    ) -> Lead | None: ...

    def finish(self, lead: Lead, token: str, tallies: Sequence[Tally] = ()) -> bool: ...

    def watch(self, lead: Lead) -> bool: ...

    def abandon(
        self, lead: Lead, status: str, answer: dict[str, Any], event: dict[str, Any]
    ) -> bool: ...


class SaleStore(Protocol):
    """Sales and the caps' counters (`pingpost.store.sales`)."""

    def usage(self, partners: Sequence[Partner], now: datetime) -> dict[int, Usage]: ...

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
    ) -> str | None: ...

    def confirm(
        self,
        lead_id: int,
        token: str,
        partner_id: int,
        detail: str,
        now_ms: int,
        tallies: Sequence[Tally] = (),
    ) -> bool: ...

    def release(
        self,
        lead_id: int,
        token: str,
        partner_id: int,
        record: Mapping[str, Any],
        *,
        why: str = "",
        tallies: Sequence[Tally] = (),
    ) -> bool: ...

    def give_back(
        self,
        lead_id: int,
        partner_id: int,
        charged: Mapping[str, Any],
        record: Mapping[str, Any],
        tallies: Sequence[Tally] = (),
    ) -> bool: ...


class PartnerStore(Protocol):
    """The partners table (`pingpost.store.partners`)."""

    def near(self, lead: Criteria) -> PartnerSet: ...

    def by_id(self, partner_id: int) -> Partner | None: ...


class VendorStore(Protocol):
    """The vendors table (`pingpost.store.vendors`)."""

    def by_key(self, key: str) -> Vendor | None: ...


class CounterStore(Protocol):
    """Rate limits (`pingpost.store.counters`)."""

    def take(self, vendor_id: str, limit: int, now: float | None = None) -> bool: ...


class LeadIdSource(Protocol):
    """Lead IDs (`pingpost.store.counters.lead_ids`)."""

    def next(self) -> int: ...


class DeliveryStore(Protocol):
    """The delivery records and the outbox (`pingpost.store.deliveries`)."""

    def state(self, lead_id: int, partner_id: int) -> dict[str, Any] | None: ...

    def begin(self, lead_id: int, partner_id: int, now_ms: int, lease_ms: int) -> str: ...

    def settle(
        self,
        lead_id: int,
        partner_id: int,
        outcome: str,
        detail: str,
        now_ms: int,
        tallies: Sequence[Tally] = (),
    ) -> bool: ...

    def park(
        self,
        lead_id: int,
        partner_id: int,
        detail: str,
        now_ms: int,
        tallies: Sequence[Tally] = (),
    ) -> bool: ...

    def awaiting_queue(self, lead_id: int) -> set[int]: ...

    def clear_outbox(self, lead_id: int, partner_ids: Collection[int]) -> None: ...

    def in_outbox(self, older_than_ms: int) -> list[int]: ...


class QueueStore(Protocol):
    """The delivery and dead-letter queues (`pingpost.store.queues`)."""

    def enqueue(self, deliveries: Sequence[Delivery], delay_seconds: int = 0) -> list[Delivery]: ...

    def dead_letters(self, most: int = 10) -> list[DeadLetter]: ...

    def forget(self, letter: DeadLetter) -> None: ...


class SecretStore(Protocol):
    """Partners' header values (`pingpost.store.secrets`)."""

    def headers(self, partner_id: int, request: str = "delivery") -> dict[str, str]: ...


class Stores(NamedTuple):
    """The stores a service uses: by default the real ones."""

    leads: LeadStore = leads
    sales: SaleStore = sales
    partners: PartnerStore = partners
    vendors: VendorStore = vendors
    counters: CounterStore = counters
    lead_ids: LeadIdSource = lead_ids
    deliveries: DeliveryStore = deliveries
    queues: QueueStore = queues
    secrets: SecretStore = secrets


STORES = Stores()


def match_lead(stores: Stores, lead: Criteria, now: datetime) -> Outcome:
    """Who may buy `lead` now, among the partners its neighbourhood's index names."""
    return match(lead, stores.partners.near(lead), now, stores.sales.usage)
