"""Per-ping matching time with the partner index against a linear scan of every partner.

    .venv/bin/python bench/matching.py --sizes 100 10000 100000 --rounds 200

Partners and leads are random but seeded, so every run measures the same work. Both ways must
match the same partners (checked on every lead); the speed-up ratio is the figure to compare,
absolute times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pingpost.fields import PRODUCTS
from pingpost.geography import state_for_zip
from pingpost.matching import Criteria, PartnerSet, exclusion, match, rank
from pingpost.models import DAYS, Partner

ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
SOURCES = ("google", "bing", "facebook", "affiliate", "spammy", "email")
WARM_UP = 20


@dataclass(frozen=True, slots=True)
class Ping:
    """One lead to match, at one moment."""

    lead: Criteria
    now: datetime


@dataclass(frozen=True, slots=True)
class Row:
    """The measurements at one number of partners."""

    partners: int
    candidates: float  # mean per ping
    index_us: float  # median per ping
    linear_us: float  # median per ping

    @property
    def speed_up(self) -> float:
        """How many times faster the index is than the linear scan."""
        return self.linear_us / self.index_us


def real_zip(rng: random.Random) -> tuple[str, str]:
    """A random existing ZIP code and its state; states weigh as their number of ZIP codes."""
    while True:
        code = f"{rng.randrange(100_000):05d}"
        state = state_for_zip(code)
        if state is not None:
            return code, state


def _schedule(rng: random.Random) -> dict[str, list[str]]:
    weekdays = {day: ["08:00-20:00"] for day in DAYS[:5]}
    return weekdays | {"sat": ["09:00-13:00"], "sun": []} if rng.random() < 0.5 else weekdays


def random_partner(partner_id: int, rng: random.Random) -> Partner:
    """A partner like a real exchange's: mostly a few states and products, a few national ones."""
    places = [real_zip(rng) for _ in range(rng.randint(1, 3))]
    national = rng.random() < 0.01
    any_product = rng.random() < 0.01
    filters: dict[str, object] = {
        "states": [] if national else sorted({state for _, state in places}),
        "products": [] if any_product else rng.sample(PRODUCTS, rng.randint(1, 5)),
        "min_score": rng.choice((0, 0, 0, 10, 30)),
    }
    if not national and rng.random() < 0.1:
        filters["zip_prefixes"] = sorted({code[:3] for code, _ in places})
    if rng.random() < 0.05:
        filters["src_deny"] = ["spammy"]
    elif rng.random() < 0.03:
        filters["src_allow"] = rng.sample(SOURCES[:4], 2)
    if rng.random() < 0.05:
        filters["schedule"] = _schedule(rng)
    return Partner.model_validate(
        {
            "id": partner_id,
            "price": rng.randrange(10, 121) / 2,  # 5.00 to 60.00 in halves: ties happen
            "priority": rng.choice((0, 0, 0, 1, 2)),
            "timezone": rng.choice(ZONES),
            "filters": filters,
        }
    )


def random_partners(count: int, seed: int = 1) -> list[Partner]:
    """`count` partners, the same for the same seed."""
    rng = random.Random(seed)
    return [random_partner(i, rng) for i in range(1, count + 1)]


def random_pings(count: int, seed: int = 2) -> list[Ping]:
    """`count` leads at moments spread over a year, the same for the same seed."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    pings = []
    for _ in range(count):
        code, state = real_zip(rng)
        lead = Criteria(
            state=state,
            zip=code,
            product=rng.choice(PRODUCTS),
            score=rng.randint(0, 100),
            cost=Decimal(rng.randrange(4, 41)) / 2,
            src=rng.choice(SOURCES),
        )
        pings.append(Ping(lead, start + timedelta(minutes=rng.randrange(365 * 24 * 60))))
    return pings


def linear(ping: Ping, partners: Sequence[Partner]) -> list[Partner]:
    """The baseline: every partner's rules, then the ranking."""
    return rank([p for p in partners if exclusion(p, ping.lead, ping.now) is None])


def indexed(ping: Ping, partners: PartnerSet) -> list[Partner]:
    """Matching through the index."""
    return list(match(ping.lead, partners, ping.now).ranked)


def _elapsed_us(run: Callable[..., object], *args: object) -> float:
    start = time.perf_counter_ns()
    run(*args)
    return (time.perf_counter_ns() - start) / 1000


def measure(size: int, rounds: int, seed: int = 1) -> Row:
    """Both ways on `rounds` leads against `size` partners; raises if they ever disagree."""
    partners = random_partners(size, seed)
    index = PartnerSet(partners)
    pings = random_pings(rounds + WARM_UP, seed + 1)
    for ping in pings:
        mine = {p.id for p in indexed(ping, index)}
        theirs = {p.id for p in linear(ping, partners)}
        if mine != theirs:
            raise AssertionError(f"index and linear scan disagree on {ping.lead}")
    timed = pings[WARM_UP:]
    # As timeit does: a collection of the whole heap must not land inside one timing.
    gc.collect()
    gc.disable()
    try:
        index_us = [_elapsed_us(indexed, ping, index) for ping in timed]
        linear_us = [_elapsed_us(linear, ping, partners) for ping in timed]
    finally:
        gc.enable()
    return Row(
        partners=size,
        candidates=statistics.fmean(len(index.candidates(ping.lead)) for ping in timed),
        index_us=statistics.median(index_us),
        linear_us=statistics.median(linear_us),
    )


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| partners | candidates per ping (mean) | index µs/ping (median) "
        "| linear µs/ping (median) | speed-up |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r.partners:,} | {r.candidates:,.1f} | {r.index_us:,.1f} | {r.linear_us:,.1f} "
        f"| {r.speed_up:,.1f}x |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description="Per-ping matching: index against linear scan.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=200, help="timed leads per size")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rows = [measure(size, args.rounds, args.seed) for size in args.sizes]
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
