"""The SAM application as AWS will get it: the template passes `sam validate --lint`, and
`sam build` makes every function and the arm64 / python3.13 layer: the runtime package and its
dependencies, with bytecode, and nothing else."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEMPLATE, made_once

# `sam build` takes a while; a parallel run starts these first.
pytestmark = pytest.mark.long

SAM = Path(sys.executable).parent / "sam"
ENV = os.environ | {"SAM_CLI_TELEMETRY": "0"}


def sam(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SAM), *args],
        check=False,
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_the_template_passes_sam_validate_lint() -> None:
    done = sam("validate", "--lint", "--template-file", str(TEMPLATE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is a valid SAM Template" in done.stdout + done.stderr


def test_samconfig_has_a_prod_environment_sam_reads() -> None:
    # `sam deploy --config-env prod` deploys the stack pingpost-prod; sam validate reads the same
    # environment (lint from its settings: without them it would ask for a region).
    done = sam("validate", "--config-env", "prod", "--template-file", str(TEMPLATE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is a valid SAM Template" in done.stdout + done.stderr
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["prod"]["global"]["parameters"]["stack_name"] == "pingpost-prod"
    assert config["prod"]["deploy"]["parameters"]["confirm_changeset"] is True


def readme_build_command() -> str:
    """The build command of the README's "Deploy to AWS", as written there."""
    section = (ROOT / "README.md").read_text().split("\n## Deploy to AWS\n", 1)[1]
    (line,) = (line for line in section.splitlines() if line.startswith(".venv/bin/sam build"))
    return line.split("#", 1)[0].strip()


def clean_environment() -> dict[str, str]:
    """This environment as a fresh shell has it: no virtualenv on the PATH, no Python chosen
    (no PYTHON, nor one that make passes down, nor a pyenv version)."""
    venv = Path(sys.executable).parent
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p) != venv]
    dropped = ("VIRTUAL_ENV", "PYTHON", "PYTHONPATH", "PYTHONHOME", "PYENV_VERSION")
    dropped += ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    return {k: v for k, v in ENV.items() if k not in dropped} | {"PATH": os.pathsep.join(path)}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the README's build command makes, run as written from the root of a copy of the
    project (its own .aws-sam), in a clean environment."""

    def build(where: Path) -> None:
        for name in ("template.yaml", "samconfig.toml"):
            shutil.copy2(ROOT / name, where / name)
        for name in ("functions", "layers", "tools"):
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(ROOT / name, where / name, ignore=ignore)
        (where / ".venv").symlink_to(ROOT / ".venv")
        done = subprocess.run(
            ["bash", "-c", readme_build_command()],
            check=False,
            cwd=where,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    return made_once(tmp_path_factory, "sam-build", build) / ".aws-sam" / "build"


def test_the_readme_build_command_builds_without_a_virtualenv_on_the_path(built: Path) -> None:
    # Regression (review): `.venv/bin/sam build` on a fresh clone failed with "pyenv: python3.13:
    # command not found": only `make test` handed the layer build a Python (on its PATH).
    assert readme_build_command() == ".venv/bin/sam build"
    assert str(Path(sys.executable).parent) not in clean_environment()["PATH"].split(os.pathsep)
    assert "VIRTUAL_ENV" not in clean_environment()
    assert (built / "CoreLayer" / "python" / "pingpost" / "__init__.py").is_file()


def test_sam_build_makes_every_function_and_the_layer(built: Path) -> None:
    from pingpost_local.template import function_ids, load_template

    for function_id in function_ids(load_template(TEMPLATE)):
        assert (built / function_id / "app.py").is_file(), function_id
    layer = built / "CoreLayer" / "python"
    assert (layer / "pingpost" / "fields.py").is_file()
    assert (layer / "pingpost" / "data" / "zip_states.bin").is_file()
    # Every lead type file, and the fields they share.
    types = ROOT / "layers" / "pingpost" / "pingpost" / "leadtypes"
    for path in types.glob("*.json"):
        assert (layer / "pingpost" / "leadtypes" / path.name).read_bytes() == path.read_bytes()
    assert (layer / "pingpost" / "leadtypes" / "home_improvement.json").is_file()
    for package in ("pydantic", "lxml", "aws_lambda_powertools", "requests"):
        assert (layer / package).is_dir(), package
    # Built for Lambda's arm64 python3.13, not for this machine
    (etree,) = (layer / "lxml").glob("etree.*.so")
    assert etree.name == "etree.cpython-313-aarch64-linux-gnu.so"


def test_the_layer_ships_only_what_lambda_runs(built: Path) -> None:
    layer = built / "CoreLayer" / "python"
    ours = {
        p.relative_to(layer / "pingpost").as_posix() for p in (layer / "pingpost").rglob("*.py")
    }
    shipped = {
        p.relative_to(ROOT / "layers" / "pingpost" / "pingpost").as_posix()
        for p in (ROOT / "layers" / "pingpost" / "pingpost").rglob("*.py")
    }
    assert ours == shipped
    # No tests, no local runner or command, no build files, no tracing SDK and no botocore
    # (the runtime has its own), no Makefile or requirements of the build.
    for absent in ("tests", "pingpost_local", "Makefile", "requirements.txt", "aws_xray_sdk"):
        assert not (layer / absent).exists(), absent
    assert not (layer / "botocore").exists() and not (layer / "boto3").exists()
    assert not [n for n in ours if Path(n).name.startswith("test_") or n.endswith("conftest.py")]


def test_every_module_of_the_layer_ships_its_bytecode_for_python_3_13(built: Path) -> None:
    """A .pyc beside every .py, made for this Python's magic number and used unchecked."""
    layer = built / "CoreLayer" / "python"
    sources = list(layer.rglob("*.py"))
    assert len(sources) > 100
    missing, checked = [], []
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        if not compiled.is_file():
            missing.append(source.relative_to(layer).as_posix())
            continue
        header = compiled.read_bytes()[:8]
        assert header[:4] == importlib.util.MAGIC_NUMBER, compiled
        # PEP 552 flags: 1 = hash-based and not checked against the source.
        if int.from_bytes(header[4:8], "little") != 1:
            checked.append(compiled.relative_to(layer).as_posix())
    assert not missing and not checked, (missing[:5], checked[:5])
