"""The pingPostLead field tables: the protocol's own fields, then a lead type's.

Models, request decoding, error messages, the docs and test fixtures are all derived from a
`Table`: one per lead type, `TABLES` by TYPE. The protocol's fields (Key, API_Action, Mode, TYPE,
the Return_/Skip_/Match_ fields, ...) are named here and belong to every table; a lead's own
fields are its type's file in `leadtypes/` (with the fields every type shares,
`leadtypes/standard.json`). `FIELDS` and the names beside it are Home Improvement's (TYPE=7), the
specification's type.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from pingpost.leadtypes import FOLDER, Field, Kind, LeadType, LeadTypeError, Need, files, load

__all__ = ["Field", "Kind", "LeadType", "Need"]

LEAD_ID = "Lead_ID"
# The field that names a request's lead type, and so its table.
TYPE = "TYPE"
# The consumer's address, which a browser's request may leave out (pingpost.edge fills it in).
SOURCE_ADDRESS = "IP_Address"
LEAD_TYPE = "7"
API_ACTION = "pingPostLead"
MODES = ("ping", "post", "full")
HASH_TYPES = ("sha1", "md5")
# A vendor's own <Matches> may also carry values in clear.
MATCH_HASH_TYPES = ("plain", *HASH_TYPES)
HASH_VALUE_TYPES = ("email", "phone", "company", "promotionCode", "partnerGroup")
FORMATS = ("XML", "JSON")
# Limits of a request's structure (decoding enforces them).
MAX_FIELDS = 400
# The digits of a count (Lead_ID, Allowed_Times_Sold) and of an ID the exchange counts up.
MAX_COUNT_DIGITS = 15
# <Matches> and <Match_With_Partner_Hashes>: values per list, characters per value (a hash is
# 40, a company name or promotion code far less than this).
MAX_HASHED_VALUES = 100
MAX_HASHED_VALUE_LENGTH = 256
# A lead as stored (its fields, extra fields and Matches, names and values in UTF-8 bytes):
# a DynamoDB item holds 400 KB, and the answer, decisions and timeline are written beside it.
MAX_LEAD_BYTES = 160 * 1024
# A multipart part's headers, and the parameters of one header (`form-data; name=...`).
MAX_PART_HEADER_BYTES = 1024
MAX_HEADER_PARAMETERS = 8
# {"Request": {"Matches": {"Match": [{"$": {...}}]}}} is 6 deep: 8 leaves room, not recursion.
MAX_JSON_DEPTH = 8
# Hosts that issue consent certificates (Trusted_Form_URL must be https on one of them).
CERTIFIER_HOSTS = ("cert.trustedform.com",)
# The request's structure (XML tags, and the same names as JSON keys).
REQUEST, DATA = "Request", "Data"
MATCHES, MATCH = "Matches", "Match"
SELECTED, SELECTED_HASH = "Match_With_Partner_Hashes", "Selected_Partner_Hash"

# A choice of these takes JSON's true and false (pingpost.decoding).
YES_NO = ("Yes", "No")
Y, N, DP = Need.YES, Need.NO, Need.DYNAMIC_PRICING


def _control(
    name: str,
    ping: Need,
    post: bool,
    kind: Kind,
    example: str,
    max_len: int,
    values: tuple[str, ...] = (),
    note: str = "",
) -> Field:
    return Field(name, ping, post, kind, max_len, example, values, control=True, note=note)


_PROTOCOL: tuple[Field, ...] = (
    _control(
        "Key",
        Y,
        True,
        Kind.KEY,
        "c65KcIcVojZ_odK5ojoW9x-J8sfJ-.GjvxUEcjo.cg-JoW5_9d3uFePP",
        max_len=256,
        note="string (provided by site admin)",
    ),
    _control("API_Action", Y, True, Kind.ACTION, API_ACTION, max_len=64, values=(API_ACTION,)),
    _control("Mode", Y, True, Kind.MODE, "ping", max_len=4, values=MODES),
    _control(
        "Cost",
        N,
        False,
        Kind.MONEY,
        "2.55",
        max_len=20,
        note="ping only; ignored on post",
    ),
    _control(LEAD_ID, N, True, Kind.COUNT, "1234", max_len=18, note="the lead_id a ping answered"),
    _control("Allowed_Times_Sold", N, False, Kind.COUNT, "2", max_len=4),
    _control(
        "Return_Hash_Type",
        N,
        False,
        Kind.CHOICE,
        "sha1",
        max_len=4,
        values=HASH_TYPES,
        note="only together with Return_Hash_Value_Type",
    ),
    _control(
        "Return_Hash_Value_Type",
        N,
        False,
        Kind.CHOICE,
        "email",
        max_len=13,
        values=HASH_VALUE_TYPES,
        note="only together with Return_Hash_Type",
    ),
    _control("Skip_Partner_ID", N, False, Kind.ID_LIST, "142,1543,225", max_len=2000),
    _control("Return_Best_Price", DP, False, Kind.FLAG, "1", max_len=1),
    _control(TYPE, Y, True, Kind.LEAD_TYPE, LEAD_TYPE, max_len=2, note="the lead type"),
    _control("Test_Lead", N, False, Kind.FLAG, "1", max_len=1),
    _control("Skip_XSL", N, False, Kind.FLAG, "1", max_len=1),
    _control("Match_With_Partner_ID", N, False, Kind.ID_LIST, "22,456", max_len=2000),
    _control("Redirect_URL", N, False, Kind.URL, "http://www.yoursite.com/", max_len=2048),
    # Beyond the specification's table: what publishers send the hosted platform besides.
    Field(
        "Format",
        N,
        False,
        Kind.CHOICE,
        4,
        "JSON",
        FORMATS,
        control=True,
        note="the answer's format: XML (the default) or JSON",
        spec=False,
    ),
)
# The names the protocol's fields take, which no lead type's field or alias may.
RESERVED: frozenset[str] = frozenset(
    name for field in _PROTOCOL for name in (field.name, *field.aliases)
)


@dataclass(frozen=True, eq=False)  # one per type: compared (and cached) by identity
class Table:
    """The fields of a lead type's requests: the protocol's and the type's, the specification's
    first, with what is looked up by name (`_table` makes one)."""

    lead_type: LeadType
    fields: tuple[Field, ...]
    by_name: Mapping[str, Field]
    aliases: Mapping[str, str]  # alias -> field name
    order: Mapping[str, int]  # name -> its place in the table (messages come in this order)
    data_fields: tuple[str, ...]  # the lead's own fields (inside <Data>), in table order
    # A required state a request may leave out when the ZIP code is sent: looked up from it.
    looked_up: Mapping[str, str]
    # The fields whose change between ping and post changes which partners match.
    matched_on: tuple[str, ...]
    # The consumer's email and phone fields (personal data), first first: a partner's dedupe
    # window knows the consumer by the first of each a lead has.
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    # Its fields whose values are Yes and No (a JSON true is Yes for them).
    yes_no: frozenset[str]

    def consumer(self, values: Mapping[str, object]) -> dict[str, str]:
        """The consumer a lead of this type is about: its email and phone, as far as sent."""
        found = {}
        for key, names in (("email", self.emails), ("phone", self.phones)):
            sent = next((str(values[n]) for n in names if values.get(n) is not None), None)
            if sent is not None:
                found[key] = sent
        return found

    @property
    def type(self) -> str:
        """The lead type's TYPE."""
        return self.lead_type.type


