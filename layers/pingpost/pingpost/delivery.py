"""Delivering a sale to its partner: one HTTP request, judged by the partner's success rule.

Every request carries the Idempotency-Key "<lead_id>-<partner_id>", the same on every attempt,
so a partner can ignore a repeat. Redirects are not followed, answers are read up to a cap
within the partner's timeout for the whole request, only public addresses are called (see
pingpost.outbound), and XML answers are parsed without DTDs, entities or network access.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError
from lxml import etree

from pingpost import outbound
from pingpost.bids import json_path, named
from pingpost.clock import now_ms as _now_ms
from pingpost.endpoints import Outbound
from pingpost.fields import table
from pingpost.models import Partner
from pingpost.observability import logger, metrics
from pingpost.store.deliveries import BUSY, DELIVERED, FAILED, QUEUED, STARTED
from pingpost.store.figures import Figures, Tally, partner_day
from pingpost.store.queues import Delivery
from pingpost.stores import STORES, Stores

MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "pingpost-delivery/1"
_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class Permanent(Exception):
    """A delivery that no retry can make succeed (a URL the exchange may not call)."""


class Attempt(NamedTuple):
    """What one request to a partner came to."""

    ok: bool
    detail: str  # "HTTP 200", "timeout after 5.0 s", ...


def idempotency_key(lead_id: int, partner_id: int) -> str:
    """The key a partner sees on every attempt of the same sale."""
    return f"{lead_id}-{partner_id}"


def check_url(url: str) -> None:
    """Refuse URLs the exchange may not call: anything but https, except trusted http hosts.

    Where the host resolves to is judged when the request connects (see pingpost.outbound).
    """
    problem = outbound.url_problem(url)
    if problem is not None:
        raise Permanent(f"delivery {problem}")


def lead_fields(
    partner: Partner, lead_id: int, data: Mapping[str, str], *, test: bool
) -> dict[str, str]:
    """The fields a partner receives: the lead's data, renamed and completed as it asked."""
    sent = {name: data[name] for name in table(data).data_fields if name in data}
    sent["Lead_ID"] = str(lead_id)
    if test:
        sent["Test_Lead"] = "1"
    return named(partner.delivery, sent)


def body(partner: Partner, fields: Mapping[str, str]) -> bytes:
    """The request body in the partner's format."""
    return outbound.encode(partner.delivery.format, fields)


def judge(partner: Partner, status: int, answer: bytes) -> Attempt:
    """Whether the partner's answer means it accepted the lead, by its success rule."""
    rule = partner.delivery
    if status not in rule.success_status:
        return Attempt(False, f"HTTP {status}")
    text = answer.decode("utf-8", "replace")
    if rule.success_body and not re.search(rule.success_body, text):
        return Attempt(False, f"HTTP {status}, body does not match {rule.success_body!r}")
    if rule.success_json:
        try:
            found = json_path(json.loads(text), rule.success_json)
        except ValueError:
            return Attempt(False, f"HTTP {status}, body is not JSON")
        if str(found) != rule.success_value:
            return Attempt(False, f"HTTP {status}, {rule.success_json} is {found!r}")
    if rule.success_xpath:
        try:
            root = etree.fromstring(answer, parser=_XML)
            accepted = bool(root.xpath(rule.success_xpath))
        except (etree.XMLSyntaxError, etree.XPathError):
            return Attempt(False, f"HTTP {status}, body is not XML the rule can read")
        if not accepted:
            return Attempt(False, f"HTTP {status}, {rule.success_xpath} is false")
    return Attempt(True, f"HTTP {status}")


def _headers(
    partner_id: int, rule: Outbound, lead_id: int, stores: Stores
) -> dict[str, str] | Attempt:
    """The headers of a delivery (raises Permanent for a URL it may not call), or the failed
    attempt when its secret ones are not in Parameter Store."""
    check_url(rule.url)
    secret = stores.secrets.headers(partner_id) if rule.secret_headers else {}
    missing = sorted(set(rule.secret_headers) - set(secret))
    if missing:
        return Attempt(False, f"headers {', '.join(missing)} not found in Parameter Store")
    return {
        "Content-Type": outbound.CONTENT_TYPES[rule.format],
        "User-Agent": USER_AGENT,
        **rule.headers,
        **secret,
        "Idempotency-Key": idempotency_key(lead_id, partner_id),
    }


