"""What the exchange answers a request: Matched or Unmatched, and what the request asked to be
told (the formats are `pingpost.responses`)."""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

MATCHED, UNMATCHED, ERROR, SUCCESS = "Matched", "Unmatched", "Error", "Success"
# A vendor's response style: today's answer; only whether the lead was accepted; or the
# answer with the public details of each partner that bought the lead.
SHORT, SUCCESS_ERROR, FULL = "short", "success_error", "full"


def money(amount: Decimal) -> str:
    """An amount of money as the exchange writes every one: in dollars with two decimals,
    rounded half up to the cent (25.00, 27.50, 2.55)."""
    return str(amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


class Hash(NamedTuple):
    """One <hash> of a ping answer: a matched partner's hashed identity value."""

    value_type: str
    hash_type: str
    value: str


class Contact(NamedTuple):
    """What a partner that bought the lead lets publishers show of it (empty: not shown)."""

    company: str = ""
    phone: str = ""
    email: str = ""


class Answer(NamedTuple):
    """A successful answer: Matched or Unmatched, with what the request asked to be told."""

    status: str
    lead_id: int
    price: Decimal | None = None
    matches: int | None = None
    hashes: tuple[Hash, ...] = ()
    partners: tuple[Contact, ...] = ()

    def stored(self) -> dict[str, Any]:
        """The answer as plain values, to replay it to a repeated post."""
        return {
            "status": self.status,
            "lead_id": self.lead_id,
            "price": self.price,
            "matches": self.matches,
            "hashes": [[h.value_type, h.hash_type, h.value] for h in self.hashes],
            "partners": [[c.company, c.phone, c.email] for c in self.partners],
        }

    @classmethod
    def restored(cls, values: dict[str, Any]) -> "Answer":
        """The answer `stored` saved."""
        matches = values.get("matches")
        return cls(
            status=str(values["status"]),
            lead_id=int(values["lead_id"]),
            price=values.get("price"),
            matches=None if matches is None else int(matches),
            hashes=tuple(Hash(*h) for h in values.get("hashes", [])),
            partners=tuple(Contact(*c) for c in values.get("partners", [])),
        )

    def styled(self, style: str) -> "Answer":
        """The answer as a vendor of `style` (SHORT, SUCCESS_ERROR or FULL) is told it."""
        if style == SUCCESS_ERROR:
            return Answer(status=SUCCESS, lead_id=self.lead_id)
        if style == FULL:
            return self
        return self._replace(partners=())
