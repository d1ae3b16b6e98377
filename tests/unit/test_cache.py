"""The container's caches: bounded in size, and misses forgotten quickly."""

from __future__ import annotations

from collections.abc import Callable

from pingpost.store import Expiring


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_unknown_keys_keeps_the_cache_at_its_size() -> None:
    # Every unknown Key used to stay cached: 100,000 keys, 22 MB in one container.
    cache: Expiring[str, str | None] = Expiring(30, Clock(), size=1024)
    for n in range(100_000):
        assert cache.get(f"key-{n}", lambda: None) is None
    assert len(cache) == 1024
    assert cache.peek("key-99999") is None and cache.get("key-0", lambda: "loaded") == "loaded"


def test_the_oldest_loaded_entry_goes_first() -> None:
    cache: Expiring[int, int] = Expiring(30, Clock(), size=2)
    cache.put(1, 10)
    cache.put(2, 20)
    cache.put(1, 11)  # loaded again: now the newest
    cache.put(3, 30)
    assert (cache.peek(1), cache.peek(2), cache.peek(3)) == (11, None, 30)


def test_a_miss_is_remembered_for_a_moment_a_value_for_the_full_time() -> None:
    clock = Clock()
    cache: Expiring[str, str | None] = Expiring(30, clock, miss_seconds=1)
    loads: list[str] = []

    def load(value: str | None) -> Callable[[], str | None]:
        def run() -> str | None:
            loads.append(str(value))
            return value

        return run

    cache.get("unknown", load(None))
    cache.get("vendor", load("v"))
    clock.now = 0.5
    cache.get("unknown", load(None))
    assert loads == ["None", "v"]  # both still fresh
    clock.now = 1.5
    cache.get("unknown", load(None))
    cache.get("vendor", load("v"))
    assert loads == ["None", "v", "None"]  # the miss is asked again, the vendor is not
    clock.now = 31
    cache.get("vendor", load("v"))
    assert loads == ["None", "v", "None", "v"]


def test_a_flood_of_misses_does_not_push_known_values_out() -> None:
    # Random Keys used to evict the vendors a container knew: every real request queried again.
    cache: Expiring[str, str | None] = Expiring(30, Clock(), size=4)
    cache.put("vendor", "v")
    for n in range(100):
        cache.get(f"unknown-{n}", lambda: None)
    assert cache.peek("vendor") == "v"
    assert len(cache) == 5  # the vendor and the 4 newest misses


def test_a_value_forgotten_while_it_loads_is_not_kept() -> None:
    cache: Expiring[str, str] = Expiring(30, Clock())

    def load() -> str:
        cache.forget("vendor")  # another thread changed the vendor meanwhile
        return "old"

    assert cache.get("vendor", load) == "old"
    assert cache.get("vendor", lambda: "new") == "new"
