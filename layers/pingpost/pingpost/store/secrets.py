"""Partners' secrets (the values of their headers) as SSM SecureString parameters, one per
request a partner is sent: its delivery (`.../<id>/headers`), its bid (`.../<id>/bid-headers`)
and its post (`.../<id>/post-headers`).

The partners table keeps only the names of those headers: the functions that read it to match
leads never see a partner's credentials, and each function may read only the parameters of
the requests it sends.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

import boto3

from pingpost.config import settings
from pingpost.store import Expiring, client_config

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

_cache: Expiring[tuple[int, str], dict[str, str]] = Expiring(lambda: settings().cache_seconds)
# The requests a partner may be sent, by the name its parameter takes.
PARAMETERS = {"delivery": "headers", "bid": "bid-headers", "post": "post-headers"}


@cache
def ssm() -> SSMClient:
    """An SSM client for whatever endpoint the standard AWS environment names."""
    return boto3.client("ssm", config=client_config(5))


def _name(partner_id: int, request: str) -> str:
    path = settings().partner_secrets_path.rstrip("/")
    return f"{path}/{partner_id}/{PARAMETERS[request]}"


def put(partner_id: int, headers: dict[str, str], request: str = "delivery") -> int:
    """Store the secret headers of a partner's request (an operator's call, as the seed makes);
    the parameter's version that holds them."""
    made = ssm().put_parameter(
        Name=_name(partner_id, request),
        Value=json.dumps(headers),
        Type="SecureString",
        Overwrite=True,
    )
    _cache.forget((partner_id, request))
    return int(made["Version"])


def forget(partner_id: int, requests: Sequence[str] = ("delivery",)) -> None:
    """Delete the secret headers of a partner's requests (they have none any more), in one call;
    those it never had are no error."""
    if not requests:
        return
    ssm().delete_parameters(Names=[_name(partner_id, request) for request in requests])
    for request in requests:
        _cache.forget((partner_id, request))


def stored(
    partner_id: int, request: str = "delivery", version: int | None = None
) -> tuple[dict[str, str], int] | None:
    """The secret headers of a partner's request as stored now (or as `version` of its
    parameter held them), with the parameter's version (None: no parameter)."""
    name = _name(partner_id, request) + ("" if version is None else f":{version}")
    try:
        found = ssm().get_parameter(Name=name, WithDecryption=True)
    except ssm().exceptions.ParameterNotFound:
        return None
    values: dict[str, str] = json.loads(found["Parameter"].get("Value", "{}"))
    return values, int(found["Parameter"].get("Version", 0))


def versions(partner_id: int, requests: Sequence[str]) -> dict[str, int]:
    """The version of each of a partner's requests' parameters that exists, in one call (an
    operator's: which values a write would drop, and whether another write stored them since)."""
    if not requests:
        return {}
    names = {_name(partner_id, request): request for request in requests}
    found = ssm().get_parameters(Names=list(names))["Parameters"]
    return {names[p["Name"]]: int(p["Version"]) for p in found}


def headers(partner_id: int, request: str = "delivery") -> dict[str, str]:
    """The secret headers of a partner's request; empty when it has none stored."""

    def load() -> dict[str, str]:
        found = stored(partner_id, request)
        return {} if found is None else found[0]

    return _cache.get((partner_id, request), load)
