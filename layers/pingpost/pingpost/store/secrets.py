"""Partners' delivery secrets (the values of their headers) as SSM SecureString parameters.

The partners table keeps only the names of those headers: the functions that read it to match
leads never see a partner's credentials, and only the deliver function may read these.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING

import boto3

from pingpost.config import settings
from pingpost.store import Expiring, client_config

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

_cache: Expiring[int, dict[str, str]] = Expiring(lambda: settings().cache_seconds)


@cache
def ssm() -> SSMClient:
    """An SSM client for whatever endpoint the standard AWS environment names."""
    return boto3.client("ssm", config=client_config(5))


def _name(partner_id: int) -> str:
    return f"{settings().partner_secrets_path.rstrip('/')}/{partner_id}/headers"


def put(partner_id: int, headers: dict[str, str]) -> None:
    """Store a partner's secret headers (an operator's call, as the seed makes it)."""
    ssm().put_parameter(
        Name=_name(partner_id), Value=json.dumps(headers), Type="SecureString", Overwrite=True
    )
    _cache.forget(partner_id)


def forget(partner_id: int) -> None:
    """Delete a partner's secret headers (it has none any more)."""
    try:
        ssm().delete_parameter(Name=_name(partner_id))
    except ssm().exceptions.ParameterNotFound:
        pass
    _cache.forget(partner_id)


def headers(partner_id: int) -> dict[str, str]:
    """A partner's secret headers; empty when it has none stored."""

    def load() -> dict[str, str]:
        try:
            found = ssm().get_parameter(Name=_name(partner_id), WithDecryption=True)
        except ssm().exceptions.ParameterNotFound:
            return {}
        values: dict[str, str] = json.loads(found["Parameter"].get("Value", "{}"))
        return values

    return _cache.get(partner_id, load)
