"""The auction of a lead: every buyer that bids and may buy it is asked its price at once.

Each buyer gets the partial lead (`bids.bid_fields`: no personal data) at its `bid` endpoint,
under the same outbound rules as deliveries (public addresses unless trusted, the whole
request bounded by its deadline, the answer capped in size, XML without entities), every
buyer from one thread (`pingpost.fanout`). The whole
auction takes at most the vendor's `bid_timeout`: a buyer that has not answered by then has
no bid ("timed out"), whatever its own timeout. A bid is taken when it is at least the buyer's
floor (its `price`) and the lead's cost; bids and fixed prices then rank together by price,
then priority, equals in matching's order (in which equal partners take turns).

What each buyer answered is recorded with the lead (`Lead.bids`), and a post sells by those
bids: it never asks again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from decimal import Decimal
from typing import Any

from pingpost.answers import money
from pingpost.matching import Outcome, exact_tier
from pingpost.models import Partner
from pingpost.observability import logger
from pingpost.reasons import BAD_ANSWER, BID, NO_BID
from pingpost.store import figures
from pingpost.stores import STORES, Stores

MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "pingpost-bid/1"
# What a bid record says of a buyer asked, besides bids' outcomes (bid, no bid, bad answer).
TIMED_OUT, FAILED, NOT_ASKED = "timed out", "failed", "not asked"
# A lead asks at most this many buyers, the best floors first; the others are recorded as not
# asked, which also bounds what the lead's item keeps of them.
MOST_BUYERS = 64
# Threads that read buyers' secret bid headers (SSM) at once, when a container's copy is old.
_SECRETS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="bid-headers")


def _request(
    partner: Partner, data: Mapping[str, str], test: bool, seconds: float, secret: Any
) -> Any:
    """The bid request to the buyer (a `fanout.Request`), or the record of why none is sent;
    `secret`: its secret headers, or why they could not be read."""
    from pingpost import bids, fanout, outbound  # loaded by `ask`

    endpoint = partner.bid
    assert endpoint is not None
    problem = outbound.url_problem(endpoint.url)
    if problem is not None:
        return {"outcome": FAILED, "reason": f"bid {problem}"}
    if isinstance(secret, str):
        return {"outcome": FAILED, "reason": secret}
    missing = sorted(set(endpoint.secret_headers) - set(secret))
    if missing:
        return {"outcome": FAILED, "reason": f"headers {', '.join(missing)} not found"}
    headers = {
        "Content-Type": outbound.CONTENT_TYPES[endpoint.format],
        "User-Agent": USER_AGENT,
        **endpoint.headers,
        **secret,
    }
    try:
        body = outbound.encode(endpoint.format, bids.bid_fields(partner, data, test=test))
    except (ValueError, TypeError) as error:
        return {"outcome": FAILED, "reason": f"the lead could not be written: {error}"}
    wait = min(seconds, endpoint.timeout)
    return fanout.Request(endpoint.method, endpoint.url, body, headers, wait, MAX_ANSWER_BYTES)


def _record(partner: Partner, answer: Any) -> dict[str, Any]:
    """What the lead keeps of a buyer's answer (a `fanout.Answer`)."""
    from pingpost import bids  # loaded by `ask`

    said: dict[str, Any] = {"ms": answer.ms}
    if answer.refused:
        return said | {"outcome": FAILED, "reason": f"bid URL refused: {answer.refused}"}
    if answer.failed:
        return said | {
            "outcome": TIMED_OUT if answer.timed_out else FAILED,
            "reason": answer.failed,
        }
    if len(answer.body) > MAX_ANSWER_BYTES:
        reason = f"answer over {MAX_ANSWER_BYTES} bytes"
        return said | {"outcome": BAD_ANSWER, "reason": reason}
    if 300 <= answer.status < 400:
        reason = f"HTTP {answer.status}: redirects are not followed"
        return said | {"outcome": NO_BID, "reason": reason}
    offer = bids.offer(partner, answer.status, answer.body, answer.content_type)
    said |= {"outcome": offer.outcome, "reason": offer.reason}
    if offer.outcome == BID:
        said |= {"price": offer.price, "token": offer.token, "carried": offer.carried}
    return said


