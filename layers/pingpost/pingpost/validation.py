"""Checks and normalises every field of a request, as the field table says.

A Pydantic model is generated from each lead type's table (one validator per kind), so the
table is the only place a field is described; a request is checked by its TYPE's table
(`pingpost.fields.table`). Every message names the field, as publishers expect:
"Required value First_Name is missing", "Invalid value for Zip: ...".

One module of over 400 lines on purpose: each kind's check and the messages they give are the
one description of what a valid value is; splitting them would split that description.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, create_model
from pydantic_core import PydanticCustomError

from pingpost.config import settings
from pingpost.errors import InvalidRequest
from pingpost.fields import (
    API_ACTION,
    CERTIFIER_HOSTS,
    MAX_COUNT_DIGITS,
    MODES,
    TABLES,
    Field,
    Kind,
    Need,
    Table,
    named,
    table,
)
from pingpost.geography import US_STATES, state_for_zip
from pingpost.leadtypes import FIELD_NAME, read_date, written_date
from pingpost.urls import UnsafeUrl, host_of, public_url

# Limits on what the table does not describe: fields we keep but do not know.
MAX_EXTRA_FIELDS = 100
MAX_EXTRA_VALUE = 1000

# What no XML document may carry (a partner's XML delivery could not be written): C0 controls
# but tab and line breaks, DEL, and the Unicode non-characters (U+FDD0-U+FDEF, U+FFFE and
# U+FFFF in every plane).
_CONTROL_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufdd0-\ufdef"
    + "".join(chr(plane * 0x10000 + 0xFFFE) + chr(plane * 0x10000 + 0xFFFF) for plane in range(17))
    + "]"
)
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_PHONE_PUNCTUATION = re.compile(r"[\s().+-]")
_NANP = re.compile(r"^[2-9]\d{2}[2-9]\d{6}$")
# A whole number may be written with a zero fraction (12.0), as JSON encoders of floats do.
_INTEGER = re.compile(r"^([+-]?\d{1,9})(?:\.0*)?$")
_COUNT = re.compile(rf"^\+?(\d{{1,{MAX_COUNT_DIGITS}}})(?:\.0*)?$")
_CONSENT_TOKEN = re.compile(r"^[A-Za-z0-9-]{8,}$")
_MAX_MONEY = Decimal("1000000")
_URL_RULE = "must be an http or https URL with a public host name"


def _invalid(reason: str) -> PydanticCustomError:
    return PydanticCustomError("pingpost", reason)


def _folded(value: str) -> str:
    return " ".join(value.split()).casefold()


def _choice(field: Field) -> Callable[[str], str]:
    canonical = {_folded(v): v for v in field.values}
    if len(field.values) <= 12:
        reason = "must be one of: " + ", ".join(field.values)
    else:
        reason = "not one of the allowed values (see the field table)"

    def check(value: str) -> str:
        try:
            return canonical[_folded(value)]
        except KeyError:
            raise _invalid(reason) from None

    return check


def _money(value: str) -> Decimal | None:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise _invalid("must be a number such as 2.55") from None
    # 1e-999999 is a number, but no amount of money (and no number DynamoDB can store).
    if not amount.is_finite() or amount >= _MAX_MONEY or (amount and amount.adjusted() < -6):
        raise _invalid("must be a number such as 2.55")
    # The spec: a cost of zero or less is ignored, as if it had not been sent.
    return amount if amount > 0 else None


def _count(value: str) -> int:
    found = _COUNT.match(value)
    if found is None or int(found.group(1)) < 1:
        raise _invalid("must be a whole number of 1 or more")
    return int(found.group(1))


def _integer(value: str) -> int:
    found = _INTEGER.match(value)
    if found is None:
        raise _invalid("must be a whole number")
    return int(found.group(1))


def _flag(value: str) -> bool:
    if value not in ("0", "1"):
        raise _invalid("must be 1 (or 0 for not set)")
    return value == "1"


def _id_list(value: str) -> tuple[int, ...]:
    ids: list[int] = []
    for part in value.split(","):
        item = part.strip()
        if not item:
            continue
        if not item.isascii() or not item.isdigit() or len(item) > 15:
            raise _invalid("must be a comma-delimited list of partner ID numbers, e.g. 142,1543")
        ids.append(int(item))
    return tuple(dict.fromkeys(ids))


def redirect_url(value: str) -> str:
    """Where a Redirect_URL sends a browser (https:// when it names no scheme); 400 if nowhere.

    A public host, or one the operator trusts at private addresses (DELIVERY_HTTP_HOSTS).
    """
    try:
        return public_url(value, settings().trusted_hosts())
    except UnsafeUrl as unsafe:
        raise InvalidRequest([f"Invalid value for Redirect_URL: {_URL_RULE}: {unsafe}"]) from None


def _url(value: str) -> str:
    # Kept as sent: a URL without a scheme means https (see pingpost.urls).
    try:
        public_url(value, settings().trusted_hosts())
    except UnsafeUrl as unsafe:
        raise _invalid(f"{_URL_RULE}: {unsafe}") from None
    return value


def _certificate(value: str) -> str:
    hosts = ", ".join(CERTIFIER_HOSTS)
    try:
        url = public_url(value) if value.lower().startswith("https://") else ""
    except UnsafeUrl:
        url = ""
    parts = urlsplit(url)
    if host_of(url) not in CERTIFIER_HOSTS or len(parts.path) < 2:
        raise _invalid(f"must be a certificate URL, https on {hosts}")
    return value


def _consent_token(value: str) -> str:
    if not _CONSENT_TOKEN.match(value):
        raise _invalid("must be a token of letters, digits and hyphens")
    return value


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise _invalid("must be an IPv4 or IPv6 address") from None


def _state(value: str) -> str:
    code = value.upper()
    if code not in US_STATES:
        raise _invalid("must be a US state abbreviation such as IL")
    return code


def _zip(value: str) -> str:
    if len(value) != 5 or not value.isascii() or not value.isdigit():
        raise _invalid("must be 5 digits")
    if state_for_zip(value) is None:
        raise _invalid("is not an existing US ZIP code")
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise _invalid("must be a valid email address")
    return value


def _phone(value: str) -> str:
    digits = _PHONE_PUNCTUATION.sub("", value)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if not _NANP.match(digits):
        raise _invalid("must be a valid 10-digit US phone number")
    return digits


def _date(field: Field) -> Callable[[str], str]:
    """A date's check: one of the field's formats, kept in its first."""
    kept = field.formats[0]
    shown = "m/d/Y" if field.formats == ("MM/DD/YYYY",) else " or ".join(field.formats)
    reason = f"must be a date as {shown}, e.g. {field.example}"

    def check(value: str) -> str:
        for form in field.formats:
            if (day := read_date(value, form)) is not None:
                return written_date(day, kept)
        raise _invalid(reason)

    return check


def _constant(expected: str, reason: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value.casefold() != expected.casefold():
            raise _invalid(reason)
        return expected

    return check


def _mode(value: str) -> str:
    mode = value.casefold()
    if mode not in MODES:
        raise _invalid("must be one of: " + ", ".join(MODES))
    return mode


def _lead_type(value: str) -> str:
    if value not in TABLES:
        raise _invalid(f"must be a lead type of this exchange: {named()}")
    return value


_CHECKS: dict[Kind, Callable[[str], object]] = {
    Kind.TEXT: str,
    Kind.KEY: str,
    Kind.ACTION: _constant(API_ACTION, f"must be {API_ACTION}"),
    Kind.MODE: _mode,
    Kind.MONEY: _money,
    Kind.COUNT: _count,
    Kind.INTEGER: _integer,
    Kind.FLAG: _flag,
    Kind.LEAD_TYPE: _lead_type,
    Kind.ID_LIST: _id_list,
    Kind.URL: _url,
    Kind.IP: _ip,
    Kind.STATE: _state,
    Kind.ZIP: _zip,
    Kind.EMAIL: _email,
    Kind.PHONE: _phone,
    Kind.CERTIFICATE: _certificate,
    Kind.CONSENT_TOKEN: _consent_token,
}


def _within(field: Field) -> Callable[[str], object]:
    """An integer's check, with the bounds its lead type gives it."""
    least, most = field.least, field.most

    def check(value: str) -> int:
        number = _integer(value)
        if (least is not None and number < least) or (most is not None and number > most):
            low = "" if least is None else f"at least {least}"
            high = "" if most is None else f"at most {most}"
            raise _invalid("must be " + " and ".join(filter(None, (low, high))))
        return number

    return check


# The kinds whose check names every value they take.
_CLOSED = frozenset({Kind.CHOICE, Kind.MODE, Kind.ACTION, Kind.LEAD_TYPE, Kind.FLAG})


def _validator(field: Field) -> Callable[[Any], object]:
    check: Callable[[str], object]
    if field.kind is Kind.CHOICE:
        check = _choice(field)
    elif field.kind is Kind.DATE:
        check = _date(field)
    else:
        check = _CHECKS[field.kind]
    if field.kind is Kind.INTEGER and (field.least is not None or field.most is not None):
        check = _within(field)
    too_long = f"must be at most {field.max_len} characters"
    # A phone may arrive formatted, "+1 (312) 555-6491": its 10 digits are what the limit means.
    # A value of a closed set is told the set, however long (it cannot be one of them).
    limit = field.max_len + (10 if field.kind is Kind.PHONE else 0)
    if field.kind in _CLOSED:
        limit = sys.maxsize

    def validate(value: Any) -> object:
        if not isinstance(value, str):
            raise _invalid("must be text")
        if len(value) > limit:
            raise _invalid(too_long)
        if _CONTROL_CHARS.search(value):
            raise _invalid("contains control characters or Unicode non-characters")
        return check(value)

    return validate


@cache
def request_model(lead_table: Table) -> type[BaseModel]:
    """The Pydantic model of a lead type's requests, built once from its table."""
    definitions: dict[str, Any] = {
        f.name: (Annotated[Any, PlainValidator(_validator(f))], None) for f in lead_table.fields
    }
    return create_model(
        "PingPostLeadRequest",
        __config__=ConfigDict(extra="ignore", frozen=True),
        **definitions,
    )


def present(raw: Mapping[str, str]) -> dict[str, str]:
    """The sent values with surrounding blanks removed; an empty value counts as not sent."""
    out: dict[str, str] = {}
    for name, value in raw.items():
        stripped = value.strip()
        if stripped:
            out[name] = stripped
    return out


def parse(values: Mapping[str, str]) -> dict[str, object]:
    """Typed, normalised values of the fields of its TYPE's table in `values` (already
    `present`)."""
    lead_table = table(values)
    known = {name: value for name, value in values.items() if name in lead_table.by_name}
    try:
        model = request_model(lead_table).model_validate(known)
    except ValidationError as exc:
        messages = [_message(error) for error in exc.errors(include_url=False)]
        raise InvalidRequest(_in_table_order(messages, lead_table)) from None
    return {name: value for name, value in model.model_dump().items() if value is not None}


def _message(error: Mapping[str, Any]) -> str:
    name = str(error["loc"][0]) if error.get("loc") else "request"
    return f"Invalid value for {name}: {error['msg']}"


def _in_table_order(messages: list[str], lead_table: Table) -> list[str]:
    order = lead_table.order

    def position(message: str) -> int:
        name = message.removeprefix("Invalid value for ").split(":", 1)[0]
        name = name.removeprefix("Required value ").removesuffix(" is missing")
        return order.get(name, len(order))

    return sorted(messages, key=position)


def missing(values: Mapping[str, str], mode: str, *, dynamic_pricing: bool) -> list[str]:
    """Messages for the fields `mode` requires that `values` (already `present`) lacks."""
    out = []
    lead_table = table(values)
    for field in lead_table.fields:
        need = field.required(mode)
        if need is Need.NO or field.name in values:
            continue
        if need is Need.DYNAMIC_PRICING and not dynamic_pricing:
            continue
        zip_field = lead_table.looked_up.get(field.name)
        if zip_field is not None and zip_field in values:
            continue  # looked up from the Zip (an invalid Zip is reported on its own)
        out.append(f"Required value {field.name} is missing")
    return out


def extras(raw: Mapping[str, str]) -> dict[str, str]:
    """Fields its TYPE's table does not know: kept with the lead, within limits, never an
    error."""
    out: dict[str, str] = {}
    known = table(raw).by_name
    for name, value in raw.items():
        if name in known or not FIELD_NAME.match(name):
            continue
        if len(out) == MAX_EXTRA_FIELDS:
            break
        out[name] = _CONTROL_CHARS.sub("", value)[:MAX_EXTRA_VALUE]
    return out


def cross_check(values: dict[str, object]) -> list[str]:
    """Rules between fields; fills State from Zip. Returns messages for what breaks them."""
    problems = []
    hash_type, value_type = values.get("Return_Hash_Type"), values.get("Return_Hash_Value_Type")
    if (hash_type is None) != (value_type is None):
        problems.append("Return_Hash_Type and Return_Hash_Value_Type must be used together")
    place = table(values).lead_type
    zip_code = values.get(place.zip) if place.zip else None
    if isinstance(zip_code, str) and place.state:
        zip_state = state_for_zip(zip_code)
        state = values.get(place.state)
        if state is None:
            values[place.state] = zip_state
        elif state != zip_state:
            problems.append(
                f"Invalid value for {place.state}: {place.zip} {zip_code} is in {zip_state},"
                f" not {state}"
            )
    return problems


def validate(raw: Mapping[str, str], mode: str, *, dynamic_pricing: bool) -> dict[str, object]:
    """Every check of a request in `mode`: required fields, each value, the rules between them."""
    values = present(raw)
    problems = missing(values, mode, dynamic_pricing=dynamic_pricing)
    try:
        parsed = parse(values)
    except InvalidRequest as exc:
        problems.extend(exc.messages)
        parsed = {}
    if parsed or not problems:
        problems.extend(cross_check(parsed))
    if problems:
        raise InvalidRequest(_in_table_order(problems, table(values)))
    if mode == "post":
        parsed.pop("Cost", None)  # the spec: Cost is ignored on post
    return parsed
