"""A lead's consent record (TCPA evidence): what the consumer agreed to, where and how."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pingpost.fields import YES_NO, table

GIVEN: Final = "given"
AT: Final = "at"
# The keys that are evidence of consent; IP, user agent and page alone are not.
_EVIDENCE: Final = frozenset({GIVEN, "language", "trusted_form_url", "leadid_token"})


def record(
    values: Mapping[str, object], at_ms: int, earlier: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The consent record of validated lead values; empty when they hold no evidence.

    Fields later in the table (TCPA_Consent, TCPA_Language, User_Agent) win over the
    specification's Phone_Consent, Consent_Language and HTTP_User_Agent. The record is dated
    `at_ms`, or keeps the date of the `earlier` record (the ping's) when its evidence is the
    same (a post adds the consumer's IP and page to it).
    """
    out: dict[str, Any] = {}
    for field in table(values).fields:
        if field.consent and field.name in values:
            out[field.consent] = str(values[field.name])
    if not _EVIDENCE & out.keys():
        return {}
    if earlier and AT in earlier and _evidence(earlier) == _evidence(out):
        return out | {AT: earlier[AT]}
    return out | {AT: at_ms}


def _evidence(consent: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in consent.items() if k in _EVIDENCE}


def given(consent: Mapping[str, Any]) -> bool | None:
    """Whether a record says the consumer consented (Yes), refused (No), or not (None)."""
    answer = consent.get(GIVEN)
    return None if answer is None else answer == YES_NO[0]
