"""A client of the pingPostLead API: ping, post and full, with typed answers and typed errors.

It imports only the standard library, requests and lxml (never the pingpost layer), so a
publisher may copy this one file into its own code or depend on it alone.

    with Client("http://127.0.0.1:3000", "demo-key-0123456789abcdef") as client:
        pinged = client.ping(Zip="60610", Home_Improvement_Product="Roofing - Metal", ...)
        sold = client.post(pinged.lead_id, First_Name="John", ...)

Only 429 and 503 are retried (the exchange stored nothing), with backoff and jitter, honouring
Retry-After, within `max_wait` seconds of waiting in all. Every attempt of one call carries the
same Idempotency-Key header, which the exchange uses to answer a repeated `full` as the first
(never selling twice); a post is named by its Lead_ID, and a repeat gets the first answer.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlencode

import requests
from lxml import etree

Encoding = Literal["form", "xml", "json"]
ENCODINGS: tuple[Encoding, ...] = ("form", "xml", "json")
# Each encoding goes to the door publishers of the hosted platform send it to.
PATHS: dict[Encoding, str] = {"form": "/api.php", "xml": "/apiXML.php", "json": "/apiJSON.php"}
# The specification's top-level tags of the XML <Request>; every other field goes in <Data>.
CONTROL_FIELDS = frozenset(
    {
        "Key", "API_Action", "Mode", "Cost", "Lead_ID", "Allowed_Times_Sold", "Return_Hash_Type",
        "Return_Hash_Value_Type", "Skip_Partner_ID", "Return_Best_Price", "TYPE", "Test_Lead",
        "Skip_XSL", "Match_With_Partner_ID", "Redirect_URL", "Format",
    }
)  # fmt: skip
# Fields the client sends itself: a caller giving one would contradict it.
OWN_FIELDS = ("Key", "API_Action", "Mode", "TYPE", "Lead_ID")
ANSWERED = ("Matched", "Unmatched", "Success")  # Success: a vendor whose answers say only that
MAX_ANSWER_BYTES = 1 << 20  # the exchange's answers are a few hundred bytes
RETRIED = frozenset({429, 503})
# No DTD, no entities, no network: an answer is data, never instructions to the parser.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_pis=True
)


@dataclass(frozen=True)
class Hash:
    """A partner's hashed value, as a ping answers it (Return_Hash_Type/Return_Hash_Value_Type)."""

    value_type: str
    hash_type: str
    value: str


@dataclass(frozen=True)
class Result:
    """A Matched, Unmatched (or Success) answer, with what the request asked for."""

    status: str
    lead_id: int
    price: Decimal | None = None
    matches: int | None = None
    hashes: tuple[Hash, ...] = ()
    answer: str = ""  # the answer as the exchange sent it

    @property
    def matched(self) -> bool:
        """Whether a buyer was found (or, for a success-style vendor, the lead accepted)."""
        return self.status != "Unmatched"


class PingPostError(Exception):
    """Any reason a call got no Matched or Unmatched answer."""


class Refused(PingPostError):
    """The exchange answered with an error: a field (named in `message`), the Key, the lead."""

    def __init__(self, status: int, message: str, answer: str = "") -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.answer = answer


class AuthenticationFailed(Refused):
    """The Key was refused: unknown (401) or its vendor disabled (403)."""


class RetriesExhausted(PingPostError):
    """Still 429 or 503 after the retries (or past the waiting budget): nothing was stored."""

    def __init__(self, status: int, attempts: int, message: str) -> None:
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        super().__init__(f"HTTP {status} after {tries}: {message}")
        self.status = status
        self.attempts = attempts
        self.message = message


class RateLimited(RetriesExhausted):
    """The vendor's requests a second are over its limit (429)."""


class Unavailable(RetriesExhausted):
    """The exchange could not store the lead right now (503)."""


class TransportError(PingPostError):
    """No answer (connection, timeout): the request may have been received; not retried."""


class UnreadableAnswer(PingPostError):
    """An answer that is not the API's XML or JSON (a proxy's page, a wrong URL, too large)."""

    def __init__(self, status: int, reason: str, answer: str = "") -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.answer = answer


