"""The lock file pins every dependency with hashes, and the layer ships the locked versions."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+) \\$")


def pins(path: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a hashed requirements file."""
    out: dict[str, tuple[str, int]] = {}
    name = ""
    for line in (ROOT / path).read_text().splitlines():
        if found := _PIN.match(line):
            name = canonicalize_name(found[1])
            out[name] = (found[2], 0)
        elif line.strip().startswith("--hash=sha256:"):
            pinned, hashes = out[name]
            out[name] = (pinned, hashes + 1)
        else:
            assert line.startswith("#") or not line.strip(), line
    return out


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(r) for r in PROJECT["dependencies"]]
DEV = [Requirement(r) for r in PROJECT["optional-dependencies"]["dev"]]


def test_every_dependency_is_pinned_with_its_hashes_within_what_pyproject_asks() -> None:
    locked = pins("requirements.lock")
    assert all(hashes for _, hashes in locked.values())
    for requirement in RUNTIME + DEV:
        pinned, _ = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pinned, prereleases=True), (requirement, pinned)
    assert Requirement("lxml>=6.1").specifier.contains(locked["lxml"][0])


def test_the_layer_ships_the_locked_versions_and_no_boto3() -> None:
    locked, layer = pins("requirements.lock"), pins("layers/pingpost/requirements.txt")
    assert all(hashes for _, hashes in layer.values())
    assert {n: v for n, (v, _) in layer.items()} == {n: locked[n][0] for n in layer}
    wanted = {canonicalize_name(r.name) for r in RUNTIME} - {"boto3"}
    assert wanted <= set(layer) and "boto3" not in layer


def test_this_environment_runs_the_locked_versions() -> None:
    locked = pins("requirements.lock")
    for requirement in RUNTIME:
        name = canonicalize_name(requirement.name)
        assert version(name) == locked[name][0], name
