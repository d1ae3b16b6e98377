"""Which partners may buy a lead, best first, and why each of the others may not.

`exclusion` tries a partner's rules in this order; the first that fails is the reason given:

- ``inactive``: the partner is switched off;
- ``test partner`` / ``not a test partner (Test_Lead)``: a test partner buys only test leads,
  and only it does;
- ``skipped (Skip_Partner_ID)``; ``not listed (Match_With_Partner_ID)``;
- ``lead type``: the partner does not buy the lead's TYPE (`lead_types`);
- ``state``; ``zip`` (exact ZIP codes or ZIP prefixes), read from the fields that place a lead
  of its type; ``product``; ``score below minimum`` (Home Improvement's filters);
- a field filter (`filters.fields`): ``Driver_1_Age 19 below 25``, ``Roof_Shade Uncertain not
  taken``, ``Vehicle_1_Year not sent``;
- ``SRC denied``; ``SRC not allowed`` (an allow list the lead's SRC is not on, or no SRC);
- ``no consent (requires_consent)``: the partner buys only leads whose consumer consented;
- ``schedule closed``: outside the partner's hours, in its time zone;
- ``price below cost`` (not for a partner that bids: its bid is weighed against the cost);
- ``already sold by the vendor (Matches)``; ``not selected (Match_With_Partner_Hashes)``.

Caps come last, with the partner's usage (`cap_exclusion`): ``daily cap``, ``weekly cap``,
``monthly cap``, ``daily budget``. Matching is pure: usage is looked up by the caller's function.

`match` checks only the candidates a `PartnerSet` index finds by type, state and product, and ranks
the partners that match by price, then priority; equal ones take turns (per container).

One module of over 400 lines on purpose: the rules and the index that finds their candidates
must decide alike (a property test checks the index against every rule), so they change
together.
"""

import itertools
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from operator import attrgetter
from types import MappingProxyType
from typing import Final, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from pingpost.caps import Usage, UsageLookup, aware, cap_exclusion
from pingpost.fieldfilters import Rule
from pingpost.fields import LEAD_TYPE, table
from pingpost.identity import HashedValue, identified
from pingpost.models import DAYS, Partner, src_key, window_minutes
from pingpost.reasons import (
    ALREADY_SOLD,
    CLOSED,
    INACTIVE,
    LEAD_TYPE_REASON,
    NO_CONSENT,
    NOT_LISTED,
    NOT_SELECTED,
    NOT_TEST_PARTNER,
    PRICE,
    PRODUCT,
    SCORE,
    SKIPPED,
    SRC_DENIED,
    SRC_NOT_ALLOWED,
    STATE,
    TEST_PARTNER,
    ZIP,
)

_NONE: Final[Mapping[str, object]] = MappingProxyType({})


class Criteria(NamedTuple):
    """What a lead offers and what its vendor asked of the match."""

    state: str | None
    zip: str | None
    product: str | None
    score: int | None
    cost: Decimal
    skip: frozenset[int] = frozenset()
    only: frozenset[int] | None = None
    vendor_matches: tuple[HashedValue, ...] = ()
    selected: tuple[HashedValue, ...] = ()
    test: bool = False
    src: str | None = None
    # The consumer consented (True), did not (False), or a ping does not say yet (None).
    consent: bool | None = None
    lead_type: str = LEAD_TYPE
    # The lead's values, which partners' field filters read.
    fields: Mapping[str, object] = _NONE

    @classmethod
    def of(cls, values: Mapping[str, object], cost: Decimal, **kw: object) -> "Criteria":
        """Criteria from validated lead values (see `pingpost.validation.validate`)."""
        only = values.get("Match_With_Partner_ID")
        skip = values.get("Skip_Partner_ID")
        kind = table(values).lead_type
        home = kind.type == LEAD_TYPE
        score = values.get("Score") if home else None
        return cls(
            state=_str(values.get(kind.state)) if kind.state else None,
            zip=_str(values.get(kind.zip)) if kind.zip else None,
            product=_str(values.get("Home_Improvement_Product")) if home else None,
            score=score if isinstance(score, int) else None,
            lead_type=kind.type,
            fields=values,
            cost=cost,
            skip=frozenset(skip) if isinstance(skip, tuple) else frozenset(),
            only=frozenset(only) if isinstance(only, tuple) else None,
            test=values.get("Test_Lead") is True,
            src=_str(values.get("SRC")),
            **kw,  # type: ignore[arg-type]
        )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class Decision(NamedTuple):
    """Whether one partner may buy the lead; `reason` is None when it matched."""

    partner_id: int
    reason: str | None


