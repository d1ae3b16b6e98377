"""Vendors (publishers) and partners (buyers) as the exchange stores and seeds them."""

import hashlib
import ipaddress
import re
from decimal import Decimal
from functools import cache, cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pingpost.endpoints import BidEndpoint, Endpoint, PostEndpoint
from pingpost.fieldfilters import Rule, Taken, checked, known_lead_types, rules, still_known
from pingpost.fields import HASH_VALUE_TYPES, LEAD_TYPE, PRODUCTS, TYPES
from pingpost.geography import US_STATES
from pingpost.observability import logger
from pingpost.urls import is_host_name

Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # in date.weekday() order
# A lead's status: pinged -> posting -> sold | unsold (or straight to sold | unsold in full mode).
PINGED, POSTING, SOLD, UNSOLD = "pinged", "posting", "sold", "unsold"
DONE = (SOLD, UNSOLD)

# The validation context of a vendor or partner read back from its table (STORED: True).
STORED = {"stored": True}


def _is_stored(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("stored"))


_WINDOW = re.compile(r"^([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})$")


def src_key(src: str) -> str:
    """The form SRC values are compared in: trimmed, without regard to case."""
    return src.strip().casefold()


@cache
def window_minutes(window: str) -> tuple[int, int]:
    """A schedule window "HH:MM-HH:MM" as minutes since midnight [start, end); end may be 24:00."""
    text = window.strip()
    found = _WINDOW.match(text)
    if found is None:
        raise ValueError(f"schedule window {window!r} must be HH:MM-HH:MM, e.g. 08:00-20:00")
    start_h, start_m, end_h, end_m = (int(g) for g in found.groups())
    if start_h > 23 or end_h > 24 or start_m > 59 or end_m > 59 or (end_h == 24 and end_m):
        raise ValueError(f"schedule window {window!r} has a time that does not exist")
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if end < start:
        raise ValueError(
            f"schedule window {window!r} runs past midnight: split it into two windows,"
            f" {text[:5]}-24:00 on one day and 00:00-{text[-5:]} on the next"
        )
    if end == start:
        raise ValueError(f"schedule window {window!r} is empty: its start must be before its end")
    return start, end


