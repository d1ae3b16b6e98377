"""Where and how the exchange calls a partner: its delivery, and a bidding buyer's bid and
post endpoints, with what their answers mean."""

import re
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pingpost.fields import TABLES


@cache
def _any_field() -> frozenset[str]:
    """Every field name of every lead type (a partner's delivery may rename any of them)."""
    return frozenset(name for t in TABLES.values() for name in t.by_name)


class Outbound(BaseModel):
    """A request the exchange makes to a partner: where, how, and the lead's fields as named."""

    # Endpoints are validated inside a Partner, whose validator holds theirs: their own are
    # built only if one is made alone (the subclasses inherit this), not by every cold start.
    model_config = ConfigDict(extra="allow", defer_build=True)

    url: str = ""
    method: Literal["POST", "PUT"] = "POST"
    format: Literal["json", "form", "xml"] = "json"
    # Lead field -> the partner's name for it; when empty, every lead field goes as named.
    fields: dict[str, str] = {}
    static: dict[str, str] = {}  # fields added to every request, e.g. a partner's account ID
    # Headers sent with every request (an API key, say). Their values are kept in SSM
    # Parameter Store, never in the partners table, which records their names only.
    headers: dict[str, str] = Field(default_factory=dict)  # (a stored partner's has none)
    secret_headers: list[str] = []
    timeout: float = Field(default=5.0, gt=0, le=25)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if url and not re.match(r"^https?://[^\s/]+", url):
            raise ValueError("url must be an http(s) URL")
        return url

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, fields: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(fields) - {*_any_field(), "Lead_ID"})
        if unknown:
            raise ValueError(f"fields are not lead fields: {unknown}")
        return fields


class Endpoint(Outbound):
    """Where and how a partner receives its leads, and what answer counts as accepted."""

    success_status: list[int] = [200, 201, 202, 204]
    # Optional, all must hold: a regular expression found in the body; a JSON path "a.b"
    # whose value equals success_value; an XPath expression that is true of the XML body.
    success_body: str = ""
    success_json: str = ""
    success_value: str = ""
    success_xpath: str = ""

    @field_validator("success_body")
    @classmethod
    def _pattern(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"success_body is not a regular expression: {error}") from None
        return pattern


class AnswerPaths(BaseModel):
    """Where a buyer's answer says what: a dotted path in a JSON answer (`result.price`), an
    XPath in an XML answer (`//Payout`, `/r/@status`, whatever its namespace), a field name in
    a form-encoded one; JSON and form paths may name alternatives (`reason|errors`). An empty
    path finds nothing."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # as Outbound's

    accepted: str = ""
    price: str = ""
    token: str = ""
    reason: str = ""


class BuyerEndpoint(Outbound):
    """A request a buyer answers: its ping (`bid`) or its post."""

    answer: AnswerPaths = Field(default_factory=AnswerPaths.model_construct)  # as Partner's
    # What `answer.accepted` must find to mean yes (any case); empty: true, 1, yes, accepted,
    # success. Without an `accepted` path, an answer with a price is a bid.
    accepted_values: list[str] = []


class BidEndpoint(BuyerEndpoint):
    """Where a buyer is asked what it would pay for a lead (the partial lead, no personal data)."""

    timeout: float = Field(default=0.3, gt=0, le=25)


class PostEndpoint(BuyerEndpoint):
    """Where a buyer that won is posted the whole lead, with what its bid answered."""

    timeout: float = Field(default=2.0, gt=0, le=25)
    # The post field that carries the bid's token back (the bid's `answer.token`).
    token_field: str = ""
    # More values of the bid's answer carried back: post field -> path in the bid's answer.
    carry: dict[str, str] = {}