class Outcome(NamedTuple):
    """The partners that may buy a lead, best first, and the decision on every candidate."""

    ranked: tuple[Partner, ...]
    decisions: tuple[Decision, ...]  # ordered by partner id


class _Head(Protocol):
    """What the rules read of a partner itself: a `Partner`, or an index entry's copy of it."""

    @property
    def id(self) -> int: ...
    @property
    def active(self) -> bool: ...
    @property
    def test(self) -> bool: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def timezone(self) -> str: ...
    @property
    def requires_consent(self) -> bool: ...
    @property
    def bids(self) -> bool: ...
    @property
    def lead_types(self) -> Collection[str]: ...


class _Filtering(Protocol):
    """The filters the rules read: a partner's own `Filters`, or the sets an index made of them."""

    @property
    def states(self) -> Collection[str]: ...
    @property
    def zips(self) -> Collection[str]: ...
    @property
    def zip_prefixes(self) -> Sequence[str]: ...
    @property
    def products(self) -> Collection[str]: ...
    @property
    def min_score(self) -> int: ...
    @property
    def src_allow(self) -> Collection[str]: ...
    @property
    def src_deny(self) -> Collection[str]: ...
    @property
    def schedule(self) -> Mapping[str, Sequence[str]] | None: ...
    @property
    def rules(self) -> Sequence[Rule]: ...


class _Indexed(NamedTuple):
    """A partner as the rules read it, built once per `PartnerSet`: all they read in one object
    (filters quick to search), so checking a candidate seldom touches its `Partner` at all."""

    # In the order the rules read them: the first fields share the object's first cache lines.
    active: bool
    test: bool
    id: int
    states: Collection[str]  # these: frozensets, or tuples of a few (see `_set`)
    zips: Collection[str]
    zip_prefixes: tuple[str, ...]
    products: Collection[str]
    min_score: int
    src_allow: Collection[str]
    src_deny: Collection[str]
    schedule: Mapping[str, Sequence[str]] | None
    rules: tuple[Rule, ...]
    lead_types: tuple[str, ...]
    price: Decimal
    timezone: str
    requires_consent: bool
    bids: bool
    tier: int  # the rank of (price, priority) among the set's partners: 0 is the best
    matched: Decision  # built once: most candidates match
    partner: Partner

    @classmethod
    def of(cls, partner: Partner, tier: int) -> "_Indexed":
        """The indexed form of `partner` as it is now."""
        f = partner.filters
        return cls(
            active=partner.active,
            test=partner.test,
            id=partner.id,
            states=_set(f.states),
            zips=_set(f.zips),
            zip_prefixes=tuple(f.zip_prefixes),
            products=_set(f.products),
            min_score=f.min_score,
            src_allow=_set(f.src_allow),
            src_deny=_set(f.src_deny),
            schedule=None if f.schedule is None else {d: tuple(w) for d, w in f.schedule.items()},
            rules=f.rules,
            lead_types=tuple(partner.lead_types),
            price=partner.price,
            timezone=partner.timezone,
            requires_consent=partner.requires_consent,
            bids=partner.bids,
            tier=tier,
            matched=Decision(partner.id, None),
            partner=partner,
        )

    def admits(self, lead_type: str, state: str | None, product: str | None) -> bool:
        """Whether the partner's lead types and its state and product filters let a lead of
        `lead_type`, `state` and `product` through (products filter Home Improvement's)."""
        return (
            lead_type in self.lead_types
            and (not self.states or state in self.states)
            and (not self.products or lead_type != LEAD_TYPE or product in self.products)
        )


# A frozenset takes 216 bytes however small: a short tuple is as quick to search and a quarter
# of the size, and () is shared by every empty filter (memory, and it stays in cache).
_SHORT: Final = 8


def _set(values: list[str]) -> Collection[str]:
    return tuple(values) if len(values) <= _SHORT else frozenset(values)


# Bucket key of an empty filter (any state, any product); no state or product is spelt so.
_ANY: Final = "*"
# A partner listing many states and many products would fill states x products buckets: past
# this many it is filed under its longer list alone and its other list checked on lookup.
_MAX_PAIRS: Final = 64
_by_id = attrgetter("id")


