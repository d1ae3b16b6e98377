"""US ZIP code existence and ZIP -> state lookup, backed by the bundled data/zip_states.bin.

The data file is built by tools/build_zip_states.py, whose docstring gives the source,
licence, file format and which ZIPs count as existing.
"""

from __future__ import annotations

__all__ = ["US_STATES", "state_for_zip"]

_FIFTY_STATES_AND_DC = frozenset(
    {
        "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA",
        "ID", "IL", "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS",
        "MT", "NC", "ND", "NE", "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA",
        "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VT", "WA", "WI", "WV", "WY",
    }
)  # fmt: skip

# The non-state USPS codes found in the bundled data; listing them keeps every value
# state_for_zip returns inside US_STATES (a unit test checks this).
_TERRITORIES_AND_MILITARY = frozenset(
    {
        "AS", "FM", "GU", "MH", "MP", "PR", "PW", "VI",  # territories, freely associated states
        "AA", "AE", "AP",  # armed forces Americas / Europe / Pacific
    }
)  # fmt: skip

US_STATES: frozenset[str] = _FIFTY_STATES_AND_DC | _TERRITORIES_AND_MILITARY
"""Valid US state abbreviations: the 50 states, DC, territories and military codes."""

_TABLE_SIZE = 100_000

# (table, states): table[n] indexes states for ZIP n; states[0] is None for "no such ZIP".
type _Lookup = tuple[bytes, tuple[str | None, ...]]

# Filled on first lookup so importing this module costs nothing. Assigned as one tuple,
# so a thread sees either None or the whole table; two threads racing just load twice.
_lookup: _Lookup | None = None


def _load() -> _Lookup:
    """Read and unpack the bundled table, caching it for the life of the process."""
    global _lookup  # noqa: PLW0603
    # Imported here, not at the top, to keep module import cheap on Lambda cold starts.
    import zlib
    from importlib.resources import files

    raw = files("pingpost").joinpath("data", "zip_states.bin").read_bytes()
    _source, codes, packed = raw.split(b"\n", 2)
    states: tuple[str | None, ...] = (None, *codes.decode("ascii").split(","))
    table = zlib.decompress(packed)
    # zlib's checksum already catches a damaged file; this catches a wrong format.
    if len(table) != _TABLE_SIZE:
        raise RuntimeError("pingpost/data/zip_states.bin has an unexpected format")
    _lookup = (table, states)
    return _lookup


def state_for_zip(zip5: str) -> str | None:
    """The state of an existing 5-digit ZIP; None if it does not exist or is not 5 ASCII digits."""
    # isascii first: isdigit alone accepts non-ASCII digits such as "٦٠٦١٠".
    if len(zip5) != 5 or not zip5.isascii() or not zip5.isdigit():
        return None
    table, states = _lookup or _load()
    return states[table[int(zip5)]]
