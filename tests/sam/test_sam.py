"""The SAM application as AWS will get it: the template passes `sam validate --lint`, and
`sam build` makes every function and the arm64 / python3.13 layer: the runtime package and its
dependencies, with bytecode, and nothing else."""

from __future__ import annotations

import importlib.util
import os
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


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def build(where: Path) -> None:
        done = sam(
            "build",
            "--template-file",
            str(TEMPLATE),
            "--build-dir",
            str(where / "build"),
            "--cache-dir",
            str(where / "cache"),
        )
        assert done.returncode == 0, done.stdout + done.stderr

    return made_once(tmp_path_factory, "sam-build", build) / "build"


def test_sam_build_makes_every_function_and_the_layer(built: Path) -> None:
    from pingpost_local.template import function_ids, load_template

    for function_id in function_ids(load_template(TEMPLATE)):
        assert (built / function_id / "app.py").is_file(), function_id
    layer = built / "CoreLayer" / "python"
    assert (layer / "pingpost" / "fields.py").is_file()
    assert (layer / "pingpost" / "data" / "zip_states.bin").is_file()
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
