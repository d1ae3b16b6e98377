"""Partner identity values (email, phone, company, promotion code, group) and their hashes.

Vendors name partners by these values, plain or hashed (md5, sha1), in <Match> and in
<Selected_Partner_Hash>; a ping answers with the hashes a partner lets it expose.
"""

import hashlib
from collections.abc import Iterable
from typing import NamedTuple

from pingpost.models import Partner


class HashedValue(NamedTuple):
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
    """The hash of `partner` a ping returns for Return_Hash_Type/Return_Hash_Value_Type, if the
    partner exposes that value (see Partner.expose_hashes)."""
    if value_type not in partner.expose_hashes:
        return None
    value = identity(partner, value_type)
    return None if value is None else digest(value, hash_type)


def identified(partner: Partner, values: Iterable[HashedValue], *, exposed: bool = False) -> bool:
    """Whether one of `values` names `partner`; `exposed`: only by values it exposes."""
    for given in values:
        if exposed and given.value_type not in partner.expose_hashes:
            continue
        mine = identity(partner, given.value_type)
        if mine is None:
            continue
        if given.hash_type == "plain":
            if normalise(given.value_type, given.value) == mine:
                return True
        elif digest(mine, given.hash_type) == given.value.strip().lower():
            return True
    return False
