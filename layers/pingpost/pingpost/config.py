"""Settings from the environment, validated once when a container starts."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """The environment a function runs with (template.yaml sets it; defaults suit local runs)."""

    model_config = ConfigDict(frozen=True)

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
    max_redrives: int = Field(default=3, ge=0, le=20)
    redrive_base_seconds: int = Field(default=60, ge=0, le=900)
    # A sale whose delivery message may not have reached the queue is re-sent after this long.
    outbox_grace_seconds: int = Field(default=120, ge=0)
    ping_ttl_hours: int = Field(default=72, ge=1)
    # Every lead (with its deliveries) and every dedupe record is deleted by DynamoDB's TTL this
    # many days after it was last sold or posted (a pinged lead that is never posted: after
    # ping_ttl_hours). A partner's dedupe window is capped at it.
    lead_retention_days: int = Field(default=90, ge=1, le=3650)
    # How long a container trusts its copy of the vendors and partners.
    cache_seconds: float = Field(default=30, ge=0)
    # The partners a container holds at most (about 6 MB per 1,000): past it, the neighbourhoods
    # met longest ago are let go (and read again when a lead meets them).
    partners_held: int = Field(default=20_000, ge=1)
    # How long a container trusts the cap counters it read (a sale always checks them again).
    usage_cache_seconds: float = Field(default=5, ge=0)
    # Lead IDs are taken from the counter this many at a time, so no item is written per ping.
    lead_id_block: int = Field(default=100, ge=1, le=100_000)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    # Seconds a post waits for a concurrent post of the same lead to finish. One that makes no
    # progress (no sale, no answer) in that time is presumed dead, and this post takes over.
    post_wait_seconds: float = Field(default=5, ge=0)
    # A full request repeating an earlier one (the same Idempotency-Key, or without one the
    # same request) within this many seconds is answered as that lead, not sold again.
    repeat_seconds: int = Field(default=600, ge=1)

    def trusted_hosts(self) -> frozenset[str]:
        """delivery_http_hosts as names: lower-case, without the root dot."""
        names = self.delivery_http_hosts.split(",")
        return frozenset(n.strip().lower().rstrip(".") for n in names if n.strip())


@cache
def settings() -> Settings:
    """The settings of this process."""
    names = Settings.model_fields
    return Settings.model_validate(
        {key.lower(): value for key, value in os.environ.items() if key.lower() in names}
    )