def _table(lead_type: LeadType, protocol: tuple[Field, ...]) -> Table:
    own = tuple(  # TYPE's example is the type's own
        f._replace(example=lead_type.type) if f.kind is Kind.LEAD_TYPE and lead_type.type else f
        for f in protocol
    )
    fields = tuple(sorted((*own, *lead_type.fields), key=lambda field: not field.spec))
    place = lead_type
    matched_on = (place.state, place.zip, *(f.name for f in fields if f.match), "SRC")
    return Table(
        lead_type,
        fields,
        by_name={f.name: f for f in fields},
        aliases={alias: f.name for f in fields for alias in f.aliases},
        order={f.name: n for n, f in enumerate(fields)},
        data_fields=tuple(f.name for f in fields if not f.control),
        looked_up={place.state: place.zip} if place.state and place.zip else {},
        matched_on=tuple(dict.fromkeys(filter(None, matched_on))),
        emails=tuple(f.name for f in fields if f.kind is Kind.EMAIL and f.pii),
        phones=tuple(f.name for f in fields if f.kind is Kind.PHONE and f.pii),
        yes_no=frozenset(f.name for f in fields if f.values == YES_NO),
    )


class _ByType[V](Mapping[str, V]):
    """Each lead type's value, by TYPE in number order, made when it is first asked for: a
    request names one type, and the others' files are read only when something needs them."""

    def __init__(self, codes: Iterable[str], make: Callable[[str], V]) -> None:
        self._codes = dict.fromkeys(codes)
        self._make = make
        self._made: dict[str, V] = {}

    def __getitem__(self, code: str) -> V:
        made = self._made.get(code)
        if made is None:
            if code not in self._codes:
                raise KeyError(code)
            made = self._made.setdefault(code, self._make(code))  # one per type, whatever races
        return made

    def __contains__(self, code: object) -> bool:
        return code in self._codes

    def __iter__(self) -> Iterator[str]:
        return iter(self._codes)

    def __len__(self) -> int:
        return len(self._codes)


