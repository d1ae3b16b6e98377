"""Whatever arrives, the answer is a publisher-readable refusal, never a crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pingpost.decoding import decode
from pingpost.errors import InvalidRequest, PingPostError
from pingpost.fields import FIELDS, MODES
from pingpost.validation import validate

NAMES = st.sampled_from([f.name for f in FIELDS]) | st.text(max_size=20)
VALUES = st.sampled_from([f.example for f in FIELDS]) | st.text(max_size=300)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(NAMES, VALUES, max_size=40), st.sampled_from(MODES), st.booleans())
def test_validation_accepts_or_names_what_is_wrong(
    raw: dict[str, str], mode: str, dynamic: bool
) -> None:
    try:
        validate(raw, mode, dynamic_pricing=dynamic)
    except InvalidRequest as refused:
        assert refused.messages
        for message in refused.messages:
            assert message.startswith(("Required value ", "Invalid value for ", "Return_Hash"))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(NAMES, inner, max_size=8),
    max_leaves=40,
)
TYPES = st.sampled_from(
    [
        None,
        "",
        "text/xml",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "multipart/form-data",
        "application/json",
        "bogus/;;",
    ]
)
BODIES = (
    st.binary(max_size=2000)
    | st.text(max_size=2000).map(str.encode)
    | st.sampled_from(
        [b"<Request><Data><Zip>60610</Zip></Data></Request>", b"<Request>", b"--x\r\n\r\n--x--"]
    )
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(NAMES, JSON_VALUES, max_size=8).map(
        lambda v: json.dumps({"Request": v}).encode()
    )
)


@pytest.mark.long
@settings(max_examples=600, deadline=None)
@given(st.sampled_from(["GET", "POST"]), TYPES, st.text(max_size=200), BODIES)
def test_decoding_reads_or_refuses_any_body(
    method: str, content_type: str | None, query: str, body: bytes
) -> None:
    try:
        request = decode(method, content_type, query, body, 256 * 1024)
    except PingPostError as refused:
        assert refused.message and refused.status in (400, 413)
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in request.fields.items())
