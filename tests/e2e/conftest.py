"""The whole exchange as `pingpost serve` runs it, shared by the end-to-end modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Server, serve_process


@pytest.fixture(scope="package")
def server() -> Iterator[Server]:
    """`pingpost serve --port 0 --seed demo/seed.json` in a process of its own."""
    with serve_process("--partner-port", "0") as running:
        yield running
