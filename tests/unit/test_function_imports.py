"""Each function imports only what it runs: a cold start pays for every module it loads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# What each function must never load at init.
NEVER = {
    "ping": {
        "requests",
        "pingpost.delivery",
        "pingpost.outbound",
        "pingpost.fanout",
        "pingpost.bids",  # read only when a buyer bids
        "pingpost.selling",  # a ping sells nothing
        "pingpost.posting",
        "stringprep",  # only for a host name that is not ASCII
        "aws_xray_sdk",
        "aws_lambda_powertools.utilities.typing",
    },
    "post": {
        "requests",
        "pingpost.delivery",
        "pingpost.outbound",
        "pingpost.fanout",
        "pingpost.bids",
        "aws_xray_sdk",
        "aws_lambda_powertools.utilities.typing",
    },
    "full": {
        "requests",
        "pingpost.delivery",
        "pingpost.outbound",
        "pingpost.fanout",
        "pingpost.bids",
        "aws_xray_sdk",
        "aws_lambda_powertools.utilities.typing",
    },
    "api": {
        "requests",
        "pingpost.delivery",
        "pingpost.outbound",
        "pingpost.fanout",
        "pingpost.bids",
        "aws_xray_sdk",
        "aws_lambda_powertools.utilities.typing",
    },
    "deliver": {
        "pingpost.responses",
        "pingpost.exchange",
        "pingpost.decoding",
        "aws_xray_sdk",
        "aws_lambda_powertools.utilities.typing",
    },
    "retry": {
        "requests",
        "pingpost.delivery",
        "pingpost.decoding",
        "aws_xray_sdk",
        "aws_lambda_powertools.utilities.typing",
    },
    "returns": {
        "requests",
        "pingpost.exchange",
        "pingpost.decoding",
        "aws_xray_sdk",
        "aws_lambda_powertools.utilities.typing",
    },
    "figures": {
        "requests",
        "pingpost.exchange",
        "pingpost.decoding",
        "pingpost.matching",
        "aws_xray_sdk",
        "aws_lambda_powertools.utilities.typing",
    },
}
# And what shows the import was the real one.
LOADS = {
    "ping": "pingpost.exchange",
    "post": "pingpost.selling",  # every post sells: loaded at init, not by the first request
    "full": "pingpost.selling",
    "api": "pingpost.selling",
    "deliver": "pingpost.delivery",
    "retry": "pingpost.redrive",
    "returns": "pingpost.returns",
    "figures": "pingpost.store.counting",
}


def loaded_by(function: str) -> set[str]:
    """The modules a fresh interpreter holds after importing the function's app.py."""
    code = "import json, sys, app; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT / "functions" / function,
        env={"PYTHONPATH": str(ROOT / "layers" / "pingpost"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(json.loads(done.stdout))


def test_every_function_is_listed() -> None:
    assert {p.parent.name for p in (ROOT / "functions").glob("*/app.py")} == set(NEVER)


@pytest.mark.parametrize("function", sorted(NEVER))
def test_a_function_loads_nothing_it_does_not_run(function: str) -> None:
    modules = loaded_by(function)
    assert LOADS[function] in modules
    assert not NEVER[function] & modules
