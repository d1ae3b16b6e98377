"""Lead types as data: a lead type is one JSON file of this folder, its fields written once.

    {"type": "7", "name": "Home Improvement", "note": "...",
     "fields": [{"name": "Zip", "ping": "yes", "post": true}, ...]}

A field gives its `name`, what `ping` asks of it (`yes`, `no` or `dynamic_pricing`: only when
the vendor is on dynamic pricing) and whether `post` requires it; `kind` (one of LEAD_KINDS; a
field of standard.json has its own), `max_len`, `values`, `min`, `max`, `example`, `note`,
`aliases`, `pii` (personal data: never sent to a buyer before it buys), `match` (partners may
filter on it: `filters.fields`; not personal data), `formats` (a date's accepted formats, of
DATE_FORMATS: the first is the form it is kept in), `consent` (the key of the consent record it
fills, one of CONSENT_KEYS) and `spec` (false: beyond the specification's table) as their names say.

A group of fields publishers number (`Driver_1_Birthdate`, `Driver_2_Birthdate`) is written once,
as `{"repeat": 2, "required": 1, "fields": [{"name": "Driver_#_Birthdate", ...}]}`: each `#` of a
name (one per enclosing group; groups nest) is the instance's number, and the first `required`
instances (1 unless said) ask what `ping` and `post` say; the others are optional.

A type whose lead is placed by other fields than Zip and State names them (`"zip":
"Driver_1_Zip", "state": "Driver_1_State"`): partners' state and ZIP filters read them, and the
state is looked up from the ZIP as it is for Home Improvement.

A field of `standard.json` (the contact, address, traffic and consent fields every type
shares) needs only its name, `ping` and `post`; the file may override the rest (a new `kind`
leaves only its `pii` and `note`). Any other field needs its `kind`. The protocol's own fields
(Key, Mode, TYPE, ...) are not a lead type's: `pingpost.fields` has them, and no field or alias
of a type may take one of their names (`load`'s `reserved`).

A file that is not one is refused with a message naming the file, the field and the fault
(LeadTypeError); `pingpost leadtypes check FILE` says the same before anything is deployed.

One module of over 400 lines on purpose: a field's checks read each other (its kind, values,
bounds, length, example and formats), and what a file may say is read best in one place.
"""

import json
import os
import re
from datetime import date
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from pingpost.leadtypes.groups import GroupError, expanded

FOLDER = Path(__file__).parent
STANDARD = FOLDER / "standard.json"


class Kind(StrEnum):
    """How a field's value is checked and normalised (see `pingpost.validation`)."""

    TEXT = "text"  # Varchar(max_len)
    KEY = "key"  # the vendor's API key
    ACTION = "action"  # API_Action: pingPostLead
    MODE = "mode"  # ping | post | full
    MONEY = "money"  # real number; <= 0 means "not sent"
    COUNT = "count"  # whole number >= 1
    INTEGER = "integer"  # any whole number (within `least` and `most` when given)
    CHOICE = "choice"  # one of `values`, matched case-insensitively
    FLAG = "flag"  # 1 (0 is accepted as "not set")
    LEAD_TYPE = "lead_type"  # TYPE: 7
    ID_LIST = "id_list"  # comma-delimited partner IDs
    URL = "url"  # http(s) URL
    IP = "ip"  # IPv4 or IPv6 address
    STATE = "state"  # US state abbreviation
    ZIP = "zip"  # existing 5-digit ZIP code
    EMAIL = "email"
    PHONE = "phone"  # 10-digit North American number
    DATE = "date"  # in one of the field's formats (DATE_FORMATS)
    CERTIFICATE = "certificate"  # https URL of a consent certificate, on its certifier's host
    CONSENT_TOKEN = "consent_token"  # noqa: S105 (an opaque consent ID, not a secret)


class Need(StrEnum):
    """Whether a mode requires a field."""

    YES = "yes"
    NO = "no"
    DYNAMIC_PRICING = "only if the vendor is on dynamic pricing"