def key_hash(key: str) -> str:
    """The stored form of a vendor's API key (keys are long random strings, so SHA-256 suffices)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _is_local_host(name: str) -> bool:
    """localhost, or an IP address written as ipaddress reads it."""
    try:
        return name == "localhost" or str(ipaddress.ip_address(name)) == name
    except ValueError:
        return False


class Vendor(BaseModel):
    """A publisher that sends leads with its Key."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = ""
    key_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    # A second Key during a rotation: both work until the rotation ends and this one stays.
    next_key_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    cost: Money = Decimal(0)
    dynamic_pricing: bool = False
    # What the exchange keeps of each sale of a dynamic-pricing vendor's lead.
    margin: Money = Decimal(0)
    margin_type: Literal["amount", "percent"] = "amount"
    allowed_times_sold: int = Field(default=1, ge=1)
    active: bool = True
    # How answers read (pingpost.responses): short, success_error, or full with the buyers.
    response_style: Literal["short", "success_error", "full"] = "short"
    # Hosts a browser posting this vendor's form may be sent back to (Redirect_URL): public
    # names, or localhost or an address, which only work where the operator trusts them
    # (DELIVERY_HTTP_HOSTS; `pingpost serve` trusts 127.0.0.1 and localhost).
    redirect_hosts: list[str] = []
    # False: errors are answered with HTTP 200 (for clients that take any other as a failure).
    http_errors: bool = True
    # Requests a second this vendor's Key may make across the exchange (429 past it); 0: no
    # limit of its own, only the API stage's throttle. A limited vendor's request costs one
    # counter write more; one DynamoDB item takes about 1,000 writes a second, hence the cap.
    rate_limit: int = Field(default=0, ge=0, le=1000)
    # Seconds the auction of this vendor's lead may take at most: every buyer that bids is
    # asked at once, and one that has not answered by then has no bid.
    bid_timeout: float = Field(default=0.3, gt=0, le=5)
    # Seconds a post may spend posting the lead to the buyers that won it by their bids, one
    # after the other until one accepts (inside the functions' 29 s with what else a post does).
    post_timeout: float = Field(default=8, gt=0, le=15)
    # The lead types (TYPE values) this vendor may send; None: every type of the exchange.
    lead_types: list[str] | None = None

    @field_validator("lead_types")
    @classmethod
    def _vendor_types(cls, codes: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if codes is None:
            return None
        return still_known(codes, "vendor") if _is_stored(info) else known_lead_types(codes)

    @field_validator("redirect_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        names = [h.strip().lower().rstrip(".") for h in hosts]
        bad = [h for h in names if not (is_host_name(h) or _is_local_host(h))]
        if bad:
            raise ValueError(
                "redirect_hosts must be host names such as www.example.com (or localhost or an"
                f" IP address the operator trusts): {bad}"
            )
        return names


class Filters(BaseModel):
    """What a partner buys; an empty list means any."""

    model_config = ConfigDict(extra="allow", defer_build=True)  # as endpoints.Outbound's

    states: list[str] = []
    zips: list[str] = []
    # ZIP code beginnings (1-4 digits): "606" is Chicago's 606xx; with `zips`, either admits.
    zip_prefixes: list[str] = []
    # Home Improvement's (TYPE 7) product and score filters.
    products: list[str] = []
    min_score: int = 0
    # A lead type's `match` field -> the values taken (any case), or a number's range.
    # (a default a stored item leaves out is made, not deep-copied: every partner, every container)
    fields: dict[str, Taken] = Field(default_factory=dict)

    @cached_property
    def rules(self) -> tuple[Rule, ...]:
        """The field filters as matching reads them (the partner's checks them first)."""
        return rules(self.fields)

    # SRC values, trimmed and compared without regard to case; an empty allow list allows any.
    src_allow: list[str] = []
    src_deny: list[str] = []
    # Day (mon..sun) -> "HH:MM-HH:MM" windows in the partner's time zone. No schedule: always
    # open; a day left out: open all day; a day with no windows: closed all day.
    schedule: dict[str, list[str]] | None = None

    @field_validator("states")
    @classmethod
    def _known_states(cls, states: list[str]) -> list[str]:
        unknown = [s for s in states if s.upper() not in US_STATES]
        if unknown:
            raise ValueError(f"unknown states {unknown}")
        return [s.upper() for s in states]

    @field_validator("zips")
    @classmethod
    def _five_digit_zips(cls, zips: list[str]) -> list[str]:
        bad = [z for z in zips if len(z) != 5 or not (z.isascii() and z.isdigit())]
        if bad:
            raise ValueError(f"zips must be 5 digits: {bad}")
        return zips

    @field_validator("zip_prefixes")
    @classmethod
    def _short_prefixes(cls, prefixes: list[str]) -> list[str]:
        bad = [z for z in prefixes if not 1 <= len(z) <= 4 or not (z.isascii() and z.isdigit())]
        if bad:
            raise ValueError(
                f"zip_prefixes must be 1 to 4 digits (whole ZIP codes go in zips): {bad}"
            )
        return prefixes

    @field_validator("products")
    @classmethod
    def _known_products(cls, products: list[str]) -> list[str]:
        unknown = [p for p in products if p not in PRODUCTS]
        if unknown:
            raise ValueError(f"unknown products {unknown}")
        return products

    @field_validator("src_allow", "src_deny")
    @classmethod
    def _src_values(cls, values: list[str]) -> list[str]:
        normalised = [src_key(v) for v in values]
        if "" in normalised:
            raise ValueError("SRC values must not be empty")
        return normalised

    @field_validator("schedule")
    @classmethod
    def _weekly_windows(cls, schedule: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if schedule is None:
            return None
        unknown = [day for day in schedule if day not in DAYS]
        if unknown:
            raise ValueError(f"unknown days {unknown}: use {', '.join(DAYS)}")
        for windows in schedule.values():
            for text in windows:
                window_minutes(text)
        return schedule


class Caps(BaseModel):
    """How much a partner buys at most, counted in its time zone; 0 means no limit."""

    model_config = ConfigDict(extra="allow", defer_build=True)  # as endpoints.Outbound's

    daily: int = Field(default=0, ge=0)
    weekly: int = Field(default=0, ge=0)
    monthly: int = Field(default=0, ge=0)
    # What the partner spends per day at most, at its own price per lead.
    daily_budget: Money = Decimal(0)


class Partner(BaseModel):
    """A buyer: its price, filters, delivery and the identity values vendors may hash."""

    model_config = ConfigDict(extra="allow")

    id: int = Field(ge=1)
    company: str = ""
    email: str = ""
    phone: str = ""
    promotion_code: str = ""
    group_id: int | None = None
    price: Money
    active: bool = True
    # A test partner buys only test leads (Test_Lead=1), and only it does.
    test: bool = False
    # Higher is preferred among partners offering the same price.
    priority: int = 0
    timezone: str = "UTC"
    # The same consumer (email, phone) is not sold to this partner again within this many days;
    # 0 (the default): no window. A window costs two more items written per sale.
    dedupe_days: int = Field(default=0, ge=0)
    # Buys only leads whose consumer consented (TCPA_Consent or Phone_Consent: Yes).
    requires_consent: bool = False
    # What a vendor with the full response style is shown of this partner when it buys.
    public: list[Literal["company", "phone", "email"]] = ["company"]
    # Which of its identity values a ping's Return_Hash_Type / Return_Hash_Value_Type returns as
    # a hash (and Match_With_Partner_Hashes may select it by): none unless the partner agrees.
    # Hashes are unsalted, as the API defines them: a phone's is reversed by brute force.
    expose_hashes: list[str] = []
    # The lead types (TYPE values) the partner buys.
    lead_types: list[str] = Field(default_factory=lambda: [LEAD_TYPE])
    # Made when left out, as `Filters.fields` (a default instance is deep-copied every time),
    # without validation: their validators are built only when first needed, which pydantic
    # cannot do on two threads at once, and partners are read on several.
    filters: Filters = Field(default_factory=Filters.model_construct)
    caps: Caps = Field(default_factory=Caps.model_construct)
    delivery: Endpoint = Field(default_factory=Endpoint.model_construct)
    # Days after a sale within which the partner may return the lead (0: no returns), and the
    # hash of the key it returns leads with (`pingpost partners rotate-key`; None: no key).
    return_days: int = Field(default=0, ge=0, le=365)
    return_key_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    # A buyer that bids: asked its price on ping and full (its `price` is then its floor), and
    # posted synchronously when it wins. Both or neither.
    bid: BidEndpoint | None = None
    post: PostEndpoint | None = None

    @field_validator("expose_hashes")
    @classmethod
    def _hash_value_types(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in HASH_VALUE_TYPES]
        if unknown:
            raise ValueError(f"expose_hashes takes: {', '.join(HASH_VALUE_TYPES)}")
        return names

    @field_validator("lead_types")
    @classmethod
    def _partner_types(cls, codes: list[str], info: ValidationInfo) -> list[str]:
        return still_known(codes, "partner") if _is_stored(info) else known_lead_types(codes)

    @model_validator(mode="after")
    def _filters_of_its_types(self, info: ValidationInfo) -> "Partner":
        if _is_stored(info):
            try:
                return self._checked_filters()
            except ValueError as error:  # a type file changed under it: it buys nothing
                logger.warning("partner %s buys nothing until it is fixed: %s", self.id, error)
                self.lead_types = []
                self.filters.fields = {}
                return self
        return self._checked_filters()

    def _checked_filters(self) -> "Partner":
        f = self.filters
        if (f.products or f.min_score) and LEAD_TYPE not in self.lead_types:
            raise ValueError(
                f"products and min_score filter {TYPES[LEAD_TYPE].name} leads (TYPE"
                f" {LEAD_TYPE}): lead_types must include {LEAD_TYPE}"
            )
        if f.fields:  # (most partners have none: no assignment, which pydantic makes slow)
            f.fields = {
                name: checked(name, taken, self.lead_types) for name, taken in f.fields.items()
            }
        return self

    @property
    def bids(self) -> bool:
        """Whether the partner is asked its price (its `price` is then a floor)."""
        return self.bid is not None

    @model_validator(mode="after")
    def _bids_and_posts(self) -> "Partner":
        if (self.bid is None) != (self.post is None):
            raise ValueError("a partner that bids has a bid and a post endpoint, both")
        for name, endpoint in (("bid", self.bid), ("post", self.post)):
            if endpoint is not None and not endpoint.url:
                raise ValueError(f"{name} needs a url")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {name!r}: use an IANA name such as America/Chicago"
            ) from None
        return name
