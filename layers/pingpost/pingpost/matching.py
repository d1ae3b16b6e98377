"""Which partners may buy a lead, best first, and why each of the others may not."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from pingpost.models import Partner


@dataclass(frozen=True, slots=True)
class HashedValue:
    """A partner identity value as a vendor sends it in <Match> or <Selected_Partner_Hash>."""

    value_type: str  # email, phone, company, promotionCode, partnerGroup
    hash_type: str  # plain, md5, sha1
    value: str


def identity(partner: Partner, value_type: str) -> str | None:
    """The normalised identity value of `partner` that vendors hash, or None if it has none."""
    match value_type:
        case "email":
            raw = partner.email
        case "company":
            raw = partner.company
        case "promotionCode":
            raw = partner.promotion_code
        case "phone":
            digits = "".join(c for c in partner.phone if c.isdigit())
            return digits[-10:] if len(digits) >= 10 else None
        case "partnerGroup":
            return None if partner.group_id is None else str(partner.group_id)
        case _:
            return None
    normalised = raw.strip().lower()
    return normalised or None


def normalise(value_type: str, value: str) -> str:
    """A vendor's plain <Match> value in the form `identity` produces."""
    if value_type == "phone":
        return "".join(c for c in value if c.isdigit())[-10:]
    return value.strip().lower()


def digest(value: str, hash_type: str) -> str:
    """md5 or sha1 hex of `value`, as the hash options of the spec define."""
    if hash_type not in ("md5", "sha1"):
        raise ValueError(hash_type)
    return hashlib.new(hash_type, value.encode(), usedforsecurity=False).hexdigest()


def partner_hash(partner: Partner, value_type: str, hash_type: str) -> str | None:
    """The hash of `partner` a ping returns for Return_Hash_Type/Return_Hash_Value_Type."""
    value = identity(partner, value_type)
    return None if value is None else digest(value, hash_type)


def _identified(partner: Partner, values: Iterable[HashedValue]) -> bool:
    for given in values:
        mine = identity(partner, given.value_type)
        if mine is None:
            continue
        if given.hash_type == "plain":
            if normalise(given.value_type, given.value) == mine:
                return True
        elif digest(mine, given.hash_type) == given.value.strip().lower():
            return True
    return False


@dataclass(frozen=True, slots=True)
class Criteria:
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

    @classmethod
    def of(cls, values: Mapping[str, object], cost: Decimal, **kw: object) -> Criteria:
        """Criteria from validated lead values (see `pingpost.validation.validate`)."""
        only = values.get("Match_With_Partner_ID")
        skip = values.get("Skip_Partner_ID")
        score = values.get("Score")
        return cls(
            state=_str(values.get("State")),
            zip=_str(values.get("Zip")),
            product=_str(values.get("Home_Improvement_Product")),
            score=score if isinstance(score, int) else None,
            cost=cost,
            skip=frozenset(skip) if isinstance(skip, tuple) else frozenset(),
            only=frozenset(only) if isinstance(only, tuple) else None,
            test=values.get("Test_Lead") is True,
            **kw,  # type: ignore[arg-type]
        )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def exclusion(partner: Partner, lead: Criteria) -> str | None:
    """The first rule that keeps `partner` from buying `lead`, or None when it matches."""
    rules = partner.filters
    if not partner.active:
        return "inactive"
    if partner.test != lead.test:
        return "test partner" if partner.test else "not a test partner (Test_Lead)"
    if partner.id in lead.skip:
        return "skipped (Skip_Partner_ID)"
    if lead.only is not None and partner.id not in lead.only:
        return "not listed (Match_With_Partner_ID)"
    if rules.states and lead.state not in rules.states:
        return "state"
    if rules.zips and lead.zip not in rules.zips:
        return "zip"
    if rules.products and lead.product not in rules.products:
        return "product"
    if rules.min_score and (lead.score is None or lead.score < rules.min_score):
        return "score below minimum"
    if partner.price < lead.cost:
        return "price below cost"
    if lead.vendor_matches and _identified(partner, lead.vendor_matches):
        return "already sold by the vendor (Matches)"
    if lead.selected and not _identified(partner, lead.selected):
        return "not selected (Match_With_Partner_Hashes)"
    return None


def match(lead: Criteria, partners: Iterable[Partner]) -> list[Partner]:
    """The partners that may buy `lead`, best price first (ties: lowest partner ID)."""
    found = [p for p in partners if exclusion(p, lead) is None]
    found.sort(key=lambda p: (-p.price, p.id))
    return found
