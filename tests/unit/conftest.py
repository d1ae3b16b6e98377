"""Fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def quick_posts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A post waits a moment, not seconds, for another post of its lead."""
    from pingpost.config import settings

    monkeypatch.setenv("POST_WAIT_SECONDS", "0.05")
    settings.cache_clear()
    yield
    monkeypatch.undo()
    settings.cache_clear()