class Field(NamedTuple):
    """One row of a field table."""

    name: str
    ping: Need
    post: bool
    kind: Kind
    max_len: int
    example: str
    values: tuple[str, ...] = ()
    control: bool = False  # a top-level tag of the XML Request rather than one inside <Data>
    note: str = ""
    pii: bool = False  # personal data: masked in the operator's views, never logged
    # Other names publishers' code sends this field under (read as this field).
    aliases: tuple[str, ...] = ()
    # The key of the lead's consent record this field fills (TCPA evidence); "" for none.
    consent: str = ""
    # False for the fields beyond the specification's table that publishers send the hosted
    # platform (the answer's Format, consent evidence).
    spec: bool = True
    least: int | None = None  # an integer's smallest value, if it has one
    most: int | None = None  # ... and its largest
    match: bool = False  # partners may filter on it
    # A date's accepted formats (DATE_FORMATS' keys); the first is the form it is kept in.
    formats: tuple[str, ...] = ()

    def required(self, mode: str) -> Need:
        """What `mode` (ping, post or full) asks of this field; full = ping + post but the
        Lead_ID (the protocol's field that names the pinged lead)."""
        if mode == "ping":
            return self.ping
        if mode == "post":
            return Need.YES if self.post else Need.NO
        if self.name == "Lead_ID":
            return Need.NO
        if self.post:
            return Need.YES
        return self.ping


class LeadType(NamedTuple):
    """A lead type: its TYPE number, its name, and its fields in the file's order (a numbered
    group's fields instance by instance), with the fields that place a lead."""

    type: str
    name: str
    note: str
    fields: tuple[Field, ...]
    zip: str = ""  # the field that holds the lead's ZIP code ("" for none)
    state: str = ""  # ... and its state

    @property
    def slug(self) -> str:
        """The type's name as a file name: `Auto Insurance` is auto_insurance."""
        return "_".join(re.findall(r"[a-z0-9]+", self.name.casefold()))


class LeadTypeError(ValueError):
    """A lead type file that is not one: the message names the file, the field and the fault."""


# The kinds a lead's own field may have (the others are the protocol's).
LEAD_KINDS = frozenset(Kind) - {
    Kind.KEY,
    Kind.ACTION,
    Kind.MODE,
    Kind.LEAD_TYPE,
    Kind.ID_LIST,
    Kind.COUNT,
}
_NEEDS = {"yes": Need.YES, "no": Need.NO, "dynamic_pricing": Need.DYNAMIC_PRICING}
# What a field of a kind holds at most, and the example given, when the file says nothing.
_LENGTHS = {
    Kind.TEXT: 100,
    Kind.ZIP: 5,
    Kind.STATE: 2,
    Kind.PHONE: 10,
    Kind.EMAIL: 100,
    Kind.IP: 45,
    Kind.INTEGER: 10,
    Kind.DATE: 10,
    Kind.CERTIFICATE: 255,
    Kind.CONSENT_TOKEN: 64,
    Kind.MONEY: 20,
    Kind.FLAG: 1,
    Kind.URL: 2048,
    Kind.COUNT: 18,
}
_EXAMPLES = {
    Kind.ZIP: "60610",
    Kind.STATE: "IL",
    Kind.PHONE: "3125556491",
    Kind.EMAIL: "test@nags.us",
    Kind.IP: "75.2.92.149",
    Kind.DATE: "12/23/1980",
    Kind.INTEGER: "12",
    Kind.MONEY: "2.55",
    Kind.FLAG: "1",
    Kind.URL: "https://www.example.com/",
    Kind.CERTIFICATE: "https://cert.trustedform.com/0123456789abcdef",
    Kind.CONSENT_TOKEN: "B5A1C3D2-7E4F-4A9B-8C6D-1E2F3A4B5C6D",
}
_KEYS = frozenset(
    {"name", "ping", "post", "kind", "max_len", "values", "min", "max", "example", "note"}
    | {"aliases", "pii", "match", "consent", "spec", "formats"}
)
# The date formats a field may accept, as files write them: a month and a day of one or two
# digits (kept as two), a year of four.
DATE_FORMATS = ("MM/DD/YYYY", "YYYY-MM-DD", "MM-DD-YYYY", "MM/YYYY")
_DATE_PARTS = {"MM": "(?P<m>[0-9]{1,2})", "DD": "(?P<d>[0-9]{1,2})", "YYYY": "(?P<y>[0-9]{4})"}


