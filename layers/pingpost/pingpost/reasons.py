"""Why a partner may not buy a lead: the reasons matching and sales give, as leads record them,
and what a buyer that bids answered.

`pingpost.matching` says in which order its rules are tried; the caps come last.
"""

from __future__ import annotations

from typing import Final

INACTIVE: Final = "inactive"
TEST_PARTNER: Final = "test partner"
NOT_TEST_PARTNER: Final = "not a test partner (Test_Lead)"
SKIPPED: Final = "skipped (Skip_Partner_ID)"
NOT_LISTED: Final = "not listed (Match_With_Partner_ID)"
LEAD_TYPE_REASON: Final = "lead type"
STATE: Final = "state"
ZIP: Final = "zip"
PRODUCT: Final = "product"
SCORE: Final = "score below minimum"
SRC_DENIED: Final = "SRC denied"
SRC_NOT_ALLOWED: Final = "SRC not allowed"
NO_CONSENT: Final = "no consent (requires_consent)"
CLOSED: Final = "schedule closed"
PRICE: Final = "price below cost"
ALREADY_SOLD: Final = "already sold by the vendor (Matches)"
NOT_SELECTED: Final = "not selected (Match_With_Partner_Hashes)"
DAILY_CAP: Final = "daily cap"
WEEKLY_CAP: Final = "weekly cap"
MONTHLY_CAP: Final = "monthly cap"
DAILY_BUDGET: Final = "daily budget"
# What a bid's outcome is called where the lead records it (`pingpost.bids` reads answers into
# them; the auction and the exchange count them without loading it when no buyer bids).
BID: Final = "bid"
NO_BID: Final = "no bid"
BAD_ANSWER: Final = "bad answer"