class PartnerSet:
    """Partners indexed by (lead type, state, product), so a lead meets only the partners that
    can admit it (a product: Home Improvement's; other types' leads are filed under any).
    Built once (the exchange keeps one per container): a partner changed later needs a new set."""

    __slots__ = ("_all", "_by_id", "_by_pair", "_wide_by_product", "_wide_by_state")

    def __init__(self, partners: Iterable[Partner]) -> None:
        given = list(partners)
        # Small ints for the ranking's sort: faster to compare than (price, priority) tuples.
        tiers = {tier: n for n, tier in enumerate(sorted({_tier(p) for p in given}))}
        indexed = sorted((_Indexed.of(p, tiers[_tier(p)]) for p in given), key=_by_id)
        self._by_id: dict[int, _Indexed] = {}
        by_pair: defaultdict[tuple[str, str, str], list[_Indexed]] = defaultdict(list)
        wide_by_state: defaultdict[tuple[str, str], list[_Indexed]] = defaultdict(list)
        wide_by_product: defaultdict[tuple[str, str], list[_Indexed]] = defaultdict(list)
        for entry in indexed:
            if entry.id in self._by_id:
                raise ValueError(f"partner {entry.id} is given twice")
            self._by_id[entry.id] = entry
            states = sorted(entry.states) or [_ANY]
            for kind in entry.lead_types:
                products = (sorted(entry.products) if kind == LEAD_TYPE else []) or [_ANY]
                if len(states) * len(products) <= _MAX_PAIRS:
                    for state, product in itertools.product(states, products):
                        by_pair[kind, state, product].append(entry)
                elif len(states) >= len(products):
                    for state in states:
                        wide_by_state[kind, state].append(entry)
                else:
                    for product in products:
                        wide_by_product[kind, product].append(entry)
        self._all = tuple(entry.partner for entry in indexed)
        # Plain dicts from here: a lookup of a missing key must not add an empty bucket.
        self._by_pair = dict(by_pair)
        self._wide_by_state = dict(wide_by_state)
        self._wide_by_product = dict(wide_by_product)

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, partner_id: object) -> bool:
        return partner_id in self._by_id

    def all(self) -> tuple[Partner, ...]:
        """Every partner of the set, by id."""
        return self._all

    def candidates(self, lead: Criteria) -> list[Partner]:
        """The partners whose state and product filters (and Match_With_Partner_ID) admit `lead`."""
        return [entry.partner for entry in self._candidates(lead)]

    def _candidates(self, lead: Criteria) -> list[_Indexed]:
        kind, state = lead.lead_type, lead.state
        product = lead.product if kind == LEAD_TYPE else None
        states = (_ANY,) if state is None or state == _ANY else (state, _ANY)
        products = (_ANY,) if product is None or product == _ANY else (product, _ANY)
        buckets = [
            bucket
            for key in itertools.product(states, products)
            if (bucket := self._by_pair.get((kind, *key))) is not None
        ]
        wide = [
            *(self._wide_by_state.get((kind, state), ()) if state is not None else ()),
            *(self._wide_by_product.get((kind, product), ()) if product is not None else ()),
        ]
        only = lead.only
        if only is not None and len(only) <= sum(map(len, buckets)) + len(wide):
            # Cheaper to start from the few partners the vendor named.
            named = (self._by_id.get(i) for i in sorted(only))
            return [e for e in named if e is not None and e.admits(kind, state, product)]
        found = [entry for bucket in buckets for entry in bucket]
        found += (entry for entry in wide if entry.admits(kind, state, product))
        if only is not None:
            found = [entry for entry in found if entry.id in only]
        if len(buckets) > 1 or wide:
            found.sort(key=_by_id)
        return found


# Many partners share a few time zones and one ping shares its `now`: convert once for all.
@lru_cache(maxsize=256)
def _local(now: datetime, timezone: str) -> tuple[int, int]:
    """The weekday (0 = Monday) and minute of the day `now` is in `timezone`."""
    local = now.astimezone(ZoneInfo(timezone))
    return local.weekday(), local.hour * 60 + local.minute


def _open(schedule: Mapping[str, Sequence[str]], timezone: str, now: datetime) -> bool:
    """Whether a weekly schedule is open at `now` in `timezone`; a day left out is open all day."""
    weekday, minute = _local(now, timezone)
    windows = schedule.get(DAYS[weekday])
    if windows is None:
        return True
    return any(start <= minute < end for start, end in map(window_minutes, windows))


