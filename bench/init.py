"""Cold start: importing each function from the built layer, without and with its bytecode.

    .venv/bin/python bench/init.py --rounds 15

The layer is built as `sam build` builds it (layers/pingpost/Makefile), for this machine's
platform instead of arm64 so that it can run here; a copy without its `__pycache__` stands for
a layer without bytecode (run with -B, so nothing is written back, as on Lambda's read-only
/opt). boto3 and its dependencies come from this virtualenv, as Lambda's runtime has its own.
Each import runs in a fresh interpreter (python -S: no site-packages but those named), rounds
interleaved; times are medians. The floor is what the design cannot do without: boto3, pydantic
(with one model validated), lxml, Powertools' Logger and Metrics and its HTTP event handler.
It is imported again just before each function's imports, and `bytecode / floor` is the median
of each round's ratio of the two, so that a slower spell of the machine weighs on both sides of
a ratio. Compare the ratios, measured in the same run, not the absolute times. `rss MB` is the
peak resident memory of the interpreter after the import.

With --instructions, the floor and each function (with bytecode) are also imported once under
valgrind's callgrind, which counts the instructions an import runs: the same count in every run,
whatever else the machine does (a ratio without noise; time also waits on memory and files).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
# What Lambda's python3.13 runtime carries besides the standard library.
RUNTIME = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")

TIMED = """
import json, sys, time
sys.path[:0] = {path!r}
started = time.perf_counter()
{body}
elapsed = time.perf_counter() - started
rss = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps([elapsed, rss]))
"""
FUNCTION = "import app"
VALGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
FLOOR = """
import boto3, lxml.etree, pydantic
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
class Model(pydantic.BaseModel):
    name: str
    count: int = 0
Model.model_validate({"name": "floor", "count": 1})
Logger(service="floor"); Metrics(namespace="floor"); APIGatewayHttpResolver()
"""


def build(where: Path) -> tuple[Path, Path, Path]:
    """The layer with bytecode, the same without, and the runtime's own packages."""
    machine = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine()]
    compiled = where / "bytecode"
    subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT / "layers" / "pingpost"),
            "build-CoreLayer",
            f"ARTIFACTS_DIR={compiled}",
            f"PLATFORM=manylinux2014_{machine}",
            f"PYTHON={sys.executable}",
        ],
        check=True,
        capture_output=True,
    )
    source = where / "source"
    shutil.copytree(compiled, source, ignore=shutil.ignore_patterns("__pycache__"))
    runtime = where / "runtime"
    runtime.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for name in RUNTIME:
        (runtime / name).symlink_to(site / name)
    return compiled / "python", source / "python", runtime


def timed(body: str, path: list[str], cwd: Path) -> tuple[float, float]:
    code = TIMED.format(path=path, body=body)
    done = subprocess.run(
        [sys.executable, "-S", "-B", "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    elapsed, rss = json.loads(done.stdout.splitlines()[-1])
    return float(elapsed), float(rss)


def _counted(code: str, cwd: Path) -> int:
    """The instructions a fresh interpreter runs for `code` (callgrind)."""
    done = subprocess.run(
        [*VALGRIND, sys.executable, "-S", "-B", "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONHASHSEED": "0"},
    )
    return int(done.stderr.split("Collected :")[1].split()[0])


@cache
def _around(path: tuple[str, ...], cwd: Path) -> int:
    """The instructions of the timing script around a body (counted once for its path)."""
    return _counted(TIMED.format(path=list(path), body="pass"), cwd)


def instructions(body: str, path: list[str], cwd: Path) -> int:
    """The instructions `body` runs, less those of the timing script around it (callgrind)."""
    return _counted(TIMED.format(path=path, body=body), cwd) - _around(tuple(path), cwd)


def count(functions: list[str], built: tuple[Path, Path, Path]) -> str:
    """The instructions of the floor's imports and of each function's, and their ratios."""
    compiled, _, runtime = built
    floor = instructions(FLOOR, [str(compiled), str(runtime)], ROOT)
    rows = [
        "",
        f"Instructions (callgrind): floor {floor / 1e6:.0f} million.",
        "",
        "| function | million instructions | / floor |",
        "|---|--:|--:|",
    ]
    for name in functions:
        folder = ROOT / "functions" / name
        counted = instructions(FUNCTION, [str(folder), str(compiled), str(runtime)], folder)
        rows.append(f"| {name} | {counted / 1e6:.0f} | {counted / floor:.3f} |")
    return "\n".join(rows)


def measure(
    rounds: int, functions: list[str], built: tuple[Path, Path, Path]
) -> dict[str, dict[str, float]]:
    """Median seconds (and peak RSS in MB) of each import, by what was imported and how, and
    the median of each function's ratios to the floor imported just before it (`ratio`)."""
    compiled, source, runtime = built
    samples: dict[str, list[tuple[float, float]]] = {}
    ratios: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name in functions:
            floor = timed(FLOOR, [str(compiled), str(runtime)], ROOT)
            samples.setdefault("floor", []).append(floor)
            folder = ROOT / "functions" / name
            for kind, layer in (("bytecode", compiled), ("source", source)):
                samples.setdefault(f"{name} {kind}", []).append(
                    timed(FUNCTION, [str(folder), str(layer), str(runtime)], folder)
                )
            ratios.setdefault(name, []).append(samples[f"{name} bytecode"][-1][0] / floor[0])
    results = {
        key: {
            "seconds": statistics.median(s for s, _ in values),
            "rss_mb": max(r for _, r in values),
        }
        for key, values in samples.items()
    }
    for name, values in ratios.items():
        results[f"{name} bytecode"]["ratio"] = statistics.median(values)
    return results


def report(results: dict[str, dict[str, float]], functions: list[str]) -> str:
    floor = results["floor"]["seconds"]
    rows = [
        f"Floor: {floor * 1000:.0f} ms, {results['floor']['rss_mb']:.0f} MB.",
        "",
        "| function | no bytecode ms | bytecode ms | bytecode / floor"
        " | no bytecode / bytecode | rss MB |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name in functions:
        compiled = results[f"{name} bytecode"]["seconds"]
        source = results[f"{name} source"]["seconds"]
        rows.append(
            f"| {name} | {source * 1000:.0f} | {compiled * 1000:.0f}"
            f" | {results[f'{name} bytecode']['ratio']:.2f}"
            f" | {source / compiled:.2f} | {results[f'{name} bytecode']['rss_mb']:.0f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--functions", nargs="+", choices=FUNCTIONS, default=FUNCTIONS)
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each import's instructions under valgrind (about 20 s each)",
    )
    args = parser.parse_args(argv)
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as work:  # the layer, built once for both
        built = build(Path(work))
        print(report(measure(args.rounds, args.functions, built), args.functions))
        if args.instructions:
            print(count(args.functions, built))
    return 0


if __name__ == "__main__":
    sys.exit(main())
