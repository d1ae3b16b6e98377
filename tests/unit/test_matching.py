"""Matching, first cut: filters, price against cost, skip and only lists, hashes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pingpost.matching import Criteria, HashedValue, digest, exclusion, match, partner_hash
from pingpost.models import Partner


def partner(id: int, price: float, **filters: Any) -> Partner:
    return Partner.model_validate(
        {
            "id": id,
            "price": price,
            "company": f" Co {id} ",
            "email": f"Buy{id}@Example.com",
            "phone": "(312) 555-0100",
            "promotion_code": f"P{id}",
            "group_id": id % 3,
            "filters": filters,
        }
    )


LEAD = Criteria(state="IL", zip="60610", product="Gutters", score=12, cost=Decimal(10))


def test_best_price_first_then_lowest_id() -> None:
    found = match(LEAD, [partner(3, 20), partner(1, 30), partner(2, 20)])
    assert [p.id for p in found] == [1, 2, 3]


def test_each_filter_excludes_with_its_reason() -> None:
    assert exclusion(partner(1, 20, states=["CA"]), LEAD) == "state"
    assert exclusion(partner(1, 20, zips=["60611"]), LEAD) == "zip"
    assert exclusion(partner(1, 20, products=["Decks"]), LEAD) == "product"
    assert exclusion(partner(1, 20, min_score=13), LEAD) == "score below minimum"
    assert exclusion(partner(1, 9.99), LEAD) == "price below cost"
    assert (
        exclusion(partner(1, 20, states=["IL"], zips=["60610"], products=["Gutters"]), LEAD) is None
    )
    inactive = partner(1, 20).model_copy(update={"active": False})
    assert exclusion(inactive, LEAD) == "inactive"


def test_skip_and_only_lists() -> None:
    everyone = [partner(1, 20), partner(2, 20), partner(3, 20)]
    skipped = Criteria("IL", "60610", "Gutters", 12, Decimal(10), skip=frozenset({2}))
    assert [p.id for p in match(skipped, everyone)] == [1, 3]
    only = Criteria("IL", "60610", "Gutters", 12, Decimal(10), only=frozenset({3, 99}))
    assert [p.id for p in match(only, everyone)] == [3]


def test_partner_hashes_use_normalised_values() -> None:
    p = partner(7, 20)
    assert partner_hash(p, "email", "md5") == digest("buy7@example.com", "md5")
    assert partner_hash(p, "company", "sha1") == digest("co 7", "sha1")
    assert partner_hash(p, "phone", "md5") == digest("3125550100", "md5")
    assert partner_hash(p, "partnerGroup", "sha1") == digest("1", "sha1")
    assert partner_hash(p, "promotionCode", "md5") == digest("p7", "md5")


def test_the_vendors_own_matches_exclude_partners_plain_or_hashed() -> None:
    everyone = [partner(1, 20), partner(2, 20), partner(3, 20)]
    sold = (
        HashedValue("promotionCode", "plain", " p1 "),
        HashedValue("email", "sha1", digest("buy2@example.com", "sha1").upper()),
    )
    lead = Criteria("IL", "60610", "Gutters", 12, Decimal(10), vendor_matches=sold)
    assert [p.id for p in match(lead, everyone)] == [3]


def test_selected_partner_hashes_limit_the_match() -> None:
    everyone = [partner(1, 20), partner(2, 20)]
    chosen = (HashedValue("company", "md5", digest("co 2", "md5")),)
    lead = Criteria("IL", "60610", "Gutters", 12, Decimal(10), selected=chosen)
    assert [p.id for p in match(lead, everyone)] == [2]


def test_test_leads_go_to_test_partners_only() -> None:
    real, test = partner(1, 20), partner(2, 20).model_copy(update={"test": True})
    assert [p.id for p in match(LEAD, [real, test])] == [1]
    test_lead = Criteria("IL", "60610", "Gutters", 12, Decimal(10), test=True)
    assert [p.id for p in match(test_lead, [real, test])] == [2]
    assert Criteria.of({"Test_Lead": True}, Decimal(1)).test
    assert not Criteria.of({"Test_Lead": False}, Decimal(1)).test
