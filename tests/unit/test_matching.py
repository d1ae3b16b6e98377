"""Matching: every partner rule with its reason, caps, ranking, periods, and the index."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pingpost import reasons
from pingpost.caps import Periods, Usage, UsageLookup, cap_exclusion, periods
from pingpost.fields import HASH_VALUE_TYPES
from pingpost.identity import HashedValue, digest, partner_hash
from pingpost.matching import Criteria, Decision, Outcome, PartnerSet, exclusion, match, rank
from pingpost.models import Partner

MONDAY_NOON_CHICAGO = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
NOW = MONDAY_NOON_CHICAGO


def partner(id: int, price: float = 20, /, **fields: Any) -> Partner:
    """A partner; keyword arguments that are filters go into its filters."""
    filter_names = {"states", "zips", "zip_prefixes", "products", "min_score"}
    filter_names |= {"src_allow", "src_deny", "schedule", "fields"}
    filters = {k: fields.pop(k) for k in list(fields) if k in filter_names}
    return Partner.model_validate(
        {
            "id": id,
            "price": price,
            "company": f" Co {id} ",
            "email": f"Buy{id}@Example.com",
            "phone": "(312) 555-0100",
            "promotion_code": f"P{id}",
            "group_id": id % 3,
            "expose_hashes": list(HASH_VALUE_TYPES),
            "filters": filters,
            **fields,
        }
    )


def lead(**changes: Any) -> Criteria:
    """A Chicago gutters lead, changed as asked."""
    values: dict[str, Any] = {
        "state": "IL",
        "zip": "60610",
        "product": "Gutters",
        "score": 12,
        "cost": Decimal(10),
        "src": "google",
    }
    return Criteria(**(values | changes))


def outcome(
    partners: Sequence[Partner],
    criteria: Criteria | None = None,
    now: datetime = NOW,
    usage: UsageLookup | None = None,
) -> Outcome:
    return match(criteria or lead(), PartnerSet(partners), now, usage)


def buyers(
    partners: Sequence[Partner], criteria: Criteria | None = None, now: datetime = NOW
) -> list[int]:
    return [p.id for p in outcome(partners, criteria, now).ranked]


def chicago(hours: Mapping[str, list[str]]) -> Partner:
    return partner(1, timezone="America/Chicago", schedule=dict(hours))


# --- every rule and its reason ---------------------------------------------------------------

A_TEST_PARTNER = {"test": True}
SOLD_TO_1 = (HashedValue("email", "plain", "buy1@example.com"),)
RULES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # (reason, the partner's fields, the lead's changes)
    (reasons.INACTIVE, {"active": False}, {}),
    (reasons.TEST_PARTNER, A_TEST_PARTNER, {}),
    (reasons.NOT_TEST_PARTNER, {}, {"test": True}),
    (reasons.SKIPPED, {}, {"skip": frozenset({1})}),
    (reasons.NOT_LISTED, {}, {"only": frozenset({2})}),
    (reasons.STATE, {"states": ["CA"]}, {}),
    (reasons.ZIP, {"zips": ["60611"]}, {}),
    (reasons.ZIP, {"zip_prefixes": ["607"]}, {}),
    (reasons.PRODUCT, {"products": ["Decks"]}, {}),
    (reasons.SCORE, {"min_score": 13}, {}),
    (reasons.SRC_DENIED, {"src_deny": ["google"]}, {}),
    (reasons.SRC_NOT_ALLOWED, {"src_allow": ["bing"]}, {}),
    (reasons.CLOSED, {"schedule": {"mon": []}}, {}),
    (reasons.PRICE, {}, {"cost": Decimal("20.01")}),
    (reasons.ALREADY_SOLD, {}, {"vendor_matches": SOLD_TO_1}),
    (reasons.NOT_SELECTED, {}, {"selected": (HashedValue("company", "plain", "co 2"),)}),
]  # fmt: skip


@pytest.mark.parametrize(("reason", "fields", "changes"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_excludes_with_its_reason(
    reason: str, fields: dict[str, Any], changes: dict[str, Any]
) -> None:
    excluded = partner(1, 20, **fields)
    assert exclusion(excluded, lead(**changes), NOW) == reason
    found = outcome([excluded], lead(**changes))
    assert found.ranked == ()
    # The index does not even consider partners these rules exclude.
    unconsidered = {reasons.STATE, reasons.PRODUCT, reasons.NOT_LISTED}
    assert found.decisions == (() if reason in unconsidered else (Decision(1, reason),))


def test_a_partner_that_fails_every_rule_is_told_the_first_in_order() -> None:
    # Fix the rules one at a time: the reason moves down the documented order.
    fields: dict[str, Any] = {
        "active": False,
        "test": True,
        "states": ["CA"],
        "zips": ["90210"],
        "products": ["Decks"],
        "min_score": 50,
        "src_deny": ["google"],
        "src_allow": ["bing"],
        "schedule": {"mon": []},
    }
    criteria = lead(
        skip=frozenset({1}),
        only=frozenset({2}),
        cost=Decimal(30),
        vendor_matches=(HashedValue("promotionCode", "plain", "p1"),),
        selected=(HashedValue("promotionCode", "plain", "p2"),),
    )
    fixes: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"active": True}, {}),
        ({"test": False}, {}),
        ({}, {"skip": frozenset()}),
        ({}, {"only": None}),
        ({"states": ["IL"]}, {}),
        ({"zips": []}, {}),
        ({"products": ["Gutters"]}, {}),
        ({"min_score": 0}, {}),
        ({"src_deny": []}, {}),
        ({"src_allow": []}, {}),
        ({"schedule": None}, {}),
        ({}, {"cost": Decimal(20)}),
        ({}, {"vendor_matches": ()}),
        ({}, {"selected": ()}),
    ]
    seen = []
    for partner_fix, lead_fix in fixes:
        seen.append(exclusion(partner(1, 20, **fields), criteria, NOW))
        fields |= partner_fix
        criteria = lead(**{f: getattr(criteria, f) for f in Criteria._fields} | lead_fix)
    assert seen == [
        reasons.INACTIVE,
        reasons.TEST_PARTNER,
        reasons.SKIPPED,
        reasons.NOT_LISTED,
        reasons.STATE,
        reasons.ZIP,
        reasons.PRODUCT,
        reasons.SCORE,
        reasons.SRC_DENIED,
        reasons.SRC_NOT_ALLOWED,
        reasons.CLOSED,
        reasons.PRICE,
        reasons.ALREADY_SOLD,
        reasons.NOT_SELECTED,
    ]
    assert exclusion(partner(1, 20, **fields), criteria, NOW) is None


def test_a_partner_whose_filters_all_fit_matches() -> None:
    fits = partner(1, 20, states=["IL"], zips=["60610"], products=["Gutters"], min_score=12)
    assert exclusion(fits, lead(), NOW) is None
    assert outcome([fits]).decisions == (Decision(1, None),)


def test_zip_codes_or_prefixes_either_admit_the_lead() -> None:
    assert exclusion(partner(1, zip_prefixes=["606"]), lead(), NOW) is None
    assert exclusion(partner(1, zip_prefixes=["6"]), lead(), NOW) is None
    assert exclusion(partner(1, zip_prefixes=["9", "6061"]), lead(), NOW) is None
    assert exclusion(partner(1, zips=["60611"], zip_prefixes=["606"]), lead(), NOW) is None
    assert exclusion(partner(1, zips=["60610"], zip_prefixes=["9"]), lead(), NOW) is None
    assert exclusion(partner(1, zip_prefixes=["6062"]), lead(), NOW) == reasons.ZIP
    assert exclusion(partner(1, zip_prefixes=["606"]), lead(zip=None), NOW) == reasons.ZIP


def test_src_lists_ignore_case_and_surrounding_spaces() -> None:
    denies = partner(1, src_deny=[" Spammy "])
    assert exclusion(denies, lead(src="SPAMMY  "), NOW) == reasons.SRC_DENIED
    assert exclusion(denies, lead(src="google"), NOW) is None
    assert exclusion(denies, lead(src=None), NOW) is None
    allows = partner(1, src_allow=["Google", "bing"])
    assert exclusion(allows, lead(src=" GOOGLE"), NOW) is None
    assert exclusion(allows, lead(src="yahoo"), NOW) == reasons.SRC_NOT_ALLOWED
    assert exclusion(allows, lead(src=None), NOW) == reasons.SRC_NOT_ALLOWED
    assert exclusion(allows, lead(src="  "), NOW) == reasons.SRC_NOT_ALLOWED


def test_criteria_of_a_validated_lead_carry_its_src_and_test_flag() -> None:
    criteria = Criteria.of({"SRC": "Google", "Test_Lead": True}, Decimal(1))
    assert (criteria.src, criteria.test) == ("Google", True)
    assert Criteria.of({}, Decimal(1)).src is None
    assert not Criteria.of({"Test_Lead": False}, Decimal(1)).test


# --- schedules, in the partner's time zone ---------------------------------------------------


def test_a_schedule_opens_at_its_start_in_the_partners_time_zone() -> None:
    weekdays = chicago({"mon": ["08:00-20:00"]})
    # 2026-11-30 is a Monday; Chicago is UTC-6 in November.
    assert (
        exclusion(weekdays, lead(), datetime(2026, 11, 30, 13, 59, tzinfo=UTC)) == "schedule closed"
    )
    assert exclusion(weekdays, lead(), datetime(2026, 11, 30, 14, 0, tzinfo=UTC)) is None
    assert exclusion(weekdays, lead(), datetime(2026, 12, 1, 1, 59, tzinfo=UTC)) is None
    assert exclusion(weekdays, lead(), datetime(2026, 12, 1, 2, 0, tzinfo=UTC)) == "schedule closed"


def test_a_schedule_follows_daylight_saving_time() -> None:
    weekdays = chicago({"mon": ["08:00-20:00"]})
    at_1330_utc_before = datetime(2026, 3, 2, 13, 30, tzinfo=UTC)  # 07:30 CST
    at_1330_utc_after = datetime(2026, 3, 9, 13, 30, tzinfo=UTC)  # 08:30 CDT, DST since Mar 8
    assert exclusion(weekdays, lead(), at_1330_utc_before) == reasons.CLOSED
    assert exclusion(weekdays, lead(), at_1330_utc_after) is None


def test_the_day_is_the_partners_day_not_utcs() -> None:
    closed_sundays = chicago({"sun": []})
    monday_utc_sunday_chicago = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    assert exclusion(closed_sundays, lead(), monday_utc_sunday_chicago) == reasons.CLOSED
    assert exclusion(partner(1, schedule={"sun": []}), lead(), monday_utc_sunday_chicago) is None


def test_a_day_left_out_is_open_and_an_empty_day_is_closed() -> None:
    saturday_3am = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    assert exclusion(chicago({"mon": ["08:00-20:00"]}), lead(), saturday_3am) is None
    assert exclusion(chicago({"sat": []}), lead(), saturday_3am) == reasons.CLOSED
    assert exclusion(chicago({"sat": ["02:00-03:00", "03:00-04:00"]}), lead(), saturday_3am) is None


def test_a_window_may_end_at_midnight() -> None:
    late = chicago({"mon": ["18:00-24:00"], "tue": []})
    assert exclusion(late, lead(), datetime(2026, 12, 1, 5, 59, tzinfo=UTC)) is None  # 23:59
    assert exclusion(late, lead(), datetime(2026, 12, 1, 6, 0, tzinfo=UTC)) == reasons.CLOSED


def test_matching_needs_an_aware_time() -> None:
    naive = datetime(2026, 11, 30, 12, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        exclusion(partner(1), lead(), naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        outcome([partner(1)], now=naive)


# --- caps ------------------------------------------------------------------------------------


class Usages:
    """A UsageLookup that remembers whom it was asked about."""

    def __init__(self, known: Mapping[int, Usage]) -> None:
        self.known = known
        self.asked: list[list[int]] = []

    def __call__(self, partners: Sequence[Partner], now: datetime) -> Mapping[int, Usage]:
        self.asked.append([p.id for p in partners])
        return self.known


def test_caps_are_looked_up_once_for_the_partners_that_passed_every_other_rule() -> None:
    everyone = [
        partner(1, 30, caps={"daily": 5}),
        partner(2, 25, states=["CA"], caps={"daily": 5}),
        partner(3, 20, caps={"weekly": 10}),
        partner(4, 15),
    ]
    usages = Usages({1: Usage(daily=5), 3: Usage(weekly=9)})
    found = outcome(everyone, usage=usages)
    assert usages.asked == [[1, 3, 4]]
    assert [p.id for p in found.ranked] == [3, 4]
    assert found.decisions == (
        Decision(1, reasons.DAILY_CAP),
        Decision(3, None),
        Decision(4, None),
    )


def test_usage_is_not_looked_up_when_nobody_passed() -> None:
    usages = Usages({})
    assert outcome([partner(1, states=["CA"])], usage=usages).ranked == ()
    assert usages.asked == []


def test_without_a_usage_lookup_caps_are_not_checked() -> None:
    assert buyers([partner(1, caps={"daily": 1})]) == [1]


def test_a_partner_that_bids_is_asked_whatever_its_floor_and_the_leads_cost() -> None:
    low = lead(cost=Decimal(15))
    assert exclusion(partner(1, 10), low, NOW) == reasons.PRICE
    assert exclusion(partner(2, 10, **BIDDING), low, NOW) is None
    found = match(low, PartnerSet([partner(1, 10), partner(2, 10, **BIDDING)]), NOW)
    assert [p.id for p in found.ranked] == [2]


def test_each_cap_and_the_daily_budget() -> None:
    capped = partner(1, 20, caps={"daily": 3, "weekly": 10, "monthly": 30, "daily_budget": 100})
    assert cap_exclusion(capped, Usage()) is None
    assert cap_exclusion(capped, Usage(daily=3)) == reasons.DAILY_CAP
    assert cap_exclusion(capped, Usage(daily=2, weekly=10)) == reasons.WEEKLY_CAP
    assert cap_exclusion(capped, Usage(daily=2, weekly=9, monthly=30)) == reasons.MONTHLY_CAP
    # The budget must hold this lead too: 80 spent + 20 fits, 80.01 + 20 does not.
    assert cap_exclusion(capped, Usage(spent_today=Decimal(80))) is None
    assert cap_exclusion(capped, Usage(spent_today=Decimal("80.01"))) == reasons.DAILY_BUDGET
    assert cap_exclusion(partner(2), Usage(daily=10**6, spent_today=Decimal(10**6))) is None


# --- ranking ---------------------------------------------------------------------------------


def test_best_price_first_then_priority() -> None:
    everyone = [partner(3, 20), partner(1, 30), partner(2, 20, priority=5), partner(4, 10)]
    assert buyers(everyone) == [1, 2, 3, 4]


def test_equal_partners_take_turns() -> None:
    equals = [partner(1, 20), partner(2, 20), partner(3, 25)]
    first, second = buyers(equals), buyers(equals)
    assert first[0] == second[0] == 3
    assert {first[1], second[1]} == {1, 2}
    assert sorted(first) == sorted(second) == [1, 2, 3]


def test_rank_rotates_every_tier_of_equals_whatever_the_input_order() -> None:
    tier = [partner(5, 10), partner(6, 10), partner(7, 10)]
    firsts = {rank(tier)[0].id, rank(tier[::-1])[0].id, rank(tier[1:] + tier[:1])[0].id}
    assert firsts == {5, 6, 7}


# --- periods ---------------------------------------------------------------------------------


def test_periods_are_counted_in_the_partners_time_zone() -> None:
    late_friday_chicago = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert periods(partner(1, timezone="America/Chicago"), late_friday_chicago) == Periods(
        day="2026-11-28", week="2026-W48", month="2026-11"
    )
    assert periods(partner(1), late_friday_chicago) == Periods("2026-11-29", "2026-W48", "2026-11")


def test_iso_weeks_at_the_turn_of_the_year() -> None:
    assert periods(partner(1), datetime(2025, 12, 29, 12, tzinfo=UTC)) == Periods(
        "2025-12-29", "2026-W01", "2025-12"
    )
    new_year_utc = datetime(2027, 1, 1, 3, tzinfo=UTC)
    assert periods(partner(1), new_year_utc) == Periods("2027-01-01", "2026-W53", "2027-01")
    assert periods(partner(1, timezone="America/Chicago"), new_year_utc) == Periods(
        "2026-12-31", "2026-W53", "2026-12"
    )


# --- the index -------------------------------------------------------------------------------


def test_only_partners_whose_state_and_product_can_admit_the_lead_are_considered() -> None:
    others = [partner(i, states=["CA"], products=["Gutters"]) for i in range(10, 60)]
    others += [partner(i, states=["IL"], products=["Decks"]) for i in range(60, 110)]
    fits = [
        partner(1, states=["IL"], products=["Gutters"]),
        partner(2),
        partner(3, states=["IL"]),
        partner(4, products=["Gutters", "Decks"]),
        partner(5, states=["IL"], products=["Gutters"], active=False),
    ]
    index = PartnerSet(others + fits)
    assert len(index) == 105
    assert [p.id for p in index.candidates(lead())] == [1, 2, 3, 4, 5]
    found = match(lead(), index, NOW)
    assert [d.partner_id for d in found.decisions] == [1, 2, 3, 4, 5]
    assert found.decisions[-1] == Decision(5, reasons.INACTIVE)


def test_partners_with_many_states_and_products_are_found_too() -> None:
    products = ["Gutters", "Decks", "Fences", "Flooring", "Plumbing", "Doors", "Moving", "Storage"]
    states = ["IL", "CA", "TX", "NY", "FL", "WA", "OR", "NV", "AZ"]
    wide = partner(1, states=states, products=products)
    wider_in_products = partner(2, states=states[:8], products=[*products, "Handyman"])
    index = PartnerSet([wide, wider_in_products])
    assert [p.id for p in index.candidates(lead())] == [1, 2]
    assert index.candidates(lead(state="OH")) == []
    assert [p.id for p in index.candidates(lead(state="AZ"))] == [1]
    assert [p.id for p in index.candidates(lead(product="Handyman"))] == [2]
    assert index.candidates(lead(product="Countertops")) == []


def test_match_with_partner_id_narrows_the_candidates() -> None:
    index = PartnerSet([partner(i) for i in range(1, 200)] + [partner(200, states=["CA"])])
    named = lead(only=frozenset({7, 3, 200, 999}))
    assert [p.id for p in index.candidates(named)] == [3, 7]
    assert sorted(p.id for p in match(named, index, NOW).ranked) == [3, 7]


def test_a_partner_set_lists_its_partners_by_id_and_refuses_one_given_twice() -> None:
    assert [p.id for p in PartnerSet([partner(3), partner(1)]).all()] == [1, 3]
    with pytest.raises(ValueError, match="partner 3 is given twice"):
        PartnerSet([partner(3), partner(3, 40)])


STATES = ("IL", "CA", "TX", "NY", "FL", "WA", "OR", "NV", "AZ", "OH")
PRODUCTS = ("Gutters", "Decks", "Fences", "Flooring", "Plumbing", "Doors", "Moving", "Storage")
ZIPS = ("60610", "60611", "90210", "10001")
SOURCES = ("google", "Bing", "spammy")
RARELY = st.sampled_from((False,) * 9 + (True,))
RARELY_NOT = st.sampled_from((True,) * 9 + (False,))
SCHEDULES: tuple[dict[str, list[str]] | None, ...] = (
    None,
    None,
    None,
    {"mon": ["08:00-20:00"]},
    {"sun": []},
    {"mon": [], "tue": ["00:00-24:00"]},
)


def mostly_empty[T](values: st.SearchStrategy[T], empty: T) -> st.SearchStrategy[T]:
    """Most partners leave most filters empty; random ones everywhere would match no lead."""
    return st.one_of(st.just(empty), st.just(empty), values)


# The lead types a partner buys, mostly Home Improvement's alone, and field filters of each.
LEAD_TYPES = st.sampled_from((["7"], ["7"], ["20"], ["21"], ["7", "20"], ["20", "21"]))
FIELD_FILTERS: dict[str, tuple[dict[str, Any], ...]] = {
    "20": (
        {"Driver_1_Credit_Rating": ["Excellent", "Good"]},
        {"Driver_2_Age": {"min": 30}},
        {"Driver_1_Age": {"max": 40}, "Vehicle_1_Coverage_Type": ["basic"]},
    ),
    "21": ({"Roof_Shade": ["No Shade"]}, {"Electric_Bill": ["$151-200", "$500+"]}),
}
LEAD_VALUES: dict[str, dict[str, tuple[object, ...]]] = {
    "20": {
        "Driver_1_Credit_Rating": ("Good", "Poor"),
        "Driver_1_Age": (25, 50),
        "Driver_2_Age": (18, 60),
        "Vehicle_1_Coverage_Type": ("Basic", "State"),
    },
    "21": {"Roof_Shade": ("No Shade", "Uncertain"), "Electric_Bill": ("$151-200", "$0-50")},
}


@st.composite
def partners(draw: st.DrawFn) -> list[Partner]:
    ids = draw(st.lists(st.integers(1, 40), unique=True, max_size=25))
    made = []
    for partner_id in ids:
        kinds = draw(LEAD_TYPES)
        home = "7" in kinds
        fields: dict[str, Any] = {}
        for kind in kinds:
            if kind in FIELD_FILTERS and draw(st.booleans()):
                fields |= draw(st.sampled_from(FIELD_FILTERS[kind]))
        made.append(
            partner(
                partner_id,
                draw(st.sampled_from((5, 10, 20))),
                active=draw(RARELY_NOT),
                test=draw(RARELY),
                priority=draw(st.integers(0, 1)),
                timezone=draw(st.sampled_from(("UTC", "America/Chicago", "Asia/Tokyo"))),
                states=draw(st.just([]) | st.lists(st.sampled_from(STATES), unique=True)),
                zips=draw(mostly_empty(st.lists(st.sampled_from(ZIPS), max_size=2), [])),
                zip_prefixes=draw(
                    mostly_empty(st.lists(st.sampled_from(("6", "606", "9021")), max_size=2), [])
                ),
                products=draw(st.just([]) | st.lists(st.sampled_from(PRODUCTS), unique=True))
                if home
                else [],
                min_score=draw(st.sampled_from((0, 0, 10))) if home else 0,
                lead_types=kinds,
                fields=fields,
                src_allow=draw(mostly_empty(st.lists(st.sampled_from(SOURCES), max_size=2), [])),
                src_deny=draw(mostly_empty(st.lists(st.sampled_from(SOURCES), max_size=1), [])),
                schedule=draw(st.sampled_from(SCHEDULES)),
                **(BIDDING if draw(RARELY) else {}),
            )
        )
    return made


# A partner that bids: its price is a floor, not weighed against the lead's cost.
BIDDING: dict[str, Any] = {
    "bid": {"url": "https://buyer.example/ping"},
    "post": {"url": "https://buyer.example/post"},
}


@st.composite
def leads(draw: st.DrawFn, known: Sequence[int]) -> Criteria:
    # Mostly ids of the partners at hand, so Skip/Match_With_Partner_ID name some of them.
    some_id = st.sampled_from(known) | st.integers(1, 40) if known else st.integers(1, 40)
    ids = st.frozensets(some_id, max_size=4)
    kind = draw(st.sampled_from(("7", "7", "20", "21")))
    values = {
        name: value
        for name, choices in LEAD_VALUES.get(kind, {}).items()
        if (value := draw(st.sampled_from((*choices, None)))) is not None
    }
    home = kind == "7"
    return Criteria(
        state=draw(st.sampled_from((*STATES, None))),
        zip=draw(st.sampled_from((*ZIPS, None))),
        product=draw(st.sampled_from((*PRODUCTS, None))) if home else None,
        score=draw(st.none() | st.integers(0, 20)) if home else None,
        lead_type=kind,
        fields=values,
        cost=Decimal(draw(st.sampled_from((0, 8, 15)))),
        skip=draw(mostly_empty(ids, frozenset())),
        only=draw(mostly_empty(ids, None)),
        test=draw(RARELY),
        src=draw(st.sampled_from((*SOURCES, " SPAMMY", None))),
    )


@pytest.mark.long
@settings(max_examples=300, deadline=None)
@given(
    st.data(),
    partners(),
    st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    ),
)
def test_the_index_decides_exactly_as_a_scan_of_every_partner(
    data: st.DataObject, everyone: list[Partner], now: datetime
) -> None:
    criteria = data.draw(leads([p.id for p in everyone]))
    scanned = {p.id: exclusion(p, criteria, now) for p in everyone}
    found = match(criteria, PartnerSet(everyone), now)
    assert {p.id for p in found.ranked} == {i for i, reason in scanned.items() if reason is None}
    considered = [d.partner_id for d in found.decisions]
    assert considered == sorted(considered)
    assert all(d.reason == scanned[d.partner_id] for d in found.decisions)
    # Whoever the index did not consider, the scan excludes too.
    assert all(scanned[i] is not None for i in scanned.keys() - set(considered))


# --- hashes and the vendor's lists -----------------------------------------------------------


def test_partner_hashes_use_normalised_values() -> None:
    p = partner(7)
    assert partner_hash(p, "email", "md5") == digest("buy7@example.com", "md5")
    assert partner_hash(p, "company", "sha1") == digest("co 7", "sha1")
    assert partner_hash(p, "phone", "md5") == digest("3125550100", "md5")
    assert partner_hash(p, "partnerGroup", "sha1") == digest("1", "sha1")
    assert partner_hash(p, "promotionCode", "md5") == digest("p7", "md5")


def test_skip_and_only_lists() -> None:
    everyone = [partner(1, 22), partner(2, 21), partner(3, 20)]
    assert buyers(everyone, lead(skip=frozenset({2}))) == [1, 3]
    assert buyers(everyone, lead(only=frozenset({3, 99}))) == [3]


def test_the_vendors_own_matches_exclude_partners_plain_or_hashed() -> None:
    everyone = [partner(1), partner(2), partner(3)]
    sold = (
        HashedValue("promotionCode", "plain", " p1 "),
        HashedValue("email", "sha1", digest("buy2@example.com", "sha1").upper()),
    )
    assert buyers(everyone, lead(vendor_matches=sold)) == [3]


def test_selected_partner_hashes_limit_the_match() -> None:
    chosen = (HashedValue("company", "md5", digest("co 2", "md5")),)
    assert buyers([partner(1), partner(2)], lead(selected=chosen)) == [2]


def test_a_partner_exposes_no_hash_it_has_not_agreed_to() -> None:
    # Unsalted hashes of partners' phones came back to any vendor that asked, and a phone's
    # md5 is reversed by brute force in a minute.
    private = partner(4, expose_hashes=[])
    company_only = partner(5, expose_hashes=["company"])
    assert Partner.model_validate({"id": 6, "price": 1}).expose_hashes == []
    for value_type in HASH_VALUE_TYPES:
        assert partner_hash(private, value_type, "md5") is None
    assert partner_hash(company_only, "phone", "md5") is None
    assert partner_hash(company_only, "company", "md5") == digest("co 5", "md5")
    # Nor can a vendor select it by a hash it computed itself.
    chosen = (
        HashedValue("phone", "md5", digest("3125550100", "md5")),
        HashedValue("company", "md5", digest("co 5", "md5")),
    )
    assert buyers([private, company_only], lead(selected=chosen)) == [5]


def test_test_leads_go_to_test_partners_only() -> None:
    real, test = partner(1), partner(2, test=True)
    assert buyers([real, test]) == [1]
    assert buyers([real, test], lead(test=True)) == [2]