@cache
def _date_pattern(form: str) -> re.Pattern[str]:
    pattern = re.escape(form)
    for part, group in _DATE_PARTS.items():
        pattern = pattern.replace(part, group)
    return re.compile(f"^{pattern}$")


def read_date(text: str, form: str) -> date | None:
    """The date `text` is in `form` (one of DATE_FORMATS; a month's first day when the form has
    no day), or None when it is none."""
    found = _date_pattern(form).match(text)
    if found is None:
        return None
    parts = found.groupdict()
    try:
        return date(int(parts["y"]), int(parts["m"]), int(parts.get("d") or 1))
    except ValueError:  # no such day, month or year
        return None


def written_date(day: date, form: str) -> str:
    """`day` in `form` (one of DATE_FORMATS)."""
    parts = {"MM": f"{day.month:02d}", "DD": f"{day.day:02d}", "YYYY": f"{day.year:04d}"}
    return re.sub("MM|DD|YYYY", lambda part: parts[part.group()], form)


# The fields a type may have in all (a numbered group's once for each instance).
MOST_FIELDS = 1000
_TEXTS = ("kind", "example", "note", "consent")
# The keys of a lead's consent record a field may fill (pingpost.consent).
CONSENT_KEYS = frozenset(
    {"given", "language", "trusted_form_url", "leadid_token", "user_agent", "landing_page", "ip"}
)
_TYPE = re.compile(r"^[1-9][0-9]?$")
# A field's name, as an XML tag and a form field both carry it (a type's, or a request's extra).
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def folded(value: str) -> str:
    """A value as requests are matched to it: any case, spaces run together (validation)."""
    return " ".join(value.split()).casefold()


_FLAGS = ("post", "pii", "match", "spec")


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise LeadTypeError(f"{path.name}: cannot be read: {error}") from None
    except (ValueError, RecursionError) as error:  # JSONDecodeError, nesting, huge numbers
        raise LeadTypeError(f"{path.name}: not JSON: {str(error)[:200]}") from None


def _entries(path: Path, document: Any, *, standard: bool) -> list[dict[str, Any]]:
    """The file's field entries, each an object with a name, the names unique: a numbered
    group's entries once for each instance, `#` replaced by its number (and `ping` and `post`
    made optional past the group's `required` instances)."""
    if not isinstance(document, dict) or not isinstance(document.get("fields"), list):
        raise LeadTypeError(f"{path.name}: must be an object with a list of fields")
    allowed = {"note", "fields"} if standard else {"type", "name", "note", "fields", "zip", "state"}
    extra = sorted(set(document) - allowed)
    if extra:
        raise LeadTypeError(f"{path.name}: unknown key {extra[0]!r}")
    try:
        entries = expanded(path, document["fields"], standard=standard)
    except GroupError as error:
        raise LeadTypeError(str(error)) from None
    seen: set[str] = set()
    for entry in entries:
        name = entry["name"]
        if name in seen:
            raise LeadTypeError(f"{path.name}: field {name}: a duplicate name")
        seen.add(name)
    if len(entries) > MOST_FIELDS:
        raise LeadTypeError(f"{path.name}: more than {MOST_FIELDS} fields")
    return entries


