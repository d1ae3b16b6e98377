"""The pingPostLead field table (Home Improvement, TYPE=7): the one place each field is named.

Models, request decoding, error messages, the README table and test fixtures are all derived
from `FIELDS`. Values lists are reconstructed from the published specification, whose text
extraction ran the words of each list together.

One module of over 400 lines on purpose: it is the specification's table, field by field, and
the one place each field is named; splitting it would name fields in two places.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """How a field's value is checked and normalised (see `pingpost.validation`)."""

    TEXT = "text"  # Varchar(max_len)
    KEY = "key"  # the vendor's API key
    ACTION = "action"  # API_Action: pingPostLead
    MODE = "mode"  # ping | post | full
    MONEY = "money"  # real number; <= 0 means "not sent"
    COUNT = "count"  # whole number >= 1
    INTEGER = "integer"  # any whole number
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
    DATE = "date"  # m/d/Y
    CERTIFICATE = "certificate"  # https URL of a consent certificate, on its certifier's host
    CONSENT_TOKEN = "consent_token"  # noqa: S105 (an opaque consent ID, not a secret)


class Need(StrEnum):
    """Whether a mode requires a field."""

    YES = "yes"
    NO = "no"
    DYNAMIC_PRICING = "only if the vendor is on dynamic pricing"


@dataclass(frozen=True, slots=True)
class Field:
    """One row of the specification's field table."""

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

    def required(self, mode: str) -> Need:
        """What `mode` (ping, post or full) asks of this field; full = ping + post but Lead_ID."""
        if mode == "ping":
            return self.ping
        if mode == "post":
            return Need.YES if self.post else Need.NO
        if self.name == LEAD_ID:
            return Need.NO
        if self.post:
            return Need.YES
        return self.ping


LEAD_ID = "Lead_ID"
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

YES_NO = ("Yes", "No")
PRODUCTS = (
    "Bathroom Remodel",
    "Cabinet Refacing",
    "Decks",
    "Fences",
    "Flooring",
    "Garage Doors",
    "Gutters",
    "Home Insulation",
    "In Ground Swimming Pools",
    "Kitchen Remodel",
    "Painting - Interior",
    "Painting - Exterior",
    "Sunrooms",
    "Tex-Cote",
    "Landscaping",
    "Additions",
    "Patio Covers",
    "Pest Control",
    "Solar Electric",
    "Solar Thermal",
    "Roofing - Asphalt Shingle",
    "Roofing - Composite",
    "Roofing - Metal",
    "Roofing - Tile",
    "HVAC - New A/C",
    "HVAC - New Furnace",
    "HVAC - New Heat Pump",
    "Siding - Vinyl",
    "Siding - Wood",
    "Siding - Fiber Cement",
    "Replacement Windows - 1 or 2",
    "Replacement Windows - 3 to 5",
    "Replacement Windows - 6 to 9",
    "Replacement Windows - 10+",
    "Basement Remodel",
    "Flooring - Carpet",
    "Flooring - Hardwood",
    "Flooring - Laminate",
    "Flooring - Tile",
    "Flooring - Linoleum",
    "Countertops",
    "Home Security",
    "Plumbing",
    "Electrical",
    "Fences - Wood",
    "Fences - Vinyl",
    "HVAC - A/C Repair",
    "HVAC - Heater Repair",
    "Painting - Interior 1 or 2 Rooms",
    "Painting - Interior 3 or 4 Rooms",
    "Painting - Interior 5 + Rooms",
    "Roof Repair - Metal",
    "Roof Repair - Tile or Shingle",
    "Window - Repair",
    "Window Glass - Repair",
    "Cable and Satellite TV",
    "Carpenters",
    "Contractors",
    "Disabled Persons",
    "Emergency",
    "Handyman",
    "Home Inspection",
    "Lawn and Garden",
    "Moving",
    "Patio, Porches and Enclosures",
    "Storage",
    "Tile and Stone",
    "Home Warranty",
    "Maids and Cleaning Services",
    "Doors",
    # The published list has a "-----" separator here (a drop-down divider, not a product).
    "Plumbing - Drain Cleaning",
    "Plumbing - Fixtures",
    "Plumbing - Gas Piping",
    "Plumbing - Contractors",
    "Plumbing - Septic System Install",
    "Plumbing - Septic System Repair",
    "Plumbing - Septic Tank Pump",
    "Plumbing - Sewer Pipe",
    "Electrical Switches, Outlets and Fixtures",
    "Electrical for Home Additional or Remodel",
    "Electrical Wiring or Panel Upgrade",
    "Pest Control - Termites",
    "Pest Control - Bugs and/or Rodents",
    "Moving - Local",
    "Moving - Long Distance",
    "Replacement Window - 1",
    "Replacement Window - 2",
    "Install Granite Countertops",
    "Install Laminate Countertops",
    "Install Marble Countertops",
    "Install Tile Countertops",
    "Interior Painting: 5-6 Rooms",
    "Interior Painting: 7-8 Rooms",
    "Interior Painting: 9+ Rooms",
    "Painting - Interior 2-3 Rooms",
    "Siding - Brick or Stone",
    "Siding - Traditional Stucco",
    "HVAC - New Boiler",
    "Home Security - Existing System",
    "Home Security - New Install",
)

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


