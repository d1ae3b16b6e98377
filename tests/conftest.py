"""Shared fixtures: the embedded AWS endpoint with the template's own tables and queues."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"
DEMO_SEED = ROOT / "demo" / "seed.json"

# Before any pingpost module reads its settings: nothing cached, so each test sees its seed.
os.environ["CACHE_SECONDS"] = "0"
os.environ["USAGE_CACHE_SECONDS"] = "0"
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_DEV", "false")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--proof",
        action="store_true",
        help="run the tests marked proof in their long form (make proof); without it they run"
        " in a short form that goes down the same paths (make test)",
    )


@pytest.fixture(scope="session")
def long_proof(request: pytest.FixtureRequest) -> bool:
    """Whether this run asked for the long form of the proofs (--proof)."""
    return bool(request.config.getoption("--proof"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests first (in their order), so that a parallel run does not end waiting for
    one that started last."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(autouse=True)
def no_metrics_left_over() -> None:
    """Each test starts with no metrics pending. Powertools prints them (a JSON line on standard
    output) once it holds 100 metrics (or one has 100 values), which a long test process
    reaches: they were printed into a later test's captured output (`pingpost partners
    reindex`'s, which then failed)."""
    observability = sys.modules.get("pingpost.observability")
    if observability is not None:  # (not imported for a test that does not use it)
        observability.metrics.clear_metrics()


@pytest.fixture(scope="session")
def aws() -> Iterator[str]:
    """An embedded AWS endpoint (moto server mode) with every table and queue of template.yaml."""
    import boto3

    from pingpost_local.embedded_aws import start_aws_endpoint
    from pingpost_local.resources import create_resources
    from pingpost_local.template import (
        function_environment,
        function_ids,
        load_template,
        parameter_values,
    )

    saved = dict(os.environ)
    server, url = start_aws_endpoint()
    os.environ.update(
        AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"
    )
    template = load_template(TEMPLATE)
    parameters = parameter_values(template)
    physical = create_resources(template, boto3.client("dynamodb"), boto3.client("sqs"), parameters)
    for function_id in function_ids(template):
        os.environ.update(function_environment(template, function_id, physical, parameters))
    os.environ["CACHE_SECONDS"] = "0"
    # The tests' partners listen on loopback over plain http, as the local demo's do.
    os.environ["DELIVERY_HTTP_HOSTS"] = "127.0.0.1,localhost"
    from pingpost.config import settings

    settings.cache_clear()
    try:
        yield url
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)


def deployed_settings(function_id: str) -> Any:
    """The settings a function of template.yaml is deployed with: its environment there (with
    the parameters' defaults), else the settings' own defaults."""
    from pingpost.config import read
    from pingpost_local.template import function_environment, load_template, parameter_values

    template = load_template(TEMPLATE)
    return read(function_environment(template, function_id, {}, parameter_values(template)))


def forget_container() -> None:
    """Drop every per-container copy (vendors, partners, secrets, cap usage): a cold start."""
    from pingpost.store import partners, sales, secrets, vendors

    partners.forget()
    vendors._cache.clear()
    secrets._cache.clear()
    sales._usage.clear()


@pytest.fixture(params=["caches off", "caches as deployed"])
def caches(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test twice: with every per-container copy off, as the suites run (each test sees its
    own writes at once), and with the copies kept as deployed (the PostFunction's settings: a
    partners' copy and a vendor up to CACHE_SECONDS old, cap usage up to USAGE_CACHE_SECONDS old, a
    sale's transaction checking the caps again). Each starts as a new container."""
    from pingpost.config import settings

    if request.param == "caches as deployed":
        deployed = deployed_settings("PostFunction")
        assert deployed.cache_seconds > 0 and deployed.usage_cache_seconds > 0
        monkeypatch.setenv("CACHE_SECONDS", str(deployed.cache_seconds))
        monkeypatch.setenv("USAGE_CACHE_SECONDS", str(deployed.usage_cache_seconds))
    settings.cache_clear()
    forget_container()
    yield request.param
    monkeypatch.undo()
    settings.cache_clear()
    forget_container()


def clear_partners() -> None:
    """No partner, and none of the cap counters or dedupe records of those before."""
    from pingpost.store import partners

    client = _aws_dynamodb(os.environ["AWS_ENDPOINT_URL"])
    table = os.environ["PARTNERS_TABLE"]
    for item in client.scan(TableName=table, ProjectionExpression="partner_id")["Items"]:
        client.delete_item(TableName=table, Key=item)
    partners.forget()  # deleted behind the versions' back
    clear_usage()


def clear_usage() -> None:
    """None of the cap counters or dedupe records of the sales before."""
    client = _aws_dynamodb(os.environ["AWS_ENDPOINT_URL"])
    pages = client.get_paginator("scan").paginate(
        TableName=os.environ["COUNTERS_TABLE"],
        ProjectionExpression="#c",
        FilterExpression="begins_with(#c, :cap) OR begins_with(#c, :dedupe)",
        ExpressionAttributeNames={"#c": "counter"},
        ExpressionAttributeValues={":cap": {"S": "cap#"}, ":dedupe": {"S": "dedupe#"}},
    )
    for item in (item for page in pages for item in page["Items"]):
        client.delete_item(TableName=os.environ["COUNTERS_TABLE"], Key=item)


# The partners table as `demo_seed` last left it in this process: (partner_id, change) pairs.
_demo_left: dict[str, frozenset[tuple[str, str]]] = {}


def demo_seed() -> None:
    """The demo seed's vendors and partners, as `make run` seeds them. The partners are written
    (over none, their cap usage cleared) only when the partners table is not as the last call
    left it: a partner written, added or deleted since (each write of one is a transaction and
    a new version, and most tests change no partner)."""
    from pingpost_local import seed

    demo = _demo()
    seed.apply(seed.Seed(vendors=demo.vendors))
    if _demo_left.get(os.environ["AWS_ENDPOINT_URL"]) != _partner_changes():
        clear_partners()
        seed.apply(seed.Seed(partners=demo.partners))
        _demo_left[os.environ["AWS_ENDPOINT_URL"]] = _partner_changes()


@cache
def _demo() -> Any:
    from pingpost_local import seed

    return seed.load(DEMO_SEED)


def _partner_changes() -> frozenset[tuple[str, str]]:
    """Each partner of the partners table with the version that wrote it."""
    client = _aws_dynamodb(os.environ["AWS_ENDPOINT_URL"])
    pages = client.get_paginator("scan").paginate(
        TableName=os.environ["PARTNERS_TABLE"],
        ConsistentRead=True,
        ProjectionExpression="partner_id, #c",
        ExpressionAttributeNames={"#c": "change"},
    )
    items = (item for page in pages for item in page["Items"])
    return frozenset((i["partner_id"]["N"], i.get("change", {}).get("N", "")) for i in items)


@pytest.fixture(scope="module")
def aws_endpoint() -> Iterator[str]:
    """An embedded AWS endpoint of the test module's own, with nothing created in it."""
    from pingpost_local.embedded_aws import start_aws_endpoint

    server, url = start_aws_endpoint()
    try:
        yield url
    finally:
        server.stop()


def _client(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _dynamodb(endpoint: str) -> Any:
    return _client("dynamodb", endpoint)


@cache
def _aws_dynamodb(endpoint: str) -> Any:
    """One client of the endpoint in the environment's region and credentials, for the helpers
    here (a client costs tens of ms to make)."""
    import boto3

    return boto3.client("dynamodb", endpoint_url=endpoint)


def _sqs(endpoint: str) -> Any:
    return _client("sqs", endpoint)


@dataclass
class Serving:
    """`serve()` running in a thread of the test process."""

    thread: threading.Thread
    stop: threading.Event
    url: str
    errors: list[BaseException]


def serve_in_thread(
    template: Path, seed: Callable[[], None] | None = None, **options: Any
) -> Serving:
    """Start `pingpost_local.server.serve` on port 0 in a thread; return once it listens."""
    from pingpost_local.server import serve

    ready: list[str] = []
    listening = threading.Event()
    stop = threading.Event()
    errors: list[BaseException] = []

    def on_ready(url: str) -> None:
        ready.append(url)
        listening.set()

    def run() -> None:
        try:
            serve(0, template, seed, on_ready=on_ready, stop_event=stop, **options)
        except BaseException as error:
            errors.append(error)
            listening.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    listening.wait(timeout=120)
    if errors:
        raise errors[0]
    return Serving(thread, stop, ready[0], errors)


@dataclass(frozen=True)
class Server:
    """`pingpost serve` in a process of its own: its URL, its AWS endpoint, what it printed."""

    url: str
    aws: str
    output: list[str]

    def dynamodb(self) -> Any:
        """A DynamoDB client of the server's AWS endpoint."""
        import boto3

        return boto3.client(
            "dynamodb",
            endpoint_url=self.aws,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def exports(self) -> dict[str, str]:
        """The variables of the `export ...` line the banner gives operator commands."""
        line = next(text for text in self.output if "Operator commands" in text)
        return dict(pair.split("=", 1) for pair in line.split("export ", 1)[1].split())

    def pingpost(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """`pingpost ARGUMENTS` from another shell, after the banner's `export ...` line."""
        import sys

        environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        return subprocess.run(
            [sys.executable, "-m", "pingpost_local.cli", *arguments],
            env=environment | self.exports(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def local_function(function_id: str) -> Any:
    """A function of template.yaml run in this process, as the local runner runs it."""
    from pingpost_local.functions import in_this_environment

    return in_this_environment(TEMPLATE, function_id)


@contextmanager
def serve_process(*options: str, env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """Run `pingpost serve --port 0 --seed demo/seed.json OPTIONS...` until the block ends,
    with the variables of `env` besides the tests' own."""
    import re
    import signal
    import subprocess
    import sys

    variables = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    variables |= {"PYTHONUNBUFFERED": "1", "POWERTOOLS_METRICS_DISABLED": "true"}
    for name in ("LEADS_TABLE", "VENDORS_TABLE", "PARTNERS_TABLE", "COUNTERS_TABLE"):
        variables.pop(name, None)
    variables |= env or {}
    command = [
        "-m",
        "pingpost_local.cli",
        "serve",
        "--port",
        "0",
        "--seed",
        str(DEMO_SEED),
        *options,
    ]
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        env=variables,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    url = aws = ""
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line)
        if found := re.search(r"AWS endpoint: (\S+)", line):
            aws = found.group(1)
        if found := re.search(r"listening on (\S+)", line):
            url = found.group(1)
        if "curl" in line:  # the seed is loaded
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


def made_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]
) -> Path:
    """A folder `make` fills once per test run: the parallel workers share it (the first one
    to ask makes it while the others wait), so a costly build or measurement is not repeated
    by each worker that runs one of its tests."""
    import fcntl
    import shutil

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's own folder, above each worker's
    where = base / f"once-{name}"
    with (base / f"once-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (where / ".made").exists():
            shutil.rmtree(where, ignore_errors=True)
            where.mkdir()
            make(where)
            (where / ".made").touch()
    return where


def run_bench(name: str, *args: str) -> str:
    """What `bench/<name>.py ARGS` prints; the test fails with its errors if it fails."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def trusting(hosts: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For a fixture: the operator trusts these hosts (DELIVERY_HTTP_HOSTS) until it ends."""
    from pingpost.config import settings

    monkeypatch.setenv("DELIVERY_HTTP_HOSTS", hosts)
    settings.cache_clear()
    yield
    monkeypatch.undo()
    settings.cache_clear()


def counter_item(key: str) -> dict[str, Any]:
    """An item of the counters table as it is now (read consistently), {} when there is none."""
    import boto3

    from pingpost.store import from_item

    item = boto3.client("dynamodb").get_item(
        TableName=os.environ["COUNTERS_TABLE"], Key={"counter": {"S": key}}, ConsistentRead=True
    )
    return from_item(item.get("Item", {}))


_FIGURES: dict[str, Any] = {}


def count_figures() -> int:
    """Hand the figures function every write of a lead so far, as the leads table's stream
    feeds it on AWS within seconds: for a test about to read day figures. The records counted."""
    import boto3

    from pingpost.config import settings
    from pingpost_local.streams import StreamPoller, StreamSource

    table = boto3.client("dynamodb").describe_table(TableName=settings().leads_table)["Table"]
    arn = table["LatestStreamArn"]
    if arn not in _FIGURES:
        source = StreamSource("FiguresFunction", "Leads", "LeadsTable", batch_size=1000)
        _FIGURES[arn] = StreamPoller(source, local_function("FiguresFunction"), arn, quiet=True)
    handled: int = _FIGURES[arn].drain()
    return handled