def _field(path: Path, entry: dict[str, Any], base: dict[str, Any] | None) -> Field:
    """A field from its entry, over its standard definition (`base`) when it has one."""
    name = entry["name"]

    def fault(text: str) -> LeadTypeError:
        return LeadTypeError(f"{path.name}: field {name}: {text}")

    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise fault(f"unknown key {unknown[0]!r}")
    if base is None and "kind" not in entry:
        raise fault("kind is needed (it is not a field of standard.json)")
    if base is not None and entry.get("kind", base.get("kind", "text")) != base.get("kind", "text"):
        base = {k: v for k, v in base.items() if k in ("name", "pii", "note")}  # another kind
    merged = {**(base or {}), **entry}
    if not isinstance(merged.get("ping"), str) or merged["ping"] not in _NEEDS:
        raise fault("ping must be yes, no or dynamic_pricing")
    for key in _FLAGS:
        if key in merged and not isinstance(merged[key], bool):
            raise fault(f"{key} must be true or false")
    if "post" not in merged:
        raise fault("post must be true or false")
    for key in _TEXTS:
        if key in merged and not isinstance(merged[key], str):
            raise fault(f"{key} must be text")
    try:
        kind = Kind(merged.get("kind", "text"))
    except ValueError:
        kind = None
    if kind not in LEAD_KINDS:
        raise fault(f"unknown kind {merged.get('kind')!r} (one of {', '.join(sorted(LEAD_KINDS))})")
    values = merged.get("values", [])
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
        raise fault("values must be a list of texts")
    if len({folded(v) for v in values}) != len(values):
        raise fault("values holds a value twice (case and spaces aside)")
    if (kind is Kind.CHOICE) != bool(values):
        raise fault("a choice needs its values" if values == [] else "only a choice has values")
    aliases = merged.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise fault("aliases must be a list of names")
    for named in (name, *aliases):  # an XML tag and a form field both: a letter, then these
        if not FIELD_NAME.match(named):
            raise fault(f"{named!r} is not a name: a letter, then letters, digits and _")
    if merged.get("match") and merged.get("pii"):
        raise fault("personal data (pii) cannot be a field partners filter on (match)")
    formats = _formats(fault, merged, kind)
    least, most, max_len, example, consent = _limits(fault, merged, kind, list(values), name)
    if formats and not any(read_date(example, f) for f in formats):
        raise fault(f"example {example[:40]!r} is not a date in its formats")
    return Field(
        name,
        _NEEDS[merged["ping"]],
        merged["post"],
        kind,
        max_len,
        example,
        tuple(values),
        note=merged.get("note", ""),
        pii=merged.get("pii", False),
        aliases=tuple(aliases),
        consent=consent,
        spec=merged.get("spec", True),
        least=least,
        most=most,
        match=merged.get("match", False),
        formats=tuple(formats),
    )


def _formats(fault: Any, merged: dict[str, Any], kind: Kind) -> list[str]:
    """A date's formats (MM/DD/YYYY unless said); none for any other kind."""
    if kind is not Kind.DATE:
        if "formats" in merged:
            raise fault("only a date has formats")
        return []
    formats = merged.get("formats", ["MM/DD/YYYY"])
    if not isinstance(formats, list) or not formats or not all(f in DATE_FORMATS for f in formats):
        raise fault(f"formats must be a list of: {', '.join(DATE_FORMATS)}")
    if len(set(formats)) != len(formats):
        raise fault("formats holds a format twice")
    if "example" not in merged:  # the standard example, written as the field keeps it
        merged["example"] = written_date(date(1980, 12, 23), formats[0])
    return list(formats)


def _limits(
    fault: Any, merged: dict[str, Any], kind: Kind, values: list[str], name: str
) -> tuple[int | None, int | None, int, str, str]:
    """A field's bounds, length, example and consent key, each checked against the others."""
    least, most = merged.get("min"), merged.get("max")
    for key, bound in (("min", least), ("max", most)):
        if bound is not None and (kind is not Kind.INTEGER or type(bound) is not int):
            raise fault(f"{key} must be a whole number, for an integer")
        if bound is not None and abs(bound) > 999_999_999:
            raise fault(f"{key} must have at most 9 digits (as an integer's value)")
    if least is not None and most is not None and least > most:
        raise fault("min is over max")
    longest = max(map(len, values)) if values else 1
    max_len = merged.get(
        "max_len", max(longest, _LENGTHS.get(kind, 100)) if not values else longest
    )
    if type(max_len) is not int or not longest <= max_len <= 10_000:
        raise fault(f"max_len must be a whole number from {longest} to 10000")
    default = values[0] if values else _EXAMPLES.get(kind, name)
    if kind is Kind.INTEGER:  # the standard example, within the field's bounds
        low = 12 if least is None else max(12, least)
        default = str(low if most is None else min(low, most))
    example = str(merged.get("example", default))
    if len(example) > max_len or (values and folded(example) not in {folded(v) for v in values}):
        raise fault(f"example {example[:40]!r} is not a value of the field")
    if kind is Kind.INTEGER and not (
        re.fullmatch(r"-?[0-9]{1,9}", example)
        and (least is None or int(example) >= least)
        and (most is None or int(example) <= most)
    ):
        raise fault(f"example {example[:40]!r} is not a whole number within its min and max")
    consent = merged.get("consent", "")
    if consent and consent not in CONSENT_KEYS:
        raise fault(f"consent must be one of {', '.join(sorted(CONSENT_KEYS))}")
    if consent == "given" and sorted(map(folded, values)) != ["no", "yes"]:
        raise fault("a consent given must be a choice of Yes and No")
    return least, most, max_len, example, consent