# Every lead type of the exchange (the files of leadtypes/), by TYPE in number order. The
# layer's own files are checked whole when the layer is built (`make check-types` in
# layers/pingpost), and each is read here when its type is first needed; an operator's
# (LEAD_TYPES_DIR, never built) are read and checked now: a function refuses to start with a
# broken one. (`files` reads every file's TYPE now.)
_FILES = files()
TYPES: Mapping[str, LeadType] = _ByType(_FILES, lambda code: load(_FILES[code], RESERVED))
for _code, _path in _FILES.items():
    if _path.parent != FOLDER:
        TYPES[_code]
if LEAD_TYPE not in TYPES or TYPES[LEAD_TYPE].name != "Home Improvement":
    raise LeadTypeError(f"home_improvement.json: type must be {LEAD_TYPE} (TYPE's value)")
TABLES: Mapping[str, Table] = _ByType(_FILES, lambda code: _table(TYPES[code], _PROTOCOL))
HOME_IMPROVEMENT: LeadType = TYPES[LEAD_TYPE]
_PRODUCT = [f for f in HOME_IMPROVEMENT.fields if f.name == "Home_Improvement_Product"]
if not _PRODUCT:
    raise LeadTypeError("home_improvement.json: field Home_Improvement_Product is missing")
# Home Improvement's products: a partner's `products` filter names them.
PRODUCTS: tuple[str, ...] = _PRODUCT[0].values
# The table of a request whose TYPE is not sent (the specification's type's, which it checks
# the rest of the request by) and Home Improvement's names, for what reads that one table.
DEFAULT: Table = TABLES[LEAD_TYPE]
FIELDS: tuple[Field, ...] = DEFAULT.fields
LOOKED_UP: Mapping[str, str] = DEFAULT.looked_up
BY_NAME: Mapping[str, Field] = DEFAULT.by_name
ALIASES: Mapping[str, str] = DEFAULT.aliases
# The table of a request whose TYPE is not one of the exchange's: the protocol's fields alone.
PROTOCOL: Table = _table(LeadType("", "", "", ()), _PROTOCOL)


def table(values: Mapping[str, object]) -> Table:
    """The table of a request or lead by its TYPE: the default when it sends none (or a blank
    one), the protocol's alone when its TYPE is not a lead type of the exchange."""
    code = str(values.get(TYPE) or "").strip()
    return TABLES.get(code, PROTOCOL) if code else DEFAULT


def named(codes: Iterable[str] | None = None) -> str:
    """Lead types as messages name them: `7 (Home Improvement), 20 (Auto Insurance)`; every
    type of the exchange unless `codes` says which."""
    return ", ".join(f"{code} ({TYPES[code].name})" for code in (TYPES if codes is None else codes))


def describe(field: Field) -> str:
    """What a value of `field` must be, in words (the tables of docs/leadtypes and openapi.yaml)."""
    kinds = {
        Kind.TEXT: f"text, at most {field.max_len} characters",
        Kind.KEY: "the vendor's key (given by the exchange)",
        Kind.MONEY: "a number > 0 (0 or less: ignored)",
        Kind.COUNT: "a whole number >= 1",
        Kind.INTEGER: "a whole number"
        + (f", at least {field.least}" if field.least is not None else "")
        + (f", at most {field.most}" if field.most is not None else ""),
        Kind.FLAG: "1",
        Kind.ID_LIST: "comma-delimited partner IDs",
        Kind.URL: "an http(s) URL",
        Kind.IP: "an IPv4 or IPv6 address",
        Kind.STATE: "a US state abbreviation",
        Kind.ZIP: "an existing 5-digit US ZIP code",
        Kind.EMAIL: f"an email address, at most {field.max_len} characters",
        Kind.PHONE: "a 10-digit US phone number (punctuation and a leading 1 are removed)",
        Kind.DATE: "a date, "
        + " or ".join(field.formats)
        + (f" (kept as {field.formats[0]})" if len(field.formats) > 1 else ""),
        Kind.LEAD_TYPE: "one of: " + ", ".join(f"`{code}` ({t.name})" for code, t in TYPES.items()),
        Kind.CERTIFICATE: "an https URL",
        Kind.CONSENT_TOKEN: f"letters, digits and hyphens, at most {field.max_len} characters",
    }
    if field.values:
        text = "one of: " + ", ".join(f"`{v}`" for v in field.values)
    else:
        text = kinds.get(field.kind, ", ".join(f"`{v}`" for v in field.values))
    notes = [text, field.note] if field.note else [text]
    if field.aliases:
        notes.append("also read as " + ", ".join(f"`{a}`" for a in field.aliases))
    if not field.spec:
        notes.append("not in the specification's table")
    return "; ".join(notes)


