"""The partners' index (store/placings.py): a lead's neighbourhood names every partner whose
type, state and product filters admit it, and a partner's places fit one write."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pingpost.fields import PRODUCTS, TYPES
from pingpost.geography import US_STATES
from pingpost.matching import Criteria, PartnerSet
from pingpost.models import Partner
from pingpost.store.placings import neighbourhood, placings

STATES = sorted(US_STATES)
KINDS = sorted(TYPES)


@st.composite
def partners(draw: st.DrawFn) -> Partner:
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, unique=True))
    products = draw(st.lists(st.sampled_from(PRODUCTS), unique=True)) if "7" in kinds else []
    return Partner.model_validate(
        {
            "id": draw(st.integers(min_value=1, max_value=10**7)),
            "price": 20,
            "lead_types": kinds,
            "filters": {
                "states": draw(st.lists(st.sampled_from(STATES), unique=True)),
                "products": products,
            },
        }
    )


@st.composite
def leads(draw: st.DrawFn) -> Criteria:
    return Criteria(
        state=draw(st.none() | st.sampled_from(STATES)),
        zip=None,
        product=draw(st.none() | st.sampled_from(PRODUCTS)),
        score=None,
        cost=Decimal(0),
        lead_type=draw(st.sampled_from(KINDS)),
    )


@given(partners(), st.lists(leads(), min_size=1, max_size=20))
def test_a_lead_reads_a_place_of_every_partner_whose_filters_admit_it(
    partner: Partner, many: list[Criteria]
) -> None:
    filed = placings(partner)
    assert len(filed) <= 48  # old and new places, the partner and the version: one transaction
    for lead in many:
        if PartnerSet([partner]).candidates(lead):
            assert filed & set(neighbourhood(lead)), (partner.filters, partner.lead_types, lead)


def test_a_paused_partner_is_filed_nowhere() -> None:
    paused = Partner.model_validate({"id": 5, "price": 20, "active": False})
    assert placings(paused) == frozenset()


def test_a_lead_reads_its_places_in_one_call() -> None:
    lead = Criteria(state="IL", zip=None, product=PRODUCTS[0], score=None, cost=Decimal(0))
    assert len(neighbourhood(lead)) <= 100  # BatchGetItem's limit