def _text(name: str, max_len: int = 100, example: str | None = None) -> Field:
    return Field(name, N, False, Kind.TEXT, max_len, example if example is not None else name)


def _choice(name: str, values: tuple[str, ...]) -> Field:
    return Field(name, N, False, Kind.CHOICE, max(map(len, values)), values[0], values)


def _zip(name: str, ping: Need = N) -> Field:
    return Field(name, ping, False, Kind.ZIP, 5, "60610")


FIELDS: tuple[Field, ...] = (
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
    _control("TYPE", Y, True, Kind.LEAD_TYPE, LEAD_TYPE, max_len=2, values=(LEAD_TYPE,)),
    _control("Test_Lead", N, False, Kind.FLAG, "1", max_len=1),
    _control("Skip_XSL", N, False, Kind.FLAG, "1", max_len=1),
    _control("Match_With_Partner_ID", N, False, Kind.ID_LIST, "22,456", max_len=2000),
    _control("Redirect_URL", N, False, Kind.URL, "http://www.yoursite.com/", max_len=2048),
    _text("C_Extension"),
    _text("C_LocPhys"),
    _text("C_LocIntr"),
    _text("C_MatchType"),
    _text("C_Device"),
    _text("C_Ace"),
    _text("C_AdPos"),
    # The spec says Varchar(100); browsers' user agents run longer (a current Chrome's: 111).
    Field("HTTP_User_Agent", N, False, Kind.TEXT, 512, "HTTP_User_Agent", consent="user_agent"),
    _text("Is_Complete"),
    _text("Lead_Submit_Product_Type"),
    _text("Originating_Product"),
    _text("Originating_QF"),
    _text("Form_Start_Date"),
    _text("Form_Complete_Date"),
    _text("Esource_ID"),
    _text("DNS_Host_Name"),
    _text("C_Term"),
    _text("C_Source"),
    _text("C_Name"),
    _text("C_Method"),
    _text("C_Content"),
    _text("Webpage_Query_Vid"),
    _text("Template_ID"),
    _text("Version"),
    _text("Webpage_Name"),
    _text("Ad_Type_ID"),
    _text("Webpage_Query_800_Num"),
    _text("Webpage_Query_C_Channel"),
    _text("Webpage_Query_I_Code"),
    _text("Webpage_Query_Promo"),
    _text("Ad_Pxl"),
    # The spec says Varchar(30), which an IPv6 address can exceed; 45 holds every form.
    Field(
        SOURCE_ADDRESS,
        N,
        True,
        Kind.IP,
        45,
        "75.2.92.149",
        pii=True,
        consent="ip",
        note="a browser's request (with an Origin header, or asking for a page) may leave it"
        " out: the address the request came from is used",
    ),
    Field("SRC", Y, False, Kind.TEXT, 100, "test", note="assigned by the exchange"),
    Field(
        "Landing_Page",
        N,
        True,
        Kind.TEXT,
        255,
        "landing",
        note="assigned by the exchange",
        consent="landing_page",
    ),
    _text("Sub_ID", example="12"),
    _text("Pub_ID", example="12345"),
    _text("Phone_Type"),
    Field("Phone_Consent", N, False, Kind.CHOICE, 3, "Yes", YES_NO, consent="given"),
    Field("Consent_Language", N, False, Kind.TEXT, 1000, "Consent_Language", consent="language"),
    _text("Home_Service_Schedule"),
    _text("Requested_City", example="Chicago"),
    Field("Requested_State", N, False, Kind.STATE, 2, "IL"),
    _zip("Requested_Zip"),
    Field("First_Name", N, True, Kind.TEXT, 100, "John", pii=True),
    Field("Last_Name", N, True, Kind.TEXT, 100, "Doe", pii=True),
    Field("Address", N, True, Kind.TEXT, 100, "123 Main St.", pii=True),
    Field("City", N, True, Kind.TEXT, 100, "Chicago"),
    Field(
        "State",
        Y,
        False,
        Kind.STATE,
        2,
        "IL",
        note="not required on ping when a valid Zip is sent: looked up from the Zip",
    ),
    _zip("Zip", Y),
    Field("Email", N, True, Kind.EMAIL, 100, "test@nags.us", pii=True),
    Field("Home_Phone", N, True, Kind.PHONE, 10, "3125556491", pii=True),
    Field("Cell_Phone", N, False, Kind.PHONE, 10, "3125559682", pii=True),
    _choice("Best_Time_To_Contact", ("Morning", "Afternoon", "Evening")),
    Field(
        "Home_Improvement_Product",
        Y,
        False,
        Kind.CHOICE,
        max(map(len, PRODUCTS)),
        "Bathroom Remodel",
        PRODUCTS,
    ),
    _choice("Prospect_Owns_Property", YES_NO),
    _choice("Need_Financing", YES_NO),
    Field("Score", Y, False, Kind.INTEGER, 10, "12"),
    _text("Average_Electric_Bill"),
    _text("Roof_Shade", 255),
    _zip("Pickup_Zip_Code"),
    Field("Move_Date", N, False, Kind.DATE, 10, "12/23/1980"),
    _zip("Delivery_Zip_Code"),
    _choice("Time_Frame", ("Immediately", "1-6 Months", "Don't Know")),
    _choice("HVAC_Type", ("Natural gas fired", "Propane gas fired", "Oil fired", "Electric fired")),
    _choice("Bathroom_Change_Floorplan", YES_NO),
    _choice("Bathroom_Remodel_Shower_Bath", YES_NO),
    _choice("Bathroom_Remodel_Toilet", YES_NO),
    _choice("Bathroom_Remodel_Cabinets_Vanity", YES_NO),
    _choice("Bathroom_Remodel_Countertops", YES_NO),
    _choice("Bathroom_Remodel_Sinks", YES_NO),
    _choice("Bathroom_Remodel_Flooring", YES_NO),
    _choice("Handyman_Location", ("Home/Residence", "Business")),
    _choice("Project_Budget", ("$2,000 - $5,000", "$6,000 - $9,000", "$10,000+")),
    _choice("Kitchen_Update_Cabinets", YES_NO),
    _choice("Kitchen_Move_Appliances", YES_NO),
    _choice("Kitchen_Update_Countertops", YES_NO),
    _choice("Kitchen_Update_Sinks", YES_NO),
    _choice("Kitchen_Update_Flooring", YES_NO),
    _choice("Kitchen_Update_Lighting", YES_NO),
    _choice("Kitchen_Change_Floorplan", YES_NO),
    _choice(
        "Siding_Project",
        (
            "Replace existing siding",
            "Siding for new addition",
            "Siding for new home",
            "Repair sections",
        ),
    ),
    _choice("Siding_Asbestos_Removal", YES_NO),
    _choice("Siding_Floors_Above_Ground", ("One", "Two", "Three or more")),
    _choice(
        "Roofing_Main_Floor",
        (
            "Less than five hundred",
            "Five hundred to thousand",
            "Thousand sq ft to fifteen hundred",
            "Fifteen hundred to two thousand",
            "Two thousand to twenty five hundred",
            "Greater than twenty five hundred",
        ),
    ),
    _choice("Roofing_Project", ("Replace", "Install", "Repair")),
    _choice("Roofing_Steepest_Part", ("Flat", "Pitched")),
    _choice("HVAC_Need", ("Consultation", "Information", "Quotes")),
    _choice("HVAC_Financing", YES_NO),
    Field("Comments", N, False, Kind.TEXT, 255, "Comments", pii=True),
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
    # Consent evidence (TCPA). These fill the lead's consent record, and win over the spec's
    # Phone_Consent, Consent_Language and HTTP_User_Agent where both are sent.
    Field("TCPA_Consent", N, False, Kind.CHOICE, 3, "Yes", YES_NO, consent="given", spec=False),
    Field(
        "TCPA_Language",
        N,
        False,
        Kind.TEXT,
        2000,
        "By submitting I agree to be contacted by phone, including by autodialer.",
        consent="language",
        spec=False,
    ),
    Field(
        "Trusted_Form_URL",
        N,
        False,
        Kind.CERTIFICATE,
        255,
        "https://cert.trustedform.com/2a1b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
        aliases=("xxTrustedFormCertUrl",),
        note="a certificate URL, https on " + ", ".join(CERTIFIER_HOSTS),
        consent="trusted_form_url",
        spec=False,
    ),
    Field(
        "LeadiD_Token",
        N,
        False,
        Kind.CONSENT_TOKEN,
        64,
        "B5A1C3D2-7E4F-4A9B-8C6D-1E2F3A4B5C6D",
        aliases=("Universal_LeadiD",),
        consent="leadid_token",
        spec=False,
    ),
    Field(
        "User_Agent",
        N,
        False,
        Kind.TEXT,
        1000,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        consent="user_agent",
        spec=False,
    ),
)

