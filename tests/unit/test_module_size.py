"""No module of the layer grows past about 400 lines without saying why it must be one piece."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "layers" / "pingpost" / "pingpost"
ABOUT = 420  # "about 400"
WHY = "one module of over 400 lines on purpose"


def long_modules() -> dict[str, int]:
    """Modules over ABOUT lines whose docstring does not say why they are one piece."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        lines = len(source.splitlines())
        docstring = ast.get_docstring(ast.parse(source)) or ""
        if lines > ABOUT and WHY not in docstring.lower():
            found[str(path.relative_to(PACKAGE))] = lines
    return found


def test_a_long_module_says_why_it_is_one_piece() -> None:
    assert long_modules() == {}, "split these, or say in the docstring why each is one piece"


def test_a_long_module_without_a_reason_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "long.py").write_text('"""A module."""\n' + "x = 1\n" * (ABOUT + 1))
    (tmp_path / "kept.py").write_text(f'"""{WHY.capitalize()}: why."""\n' + "x = 1\n" * ABOUT)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    assert long_modules() == {"long.py": ABOUT + 2}