def _prepared(
    bidders: Sequence[Partner],
    data: Mapping[str, str],
    test: bool,
    ends: float,
    stores: Stores,
) -> dict[int, Any]:
    """Each buyer's request (or why there is none). Secret headers are read on threads of their
    own, at once, for at most half the auction's time (a buyer whose read has not ended by
    then is not asked: the others keep time to answer)."""
    reading = {
        p.id: _SECRETS.submit(stores.secrets.headers, p.id, "bid")
        for p in bidders
        if p.bid is not None and p.bid.secret_headers
    }
    if reading:
        wait(reading.values(), timeout=max(0.0, ends - time.monotonic()) / 2)
    out: dict[int, Any] = {}
    for partner in bidders:
        left = ends - time.monotonic()
        secret = _secret(reading.get(partner.id))
        if left <= 0.001 or secret is None:
            out[partner.id] = {"outcome": NOT_ASKED, "reason": "no time left"}
            continue
        try:
            out[partner.id] = _request(partner, data, test, left, secret)
        except Exception as error:  # a defect here must not fail the lead's other buyers
            logger.exception("bid request broke", extra={"partner_id": partner.id})
            out[partner.id] = {"outcome": FAILED, "reason": f"error: {type(error).__name__}"}
    return out


def _secret(reading: Future[dict[str, str]] | None) -> dict[str, str] | str | None:
    """A buyer's secret headers ({} without any), None while they are still being read, or why
    they could not be."""
    if reading is None:
        return {}
    if not reading.done():
        return None
    failed = reading.exception()
    if failed is not None:
        return f"headers could not be read: {type(failed).__name__}"
    return reading.result()


def ask(
    partners: Sequence[Partner],
    data: Mapping[str, str],
    *,
    test: bool,
    seconds: float,
    stores: Stores = STORES,
) -> dict[str, dict[str, Any]]:
    """Ask every partner of `partners` that bids (at most MOST_BUYERS, in their order), at once
    and within `seconds` in all; what each answered, by partner ID (as the lead stores it)."""
    bidders = [p for p in partners if p.bids]
    if not bidders:
        return {}
    # Only a lead with buyers to ask pays for the HTTP client and for reading bids, and before
    # the auction's clock.
    from pingpost import bids, fanout  # noqa: F401 (bids: for `_request` and `_record`)

    begun = time.monotonic()
    ends = begun + seconds
    by_id = {p.id: p for p in bidders[:MOST_BUYERS]}
    prepared = _prepared(list(by_id.values()), data, test, ends, stores)
    requests = {pid: r for pid, r in prepared.items() if isinstance(r, fanout.Request)}
    try:
        answers = fanout.send_all(requests, max(0.0, ends - time.monotonic())) if requests else {}
    except Exception as error:  # a defect of the client: the lead is still answered
        logger.exception("bid requests broke")
        failed = fanout.Answer(failed=f"error: {type(error).__name__}")
        answers = dict.fromkeys(requests, failed)
    records: dict[str, dict[str, Any]] = {}
    for partner_id, prepared_as in prepared.items():
        if partner_id in answers:
            record = _record(by_id[partner_id], answers[partner_id])
        else:
            record = dict(prepared_as) | {"ms": round((time.monotonic() - begun) * 1000)}
            if record["outcome"] != NOT_ASKED:
                record["unsent"] = True  # (a failure before any request: not counted asked)
        records[str(partner_id)] = record
    for partner in bidders[MOST_BUYERS:]:
        reason = f"over {MOST_BUYERS} buyers for one lead"
        records[str(partner.id)] = {"outcome": NOT_ASKED, "reason": reason, "ms": 0}
    return records


def _verdict(
    partner: Partner, record: Mapping[str, Any] | None, cost: Decimal, missing: str
) -> str | None:
    """Why a bidding partner does not rank on its bid, or None when its bid is taken."""
    if record is None:
        return missing
    if record["outcome"] != BID:
        reason = record.get("reason") or ""
        return f"{record['outcome']}" + (f": {reason}" if reason else "")
    price = Decimal(record["price"])
    if price < partner.price:
        return f"bid {money(price)} below its floor {money(partner.price)}"
    if price < cost:
        return f"bid {money(price)} below the lead's cost {money(cost)}"
    return None


