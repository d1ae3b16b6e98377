"""The one wall clock of the exchange, in epoch milliseconds (what leads and deliveries store).

Modules import it as their own `_now_ms`, so a test can move one module's time alone.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """Now, in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000
