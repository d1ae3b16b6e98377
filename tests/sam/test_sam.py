"""The SAM application as AWS will get it: the template passes `sam validate --lint`, and
`sam build` makes every function and the arm64 / python3.13 layer with its dependencies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEMPLATE

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


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("sam")
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
    return where / "build"


def test_sam_build_makes_every_function_and_the_layer(built: Path) -> None:
    from pingpost.local.template import function_ids, load_template

    for function_id in function_ids(load_template(TEMPLATE)):
        assert (built / function_id / "app.py").is_file(), function_id
    layer = built / "CoreLayer" / "python"
    assert (layer / "pingpost" / "fields.py").is_file()
    assert (layer / "pingpost" / "data" / "zip_states.bin").is_file()
    for package in ("pydantic", "lxml", "aws_lambda_powertools", "requests"):
        assert (layer / package).is_dir(), package
    # No test code of ours ships (the local runner still does, until it moves out of the package).
    assert not (layer / "tests").exists()
    ours = [p.name for p in (layer / "pingpost").rglob("*.py")]
    assert ours and not [n for n in ours if n.startswith("test_") or n == "conftest.py"]
    # Built for Lambda's arm64 python3.13, not for this machine
    (etree,) = (layer / "lxml").glob("etree.*.so")
    assert etree.name == "etree.cpython-313-aarch64-linux-gnu.so"
