"""The whole exchange as `pingpost serve` runs it, shared by the end-to-end modules."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import DEMO_SEED, ROOT


@dataclass(frozen=True)
class Server:
    url: str
    aws: str
    output: list[str]


@pytest.fixture(scope="package")
def server() -> Iterator[Server]:
    """`pingpost serve --port 0 --seed demo/seed.json` in a process of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env |= {"PYTHONUNBUFFERED": "1", "POWERTOOLS_METRICS_DISABLED": "true"}
    for name in ("LEADS_TABLE", "VENDORS_TABLE", "PARTNERS_TABLE", "COUNTERS_TABLE"):
        env.pop(name, None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pingpost.cli",
            "serve",
            "--port",
            "0",
            "--seed",
            str(DEMO_SEED),
            "--partner-port",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    url = aws = ""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if found := re.search(r"AWS endpoint: (\S+)", line):
            aws = found.group(1)
        if found := re.search(r"listening on (\S+)", line):
            url = found.group(1)
        if "curl" in line:
            break
    assert url and aws, "".join(seen)
    # Keep reading its output, or the server blocks once the pipe is full.
    threading.Thread(target=seen.extend, args=(process.stdout,), daemon=True).start()
    try:
        yield Server(url, aws, seen)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
