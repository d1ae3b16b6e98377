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