def tally(asked: Mapping[str, Mapping[str, Any]]) -> dict[str, Decimal]:
    """What an auction counts of each buyer it sent a request (`figures.Figures.bids`; not
    those it had no time for or could not write one to): asked, and its bid's step or a
    timeout."""
    out: dict[str, Decimal] = {}
    one = Decimal(1)
    for partner_id, record in asked.items():
        outcome = record["outcome"]
        if outcome == NOT_ASKED or record.get("unsent"):
            continue
        out[figures.bid_key(partner_id, figures.ASKED)] = one
        if outcome == TIMED_OUT:
            out[figures.bid_key(partner_id, figures.TIMEOUTS)] = one
        if outcome == BID and record.get("price") is not None:
            step = figures.bid_step(Decimal(record["price"]))
            out[figures.bid_key(partner_id, f"{figures.STEP}{step}")] = one
    return out


def tallies(vendor_id: str, now: datetime, asked: Mapping[str, Any]) -> list[figures.Tally]:
    """The day items an auction's figures are added to, if it sent any request (none for a test
    lead: the caller leaves it out)."""
    return figures.bids_days(vendor_id, now, tally(asked))


def priced(
    outcome: Outcome,
    asked: Mapping[str, Mapping[str, Any]],
    cost: Decimal,
    missing: str | None = None,
) -> Outcome:
    """The matching outcome with the bids taken: each partner that bids ranks at its bid, or not
    at all, saying why (`missing`: why, for one `asked` has no record of); then all rank by
    price and priority, equals in matching's order."""
    if not any(p.bids for p in outcome.ranked):
        return outcome
    ranked: list[Partner] = []
    refused: dict[int, str] = {}
    for partner in outcome.ranked:
        if not partner.bids:
            ranked.append(partner)
            continue
        record = asked.get(str(partner.id))
        why = _verdict(partner, record, cost, missing or "not asked (no bid)")
        if why is None:
            assert record is not None
            ranked.append(partner.model_copy(update={"price": Decimal(record["price"])}))
        else:
            refused[partner.id] = why
    ranked.sort(key=exact_tier)  # stable: equals keep matching's turns
    decisions = tuple(
        d._replace(reason=refused[d.partner_id]) if d.partner_id in refused else d
        for d in outcome.decisions
    )
    return Outcome(tuple(ranked), decisions)


def post(
    partner: Partner,
    lead_id: int,
    data: Mapping[str, str],
    won: Mapping[str, Any],
    *,
    test: bool,
    seconds: float,
    stores: Stores = STORES,
) -> str | None:
    """Post the whole lead to a buyer that won it by its bid (`won`: the lead's record of the
    bid), with its token and the values its bid answered, within `seconds` (and its post's own
    timeout); None when the buyer accepted, else why not (rejected, timed out, failed)."""
    from pingpost import bids, outbound

    endpoint = partner.post
    assert endpoint is not None
    problem = outbound.url_problem(endpoint.url)
    if problem is not None:
        return f"post {problem}"
    secret = stores.secrets.headers(partner.id, "post") if endpoint.secret_headers else {}
    missing = sorted(set(endpoint.secret_headers) - set(secret))
    if missing:
        return f"headers {', '.join(missing)} not found"
    headers = {
        "Content-Type": outbound.CONTENT_TYPES[endpoint.format],
        "User-Agent": USER_AGENT,
        **endpoint.headers,
        **secret,
        "Idempotency-Key": f"{lead_id}-{partner.id}",
    }
    try:
        fields = bids.post_fields(partner, lead_id, data, bids.Offer.of(won), test=test)
        status, answer, kind = outbound.fetch(
            endpoint.method,
            endpoint.url,
            outbound.encode(endpoint.format, fields),
            headers,
            min(seconds, endpoint.timeout),
            MAX_ANSWER_BYTES,
            shared=True,
        )
    except (ValueError, TypeError) as error:
        return f"the lead could not be written: {error}"
    except outbound.Refused as refused:
        return f"post URL refused: {refused}"
    except outbound.Failed as failed:
        return str(failed)
    if len(answer) > MAX_ANSWER_BYTES:
        return f"{BAD_ANSWER}: answer over {MAX_ANSWER_BYTES} bytes"
    return bids.accepted(partner, status, answer, kind)