def send(
    partner: Partner,
    lead_id: int,
    data: Mapping[str, str],
    *,
    test: bool,
    stores: Stores = STORES,
) -> Attempt:
    """POST (or PUT) the lead to the partner once and judge the answer; raises Permanent."""
    rule = partner.delivery
    headers = _headers(partner.id, rule, lead_id, stores)
    if isinstance(headers, Attempt):
        return headers
    try:
        payload = body(partner, lead_fields(partner, lead_id, data, test=test))
    except (ValueError, TypeError) as error:
        # A field name the format cannot carry, say: no retry can send it.
        raise Permanent(f"the lead could not be written as {rule.format}: {error}") from None
    try:
        status, answer = outbound.call(
            rule.method, rule.url, payload, headers, rule.timeout, MAX_ANSWER_BYTES
        )
    except outbound.Refused as refused:
        raise Permanent(f"delivery URL refused: {refused}") from None
    except outbound.Failed as failed:
        return Attempt(False, str(failed))
    if len(answer) > MAX_ANSWER_BYTES:
        return Attempt(False, f"HTTP {status}, answer over {MAX_ANSWER_BYTES} bytes")
    if 300 <= status < 400:
        return Attempt(False, f"HTTP {status}: redirects are not followed")
    return judge(partner, status, answer)


class Undelivered(Exception):
    """This attempt did not deliver the sale; its message goes back to the queue to retry."""


def deliver(message: Delivery, stores: Stores = STORES) -> str:
    """Deliver one sale unless it is delivered, parked or being sent; returns what happened."""
    lead = stores.leads.get(message.lead_id)
    partner = stores.partners.by_id(message.partner_id)
    now = _now_ms()
    if lead is None or partner is None:
        # Nothing can ever deliver it: say so in the log and let the message go.
        logger.error("delivery of an unknown lead or partner", extra=message._asdict())
        return "unknown lead or partner"
    # The lease outlives one attempt (timeout plus slack), so a live sender is never doubled.
    lease_ms = int((partner.delivery.timeout + 10) * 1000)
    taken = stores.deliveries.begin(message.lead_id, message.partner_id, now, lease_ms)
    if taken == BUSY:
        raise Undelivered("another worker is sending it")
    if taken != STARTED:
        return taken
    try:
        attempt = send(partner, lead.lead_id, lead.data, test=lead.test, stores=stores)
    except Permanent as error:
        # This worker holds the lease: it parks the sale itself.
        parked = _tallies(lead.test, partner.id, Figures(parked=1))
        _settle(stores, lead.lead_id, partner.id, FAILED, str(error), parked)
        metrics.add_metric(name="DeliveryParked", unit=MetricUnit.Count, value=1)
        return "parked"
    except Exception as error:
        # A defect of this code, not the partner's: the sale is queued again, never left
        # "sending", and the log says what broke.
        logger.exception("delivery attempt broke")
        attempt = Attempt(False, f"error: {type(error).__name__}")
    if attempt.ok:
        _settle(stores, lead.lead_id, partner.id, DELIVERED, attempt.detail)
        metrics.add_metric(name="Delivered", unit=MetricUnit.Count, value=1)
        return DELIVERED
    failed = _tallies(lead.test, partner.id, Figures(failed=1))
    _settle(stores, lead.lead_id, partner.id, QUEUED, attempt.detail, failed)
    metrics.add_metric(name="DeliveryAttemptFailed", unit=MetricUnit.Count, value=1)
    raise Undelivered(attempt.detail)


_SETTLE_ATTEMPTS = 5


def _tallies(test: bool, partner_id: int, counted: Figures) -> list[Tally]:
    """What a delivery's outcome adds to its partner's day (nothing for a test lead's)."""
    return [] if test else [partner_day(partner_id, datetime.now(UTC), counted)]


def _settle(
    stores: Stores,
    lead_id: int,
    partner_id: int,
    outcome: str,
    detail: str,
    tallies: Sequence[Tally] = (),
) -> None:
    """Record an attempt's outcome, retried until it lands: the message is acknowledged only
    after it, so a lost write cannot make a delivered sale look undelivered (and be sent again)
    unless DynamoDB stays unreachable through every retry. The tallies are counted with the
    write that lands; a retry after one whose answer was lost finds the outcome recorded (no
    longer `sending`) and counts nothing again."""
    for attempt in range(_SETTLE_ATTEMPTS):
        try:
            stores.deliveries.settle(lead_id, partner_id, outcome, detail, _now_ms(), tallies)
            return
        except (ClientError, BotoCoreError):
            if attempt == _SETTLE_ATTEMPTS - 1:
                raise
            logger.warning("delivery status not recorded; retrying", extra={"try": attempt + 1})
            time.sleep(0.1 * 2**attempt)