def xml_body(fields: Mapping[str, str]) -> bytes:
    """The specification's XML <Request>: control tags at the top, the lead in <Data>."""
    request = etree.Element("Request")
    data = etree.Element("Data")
    for name, value in fields.items():
        etree.SubElement(request if name in CONTROL_FIELDS else data, name).text = value
    request.append(data)
    return bytes(etree.tostring(request, xml_declaration=True, encoding="UTF-8"))


def encoded(encoding: Encoding, fields: Mapping[str, str]) -> tuple[bytes, str]:
    """A request body and its Content-Type; JSON asks for a JSON answer (Format=JSON)."""
    if encoding == "xml":
        return xml_body(fields), "application/xml; charset=UTF-8"
    if encoding == "json":
        document = {"Request": {"Format": "JSON", **fields}}
        return json.dumps(document).encode(), "application/json"
    return urlencode(fields).encode(), "application/x-www-form-urlencoded"


def _text(node: etree._Element) -> str:
    return "".join(str(part) for part in node.itertext())


def _xml_answer(body: bytes) -> dict[str, object]:
    """The elements of <response> (hashes as a list of dicts), read without DTD or entities."""
    root = etree.fromstring(body, parser=_PARSER)
    info: Any = root.getroottree().docinfo  # its DTD attributes are not in the stubs
    if info.doctype or info.internalDTD is not None:
        raise ValueError("a DOCTYPE")
    if root.tag != "response":
        raise ValueError(f"<{root.tag}> is not <response>")
    answer: dict[str, object] = {}
    for node in root:
        if not isinstance(node.tag, str):
            continue
        if node.tag == "hashes":
            answer["hashes"] = [
                {"ValueType": h.get("ValueType"), "HashType": h.get("HashType"), "value": _text(h)}
                for h in node
                if isinstance(h.tag, str)
            ]
        else:
            answer[node.tag] = _text(node)
    return answer


def _json_answer(body: bytes) -> dict[str, object]:
    document = json.loads(body)
    if not isinstance(document, dict) or not isinstance(document.get("response"), dict):
        raise ValueError('no "response" object')
    return dict(document["response"])


def parsed(body: bytes) -> dict[str, object]:
    """An answer's elements, as XML or JSON by its first character (its label may be wrong)."""
    start = body.lstrip()[:1]
    return _json_answer(body) if start == b"{" else _xml_answer(body)