def _verdict(
    partner: Partner,
    head: _Head,
    rules: _Filtering,
    lead: Criteria,
    now: datetime,
    *,
    admitted: bool = False,
) -> str | None:
    """The first rule but caps `partner` fails for `lead`; `head` and `rules` are its fields.
    `admitted`: the index has already found that the state and product filters admit the lead."""
    if not head.active:
        return INACTIVE
    if head.test != lead.test:
        return TEST_PARTNER if head.test else NOT_TEST_PARTNER
    if lead.skip and head.id in lead.skip:
        return SKIPPED
    if lead.only is not None and head.id not in lead.only:
        return NOT_LISTED
    if not admitted and lead.lead_type not in head.lead_types:
        return LEAD_TYPE_REASON
    if not admitted and rules.states and lead.state not in rules.states:
        return STATE
    if (rules.zips or rules.zip_prefixes) and (
        lead.zip is None
        or (lead.zip not in rules.zips and not lead.zip.startswith(tuple(rules.zip_prefixes)))
    ):
        return ZIP
    home = lead.lead_type == LEAD_TYPE
    if not admitted and home and rules.products and lead.product not in rules.products:
        return PRODUCT
    if home and rules.min_score and (lead.score is None or lead.score < rules.min_score):
        return SCORE
    for rule in rules.rules:
        if (failed := rule.reason(lead.lead_type, lead.fields)) is not None:
            return failed
    if rules.src_deny or rules.src_allow:
        src = src_key(lead.src or "") or None
        if src in rules.src_deny:
            return SRC_DENIED
        if rules.src_allow and src not in rules.src_allow:
            return SRC_NOT_ALLOWED
    if head.requires_consent and lead.consent is False:
        return NO_CONSENT
    if rules.schedule is not None and not _open(rules.schedule, head.timezone, now):
        return CLOSED
    if head.price < lead.cost and not head.bids:
        return PRICE
    if lead.vendor_matches and identified(partner, lead.vendor_matches):
        return ALREADY_SOLD
    if lead.selected and not identified(partner, lead.selected, exposed=True):
        return NOT_SELECTED
    return None


def exclusion(partner: Partner, lead: Criteria, now: datetime) -> str | None:
    """The first rule (any but caps) that keeps `partner` from buying `lead` at `now`, or None."""
    return _verdict(partner, partner, partner.filters, lead, aware(now))


_UNUSED: Final = Usage()


def match(
    lead: Criteria, partners: PartnerSet, now: datetime, usage: UsageLookup | None = None
) -> Outcome:
    """Who may buy `lead` at `now`, best first, and why each other candidate may not. `usage` is
    called once, with the partners all other rules let through (if any); without it, no caps."""
    aware(now)
    candidates = partners._candidates(lead)
    reasons = [_verdict(e.partner, e, e, lead, now, admitted=True) for e in candidates]
    if usage is not None and None in reasons:
        passed = [e.partner for e, r in zip(candidates, reasons, strict=True) if r is None]
        used = usage(passed, now)
        reasons = [
            cap_exclusion(e.partner, used.get(e.id, _UNUSED)) if r is None else r
            for e, r in zip(candidates, reasons, strict=True)
        ]
    matched = [e for e, r in zip(candidates, reasons, strict=True) if r is None]
    # Sorting is stable and the candidates come by id: equals stay in id order.
    matched.sort(key=_entry_tier)
    return Outcome(
        ranked=tuple(e.partner for e in _in_turn(matched, _entry_tier)),
        decisions=tuple(
            e.matched if r is None else Decision(e.id, r)
            for e, r in zip(candidates, reasons, strict=True)
        ),
    )


# One turn per ranking, shared by the container's threads (next() on a count is atomic under
# the GIL): equal partners take turns per container, not across the whole exchange.
_turns = itertools.count()


def _tier(partner: Partner) -> tuple[int, int]:
    """Sort key of the ranking: higher price, then higher priority, as ints (fast to compare)."""
    # Money has at most 2 decimal places, so cents are exact.
    return -int(partner.price * 100), -partner.priority


_entry_tier = attrgetter("tier")


def _in_turn[T](ordered: list[T], tier: Callable[[T], object]) -> list[T]:
    """Rotate each run of equal tiers of `ordered` in place by this ranking's turn."""
    turn = next(_turns)
    start = 0
    for _, run in itertools.groupby(map(tier, ordered)):
        size = len(list(run))
        if size > 1 and (shift := turn % size):
            end = start + size
            ordered[start:end] = ordered[start + shift : end] + ordered[start : start + shift]
        start += size
    return ordered


def exact_tier(partner: Partner) -> tuple[Decimal, int]:
    """The ranking's sort key for prices of any precision: higher price, then priority."""
    return -partner.price, -partner.priority


def rank(partners: Sequence[Partner]) -> list[Partner]:
    """Best first: higher price, then higher priority, then equals in turn (round-robin)."""
    # Sorting is stable: by id first, so equals start from the same order whatever the input.
    return _in_turn(sorted(sorted(partners, key=_by_id), key=exact_tier), exact_tier)
