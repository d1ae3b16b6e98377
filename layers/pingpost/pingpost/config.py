"""Settings from the environment, read and checked once when a container first needs them."""

import math
import os
from collections.abc import Callable, Mapping
from functools import cache
from typing import NamedTuple


class Settings(NamedTuple):
    """The environment a function runs with (template.yaml sets it; defaults suit local runs):
    each field from the variable of its name in capitals (any case), numbers within `_BOUNDS`."""

    leads_table: str = "LeadsTable"
    vendors_table: str = "VendorsTable"
    partners_table: str = "PartnersTable"
    counters_table: str = "CountersTable"
    delivery_queue_url: str = ""
    # Where partners' secret headers are kept (SSM Parameter Store, SecureString per partner).
    partner_secrets_path: str = "/pingpost/partners"
    dead_letter_queue_url: str = ""
    # Hosts trusted by name (comma-separated): partners reached over plain http and at private
    # addresses, and browsers sent back there (Redirect_URL, when the vendor lists the host);
    # every other host needs https (partners) and a public address.
    delivery_http_hosts: str = ""
    # A delivery that keeps failing goes back from the dead-letter queue this many times, after
    # redrive_base_seconds, then twice that, ... (at most 15 minutes), then it is parked.
    max_redrives: int = 3
    redrive_base_seconds: int = 60
    # A sale whose delivery message may not have reached the queue is re-sent after this long.
    outbox_grace_seconds: int = 120
    ping_ttl_hours: int = 72
    # Every lead (with its deliveries) and every dedupe record is deleted by DynamoDB's TTL this
    # many days after it was last sold or posted (a pinged lead that is never posted: after
    # ping_ttl_hours). A partner's dedupe window is capped at it.
    lead_retention_days: int = 90
    # How long a container trusts its copy of the vendors and partners.
    cache_seconds: float = 30
    # The partners a container holds at most (about 6 MB per 1,000): past it, the neighbourhoods
    # met longest ago are let go (and read again when a lead meets them).
    partners_held: int = 20_000
    # How long a container trusts the cap counters it read (a sale always checks them again).
    usage_cache_seconds: float = 5
    # Lead IDs are taken from the counter this many at a time, so no item is written per ping.
    lead_id_block: int = 100
    max_body_bytes: int = 256 * 1024
    # Seconds a post waits for a concurrent post of the same lead to finish. One that makes no
    # progress (no sale, no answer) in that time is presumed dead, and this post takes over.
    post_wait_seconds: float = 5
    # A full request repeating an earlier one (the same Idempotency-Key, or without one the
    # same request) within this many seconds is answered as that lead, not sold again.
    repeat_seconds: int = 600

    def trusted_hosts(self) -> frozenset[str]:
        """delivery_http_hosts as names: lower-case, without the root dot."""
        names = self.delivery_http_hosts.split(",")
        return frozenset(n.strip().lower().rstrip(".") for n in names if n.strip())


# The numbers' bounds, least and most: at least 0 and at most a billion unless said (a TTL
# of 1e300 hours would fail every write of a lead).
_MOST = 1_000_000_000
_BOUNDS: dict[str, tuple[int, int]] = {
    "max_redrives": (0, 20),
    "redrive_base_seconds": (0, 900),
    "ping_ttl_hours": (1, _MOST),
    "lead_retention_days": (1, 3650),
    "partners_held": (1, _MOST),
    "lead_id_block": (1, 100_000),
    "max_body_bytes": (1024, _MOST),
    "repeat_seconds": (1, _MOST),
}


class SettingsError(ValueError):
    """An environment variable whose value the exchange cannot run with."""


def _number(name: str, text: str, kind: Callable[[str], float]) -> float:
    """A number as written in decimal (a whole one may be written 3.0, as CloudFormation may
    pass a Number parameter), within the setting's bounds."""
    least, most = _BOUNDS.get(name, (0, _MOST))
    what = "a whole number" if kind is int else "a number"
    within = f" from {least} to {most}"
    try:
        value = float(text) if text.isascii() else math.nan
    except ValueError:
        value = math.nan
    whole = kind is not int or value.is_integer()
    if not (math.isfinite(value) and whole and least <= value <= most):
        raise SettingsError(f"{name.upper()} must be {what}{within}, not {text!r}")
    return int(value) if kind is int else value


def read(environment: Mapping[str, str]) -> Settings:
    """The settings `environment` gives (variables named in any case); SettingsError for a
    number that is not one, or out of its bounds."""
    given = {key.lower(): value for key, value in environment.items()}
    values: dict[str, object] = {}
    for name, kind in Settings.__annotations__.items():
        if name in given:
            text = given[name]
            values[name] = text if kind is str else _number(name, text, kind)
    return Settings(**values)  # type: ignore[arg-type]  # (each of its field's type)


@cache
def settings() -> Settings:
    """The settings of this process."""
    return read(os.environ)
