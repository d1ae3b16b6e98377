"""Requests made from openapi.yaml, sent to `pingpost serve`: every answer is one the document
describes (status, media type, JSON shape), and none is a server error.

SCHEMA_EXAMPLES (20) sets how many requests per operation; `make test` runs 20, a longer run is
`SCHEMA_EXAMPLES=500 .venv/bin/python -m pytest tests/e2e/test_schema.py`. A request the
document allows may still be refused (400): it cannot say that a ZIP code must exist or a phone
number be a real one, so that check is left out.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import ROOT, Server
from tests.leads import KEY

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("SCHEMA_EXAMPLES", "20"))
SCHEMA = schemathesis.openapi.from_path(ROOT / "openapi.yaml")
OPERATIONS = {op.ok().label: op.ok() for op in SCHEMA.get_all_operations()}


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_answer_is_described_and_none_is_a_server_error(server: Server, label: str) -> None:
    @given(case=OPERATIONS[label].as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def answer(case: Any) -> None:
        # Most requests carry the demo vendor's Key, so that they reach the exchange's checks.
        fields = case.query if case.query is not None else case.body
        if isinstance(fields, dict) and fields.get("Key") and len(str(fields)) % 4:
            fields["Key"] = KEY
        case.call_and_validate(base_url=server.url, excluded_checks=[positive_data_acceptance])

    answer()
