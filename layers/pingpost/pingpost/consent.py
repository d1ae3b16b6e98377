"""A lead's consent record (TCPA evidence): what the consumer agreed to, where and how."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pingpost.fields import FIELDS, YES_NO

GIVEN: Final = "given"
# The keys that are evidence of consent; IP, user agent and page alone are not.
_EVIDENCE: Final = frozenset({GIVEN, "language", "trusted_form_url", "leadid_token"})


def record(values: Mapping[str, object], at_ms: int) -> dict[str, Any]:
    """The consent record of validated lead values, at `at_ms`; empty when it has no evidence.

    Fields later in the table (TCPA_Consent, TCPA_Language, User_Agent) win over the
    specification's Phone_Consent, Consent_Language and HTTP_User_Agent.
    """
    out: dict[str, Any] = {}
    for field in FIELDS:
        if field.consent and field.name in values:
            out[field.consent] = str(values[field.name])
    if not _EVIDENCE & out.keys():
        return {}
    return out | {"at": at_ms}


def given(values: Mapping[str, object]) -> bool | None:
    """Whether the consumer consented (Yes), refused (No), or the lead does not say (None)."""
    answer = record(values, 0).get(GIVEN)
    return None if answer is None else answer == YES_NO[0]