def markdown(lead_table: Table = DEFAULT) -> str:
    """A type's field table as Markdown (docs/leadtypes/<its slug>.md, generated)."""
    need = {Need.YES: "yes", Need.NO: "", Need.DYNAMIC_PRICING: "dynamic pricing"}
    kind = lead_table.lead_type
    lines = [
        f"# pingPostLead fields ({kind.name}, TYPE={kind.type})",
        "",
        f"Generated by `pingpost fields --type {kind.type}` from the protocol's fields",
        f"(`pingpost/fields.py`) and the type's file (`pingpost/leadtypes/{kind.slug}.json`);",
        "do not edit.",
        "Full mode requires what ping and post require, except Lead_ID. Values of sets are",
        "matched without regard to case or repeated spaces. XML: *control* fields are tags of",
        "`<Request>`, the others go inside `<Data>`.",
        "",
        'JSON requests (`{"Request": {...}}` or a flat object; a `Data` object inside is read',
        "like XML's `<Data>`) give each field as a JSON value, read as the text a form would send:",
        "",
        "- a string is the value as it is; a number is the text it was written as (`60610`,",
        "  `2.55`, `1e2`: never rounded; Zip codes with a leading 0 must be strings);",
        "- `true` / `false` are `Yes` / `No` for a field whose values are Yes and No, else",
        "  `1` / `0`;",
        '- `null`, `""`, `{}` and `[]` are a value not sent (XML converters write an empty',
        "  element as `{}`);",
        "- a list of partner IDs (`[142, 1543]`) is read as `142,1543` for "
        + " and ".join(f"`{f.name}`" for f in _PROTOCOL if f.kind is Kind.ID_LIST)
        + ";",
        "- any other object or list is refused (400) naming the field; so are a key sent twice,",
        f"  more than {MAX_FIELDS} fields, nesting deeper than {MAX_JSON_DEPTH} levels, `NaN` /",
        "  `Infinity` and text that is not UTF-8.",
        "",
        "`Matches` and `Match_With_Partner_Hashes` are a list of objects",
        '(`{"ValueType": "email", "HashType": "md5", "value": "..."}`), or the object',
        'an XML-to-JSON converter makes of the XML (`{"Match": [...]}`, attributes under `@`,',
        "`@_`, `$` or `@attributes`, text under `#text`, `_` or `value`).",
        "",
        f"Each list holds at most {MAX_HASHED_VALUES} values of at most {MAX_HASHED_VALUE_LENGTH}",
        "characters. A lead as stored (its fields, extra fields and Matches, with those its ping",
        f"recorded) may hold {MAX_LEAD_BYTES // 1024} KB; a request that would make it larger is",
        "refused (413) before anything is sold.",
        "",
        f"`multipart/form-data` bodies are read part by part: more than {MAX_FIELDS} parts, a",
        f"part's headers over {MAX_PART_HEADER_BYTES} bytes or a header with more than",
        f"{MAX_HEADER_PARAMETERS} parameters are refused (400); file parts are ignored.",
        "",
        "| Field | Ping | Post | XML | Value | Example |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in lead_table.fields:
        post = "yes" if f.post else ""
        where = "control" if f.control else "Data"
        value = describe(f).replace("|", "\\|")
        if f.name in lead_table.looked_up and not f.note:  # the type's placing state
            value += (
                f"; not required when {lead_table.looked_up[f.name]} is sent: looked up from it"
            )
        lines.append(f"| {f.name} | {need[f.ping]} | {post} | {where} | {value} | `{f.example}` |")
    return "\n".join(lines) + "\n"