# A required field a request may leave out when the other is sent: the State is looked up from
# the Zip.
LOOKED_UP: dict[str, str] = {"State": "Zip"}
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
ALIASES: dict[str, str] = {alias: f.name for f in FIELDS for alias in f.aliases}
CONTROL_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.control)
DATA_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if not f.control)


def describe(field: Field) -> str:
    """What a value of `field` must be, in words (the table of docs/fields.md and openapi.yaml)."""
    kinds = {
        Kind.TEXT: f"text, at most {field.max_len} characters",
        Kind.KEY: "the vendor's key (given by the exchange)",
        Kind.MONEY: "a number > 0 (0 or less: ignored)",
        Kind.COUNT: "a whole number >= 1",
        Kind.INTEGER: "a whole number",
        Kind.FLAG: "1",
        Kind.ID_LIST: "comma-delimited partner IDs",
        Kind.URL: "an http(s) URL",
        Kind.IP: "an IPv4 or IPv6 address",
        Kind.STATE: "a US state abbreviation",
        Kind.ZIP: "an existing 5-digit US ZIP code",
        Kind.EMAIL: f"an email address, at most {field.max_len} characters",
        Kind.PHONE: "a 10-digit US phone number (punctuation and a leading 1 are removed)",
        Kind.DATE: "a date, m/d/Y",
        Kind.CERTIFICATE: "an https URL",
        Kind.CONSENT_TOKEN: f"letters, digits and hyphens, at most {field.max_len} characters",
    }
    if field.values and field.kind is not Kind.LEAD_TYPE:
        text = "one of: " + ", ".join(f"`{v}`" for v in field.values)
    else:
        text = kinds.get(field.kind, ", ".join(f"`{v}`" for v in field.values))
    notes = [text, field.note] if field.note else [text]
    if field.aliases:
        notes.append("also read as " + ", ".join(f"`{a}`" for a in field.aliases))
    if not field.spec:
        notes.append("not in the specification's table")
    return "; ".join(notes)


def markdown() -> str:
    """The field table as Markdown (docs/fields.md is this, generated)."""
    need = {Need.YES: "yes", Need.NO: "", Need.DYNAMIC_PRICING: "dynamic pricing"}
    lines = [
        "# pingPostLead fields (Home Improvement, TYPE=7)",
        "",
        "Generated by `pingpost fields` from the field table in `pingpost/fields.py`; do not edit.",
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
        + " and ".join(f"`{f.name}`" for f in FIELDS if f.kind is Kind.ID_LIST)
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
    for f in FIELDS:
        post = "yes" if f.post else ""
        where = "control" if f.control else "Data"
        value = describe(f).replace("|", "\\|")
        lines.append(f"| {f.name} | {need[f.ping]} | {post} | {where} | {value} | `{f.example}` |")
    return "\n".join(lines) + "\n"