def _hashes(items: object) -> tuple[Hash, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(
        Hash(str(i.get("ValueType", "")), str(i.get("HashType", "")), str(i.get("value", "")))
        for i in items
        if isinstance(i, dict)
    )


def _number[T](kind: type[T], answer: Mapping[str, object], name: str) -> T | None:
    value = answer.get(name)
    if value is None or value == "":
        return None
    try:
        return kind(str(value))  # type: ignore[call-arg]  # int and Decimal take a string
    except (ValueError, InvalidOperation):
        raise ValueError(f"{name} {value!r} is not a number") from None


def outcome(status: int, body: bytes) -> Result:
    """The Result of an answer, or the error it says (Refused, AuthenticationFailed...)."""
    shown = body.decode("utf-8", "replace")
    try:
        answer = parsed(body)
    except (ValueError, etree.XMLSyntaxError) as error:
        raise UnreadableAnswer(status, f"not the API's XML or JSON ({error})", shown) from None
    said = answer.get("status")
    if said == "Error" or status >= 400:
        message = str(answer.get("error") or f"HTTP {status}")
        # A vendor with http_errors false is told its errors with 200: the body decides.
        refused = AuthenticationFailed if status in (401, 403) else Refused
        raise refused(status, message, shown)
    if said not in ANSWERED:
        raise UnreadableAnswer(status, f"status {said!r} is not one the API answers", shown)
    try:
        lead_id = _number(int, answer, "lead_id")
        if lead_id is None:
            raise ValueError("no lead_id")
        price = _number(Decimal, answer, "price")
        matches = _number(int, answer, "matches")
    except ValueError as error:
        raise UnreadableAnswer(status, str(error), shown) from None
    return Result(str(said), lead_id, price, matches, _hashes(answer.get("hashes")), shown)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_wait(attempt: int, backoff: float, told: float | None) -> float:
    """How long to wait before attempt `attempt + 1`: what Retry-After says, else exponential
    backoff with jitter (half fixed, half random), so that many clients do not retry at once."""
    if told is not None:
        return told
    ceiling = backoff * 2.0 ** (attempt - 1)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _error_message(body: bytes) -> str:
    try:
        return str(parsed(body).get("error") or "")
    except (ValueError, etree.XMLSyntaxError):
        return body[:200].decode("utf-8", "replace")


class Client:
    """Calls to one exchange with one vendor Key.

    `url` is the exchange's base URL (the stack's ApiUrl, or `http://127.0.0.1:3000`).
    `timeout` bounds the connection and each read of the answer (requests' meaning);
    `retries` is how many times a 429 or 503 is retried, waiting at most `max_wait` seconds
    in all. A `session` of your own (proxies, certificates) is used and left open.
    """

    def __init__(
        self,
        url: str,
        key: str,
        encoding: Encoding = "form",
        timeout: float = 30.0,
        retries: int = 3,
        session: requests.Session | None = None,
        *,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        lead_type: str = "7",
    ) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}")
        self.url = url.rstrip("/")
        self.key = key
        self.encoding: Encoding = encoding
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.lead_type = lead_type  # the TYPE of every lead it sends (7: Home Improvement)
        self._own_session = session is None
        self.session = session or requests.Session()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the session the client made (one given to it stays open)."""
        if self._own_session:
            self.session.close()

    def ping(self, /, *, idempotency_key: str | None = None, **fields: object) -> Result:
        """Ask whether a partial lead can be sold; its lead_id is what `post` needs."""
        return self.call("ping", fields, idempotency_key)

    def post(
        self, lead_id: int, /, *, idempotency_key: str | None = None, **fields: object
    ) -> Result:
        """Sell a pinged lead with the rest of its fields (a repeat gets the first answer)."""
        return self.call("post", fields, idempotency_key, lead_id)

    def full(self, /, *, idempotency_key: str | None = None, **fields: object) -> Result:
        """Ping and post in one request; with the same `idempotency_key`, a repeat within the
        exchange's window (10 minutes by default) is answered as the first, not sold again."""
        return self.call("full", fields, idempotency_key)

    def call(
        self,
        mode: str,
        fields: Mapping[str, object],
        idempotency_key: str | None = None,
        lead_id: int | None = None,
    ) -> Result:
        """One logical request: its attempts share one Idempotency-Key (a new one if None)."""
        clash = sorted(set(OWN_FIELDS) & set(fields))
        if clash:
            raise ValueError(f"the client sends {', '.join(clash)} itself")
        own = {"Key": self.key, "API_Action": "pingPostLead", "Mode": mode, "TYPE": self.lead_type}
        if lead_id is not None:
            own["Lead_ID"] = str(lead_id)
        sent = own | {name: str(value) for name, value in fields.items() if value is not None}
        body, content_type = encoded(self.encoding, sent)
        headers = {
            "Content-Type": content_type,
            "Accept": "application/json" if self.encoding == "json" else "application/xml",
            "Idempotency-Key": idempotency_key or uuid.uuid4().hex,
        }
        return self._attempts(self.url + PATHS[self.encoding], body, headers)

    def _attempts(self, url: str, body: bytes, headers: dict[str, str]) -> Result:
        waited = 0.0
        attempt = 1
        while True:
            status, told, answer = self._attempt(url, body, headers)
            if status not in RETRIED:
                return outcome(status, answer)
            wait = backoff_wait(attempt, self.backoff, retry_after(told))
            if attempt > self.retries or waited + wait > self.max_wait:
                exhausted = RateLimited if status == 429 else Unavailable
                raise exhausted(status, attempt, _error_message(answer))
            time.sleep(wait)
            waited += wait
            attempt += 1

    def _attempt(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        """One HTTP request: its status, its Retry-After and its body (at most the bound)."""
        try:
            with self.session.post(
                url,
                data=body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        raise UnreadableAnswer(
                            response.status_code, f"answer over {MAX_ANSWER_BYTES} bytes"
                        )
                    chunks.append(chunk)
                return (
                    response.status_code,
                    response.headers.get("Retry-After", ""),
                    b"".join(chunks),
                )
        except requests.RequestException as error:
            raise TransportError(f"no answer from {url}: {error}") from error