@cache
def standard() -> dict[str, dict[str, Any]]:
    """The standard library's definitions, by name (checked as a lead type's fields are), read
    once however many types name them."""
    entries = _entries(STANDARD, _read(STANDARD), standard=True)
    for entry in entries:  # each must make a field once a type says what modes ask of it
        _field(STANDARD, {"ping": "no", "post": False} | entry, {})
    return {entry["name"]: entry for entry in entries}


def load(path: Path, reserved: frozenset[str] = frozenset()) -> LeadType:
    """The lead type of a file (LeadTypeError when it is not one); `reserved`: the names (and
    aliases) of the protocol's fields, which none of its fields or aliases may take."""
    document = _read(path)
    entries = _entries(path, document, standard=False)
    kind = document.get("type")
    if not isinstance(kind, str) or not _TYPE.match(kind):
        raise LeadTypeError(f"{path.name}: type must be a number from 1 to 99, as text")
    name, note = document.get("name"), document.get("note", "")
    if not isinstance(name, str) or not name.strip() or not isinstance(note, str):
        raise LeadTypeError(f"{path.name}: name must be text (and note, if given)")
    shared = standard()
    fields = tuple(_field(path, entry, shared.get(entry["name"])) for entry in entries)
    names = {f.name for f in fields}
    seen: set[str] = set()
    for field in fields:
        if field.name in reserved:
            raise LeadTypeError(f"{path.name}: field {field.name}: a protocol field's name")
        for alias in field.aliases:
            if alias in names or alias in reserved or alias in seen:
                taken = "a field" if alias in names else "taken"
                raise LeadTypeError(f"{path.name}: field {field.name}: alias {alias} is {taken}")
            seen.add(alias)
    by_name = {f.name: f for f in fields}
    place = []
    for key, wanted in (("zip", Kind.ZIP), ("state", Kind.STATE)):
        named = document.get(key, key.title() if key.title() in by_name else "")
        if named and (not isinstance(named, str) or by_name.get(named) is None):
            raise LeadTypeError(f"{path.name}: {key} must name a field of the type")
        if named and by_name[named].kind is not wanted:
            raise LeadTypeError(f"{path.name}: {key}: field {named} is not a {wanted} field")
        place.append(named)
    return LeadType(kind, name, note, fields, zip=place[0], state=place[1])


def folders() -> list[Path]:
    """Where lead type files are read: this folder, then the operator's own (LEAD_TYPES_DIR, a
    folder of more type files, for types kept outside the layer)."""
    more = os.environ.get("LEAD_TYPES_DIR", "").strip()
    return [FOLDER, Path(more)] if more else [FOLDER]


def files() -> dict[str, Path]:
    """Every lead type file of `folders()` by its TYPE, in number order, each read for its TYPE
    alone (LeadTypeError for a missing folder, two files of one TYPE, or a file whose TYPE
    cannot be read, as `load` refuses it): `load` checks the rest when the type is needed."""
    found: dict[str, Path] = {}
    for folder in folders():
        if not folder.is_dir():
            raise LeadTypeError(f"LEAD_TYPES_DIR {folder}: not a folder")
        for path in sorted(folder.glob("*.json")):
            if path == STANDARD:
                continue
            document = _read(path)
            kind = document.get("type") if isinstance(document, dict) else None
            if not isinstance(kind, str) or not _TYPE.match(kind):
                load(path)  # refused, with the reason `load` gives
            assert isinstance(kind, str)
            if kind in found:
                raise LeadTypeError(f"{path.name}: type {kind} is another file's too")
            found[kind] = path
    return {key: found[key] for key in sorted(found, key=int)}


def shipped(reserved: frozenset[str] = frozenset()) -> list[LeadType]:
    """Every lead type of `folders()`, by TYPE (LeadTypeError for a broken file, or two files
    of one TYPE); `reserved` as for `load`."""
    return [load(path, reserved) for path in files().values()]
