"""Modules depend only downward: handlers -> exchange -> matching, storage, formats -> models.

Each module of the layer has a level; a module imports only modules of lower levels (the modules
of the store and leadtypes packages may also use each other). A new module fails here until it
is given its level.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "layers" / "pingpost" / "pingpost"
# The levels, lowest first.
LEVELS: tuple[tuple[str, ...], ...] = (
    # The lead types' files and what a field is.
    ("leadtypes",),
    # Facts and plumbing that know nothing of leads.
    ("clock", "config", "errors", "fields", "geography", "observability", "reasons", "urls"),
    # A partner's filters on a lead type's fields, and the endpoints the exchange calls.
    ("endpoints", "fieldfilters"),
    # The models validated from tables and requests.
    ("models",),
    # Value types and rules shared by the parts above them.
    ("answers", "caps", "consent", "identity"),
    # Who may buy a lead, and the index that finds them (which storage keeps).
    ("matching",),
    # Storage, and the formats of requests and answers.
    ("bids", "decoding", "outbound", "responses", "store", "validation"),
    # The stores as the services see them, and what a request is told and recorded.
    ("answering", "stores"),
    # Many requests at once from one thread (bids), on outbound's rules.
    ("fanout",),
    # Asking the buyers that bid, and posting those that won.
    ("auction",),
    ("posting",),
    # Selling a lead a request holds.
    ("selling",),
    # What a request or a queued sale does.
    ("delivery", "exchange", "redrive", "returns"),
    # The HTTP edge shared by the API functions.
    ("edge",),
    # The Lambda handlers (functions/*/app.py).
    ("functions",),
)
LEVEL = {name: level for level, names in enumerate(LEVELS) for name in names}
# The parts that are packages, whose modules may use each other.
_PACKAGES = ("store", "leadtypes")


def _part(module: str) -> str:
    """The levelled part a module belongs to: pingpost.store.leads -> store."""
    return module.split(".")[1] if module.startswith("pingpost.") else module


def _imports(path: Path) -> set[str]:
    """The pingpost modules a file imports (at the top or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "pingpost":
                found.update(f"pingpost.{alias.name}" for alias in node.names)
            elif node.module.startswith("pingpost."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pingpost"))
    return found


def _files() -> list[tuple[str, Path]]:
    modules = [
        ("pingpost." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts), path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__init__.py" or path.parent != PACKAGE
    ]
    handlers = [("functions", path) for path in sorted((ROOT / "functions").glob("*/app.py"))]
    return modules + handlers


def test_every_module_has_a_level() -> None:
    unlevelled = {_part(module.removesuffix(".__init__")) for module, _ in _files()} - set(LEVEL)
    assert not unlevelled, f"give these modules a level in LEVELS: {sorted(unlevelled)}"


@pytest.mark.parametrize(
    ("module", "path"), [pytest.param(m, p, id=str(p.relative_to(ROOT))) for m, p in _files()]
)
def test_imports_go_only_downward(module: str, path: Path) -> None:
    own = _part(module.removesuffix(".__init__"))
    upward = sorted(
        imported
        for imported in _imports(path)
        if imported.startswith("pingpost_local")
        or _part(imported) not in LEVEL
        or (LEVEL[_part(imported)] >= LEVEL[own] and not (own == _part(imported) in _PACKAGES))
    )
    assert not upward, f"{module} (level {LEVEL[own]}) imports {upward}"


def test_a_lower_module_importing_a_higher_one_is_caught(tmp_path: Path) -> None:
    lowered = tmp_path / "matching.py"
    lowered.write_text("from pingpost.store import partners\nfrom pingpost import exchange\n")
    found = _imports(lowered)
    assert found == {"pingpost.store", "pingpost.exchange"}
    assert all(LEVEL[_part(name)] >= LEVEL["matching"] for name in found)
