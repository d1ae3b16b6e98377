"""Another pingPostLead exchange as a buyer that bids, by settings alone: this exchange (in this
process, on the embedded AWS endpoint) pings `pingpost serve` (another process, the demo seed)
for its price, and posts it the lead with the lead ID it answered."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import Server, clear_partners
from tests.leads import DYNAMIC_KEY, complete

pytestmark = pytest.mark.e2e

VENDOR_KEY = "exchange-buyer-vendor-key-0123456789"


def exchange_buyer(url: str) -> dict[str, Any]:
    """A partner whose bid is the other exchange's ping and whose post is its post."""
    api = {"API_Action": "pingPostLead", "TYPE": "7", "Key": DYNAMIC_KEY, "Skip_XSL": "1"}
    read = {"accepted": "/response/status", "reason": "/response/error"}
    return {
        "id": 1201,
        "company": "Another exchange",
        "price": 1,
        "filters": {"products": ["Gutters"]},
        "bid": {
            "url": url + "/api.php",
            "format": "form",
            "timeout": 5,
            "static": api | {"Mode": "ping", "Return_Best_Price": "1", "Allowed_Times_Sold": "1"},
            "answer": read | {"price": "/response/price", "token": "/response/lead_id"},
            "accepted_values": ["Matched"],
        },
        "post": {
            "url": url + "/api.php",
            "format": "form",
            "timeout": 10,
            "static": api | {"Mode": "post"},
            "answer": read,
            "accepted_values": ["Matched"],
            "token_field": "Lead_ID",
        },
    }


def test_another_exchange_bids_and_buys_by_settings_alone(server: Server, aws: str) -> None:
    from pingpost import exchange
    from pingpost.decoding import Request
    from pingpost.store import leads, vendors
    from pingpost_local import seed

    assert os.environ["DELIVERY_HTTP_HOSTS"]  # the other exchange listens on loopback
    clear_partners()
    vendor = {"id": "exchange-buyer", "key": VENDOR_KEY, "cost": 5, "bid_timeout": 5}
    seed.apply(
        seed.Seed.model_validate({"vendors": [vendor], "partners": [exchange_buyer(server.url)]})
    )
    vendors._cache.clear()
    try:
        fields = complete("full", Key=VENDOR_KEY, Home_Improvement_Product="Gutters")
        answer = exchange.submit(Request(fields))
        assert answer.status == "Matched"
        lead = leads.get(answer.lead_id)
        assert lead is not None
        bid = lead.bids["1201"]
        # The other exchange's best price for Gutters: its partner's 18, less its margin of 2.50
        assert (bid["outcome"], Decimal(bid["price"])) == ("bid", Decimal("15.50"))
        assert lead.sold_to == {"1201": Decimal("15.50")}
        assert lead.deliveries["1201"]["state"] == "delivered"
        # ... and there, the lead it pinged is posted with the whole lead, and sold
        shown = server.pingpost("lead", "show", str(bid["token"]), "--pii")
        assert shown.returncode == 0, shown.stderr
        assert "status sold" in shown.stdout
        assert lead.data["Email"] in shown.stdout
    finally:
        clear_partners()


def test_the_demo_has_an_auction_to_show(server: Server) -> None:
    # `pingpost serve` runs two demo buyers that bid, and the demo seed buys Solar Electric
    # from them (README, the tour): lead show lists their bids and the post to the winner.
    import re

    from tests.e2e.test_http import form

    sold = []
    for _ in range(5):
        fields = complete("full", Home_Improvement_Product="Solar Electric", Skip_XSL="1")
        answer = form(server, "/full", fields)
        assert answer.status == 200, answer.body
        lead_id = answer["lead_id"]
        shown = server.pingpost("lead", "show", lead_id)
        assert shown.returncode == 0, shown.stderr
        bids = shown.stdout.split("Bids (every buyer asked, best first)\n", 1)[1]
        assert re.search(r"partner 4401\s+Sun Bids\s+(bid \d+\.\d\d|no bid)", bids), bids
        assert re.search(r"partner 4402\s+Panel Pros\s+bid \d+\.\d\d", bids), bids
        sold += re.findall(r"sold to partner (\d+) at", shown.stdout)
    assert {"4401", "4402"} & set(sold), sold
