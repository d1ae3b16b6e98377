"""Shared fixtures: the embedded AWS endpoint with the template's own tables and queues."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_DEV", "false")


@pytest.fixture(scope="session")
def aws() -> Iterator[str]:
    """An embedded AWS endpoint (moto server mode) with every table and queue of template.yaml."""
    import boto3

    from pingpost.local.server import start_aws_endpoint
    from pingpost.local.template import (
        create_resources,
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


@pytest.fixture(scope="module")
def aws_endpoint() -> Iterator[str]:
    """An embedded AWS endpoint of the test module's own, with nothing created in it."""
    from pingpost.local.server import start_aws_endpoint

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
    """Start `pingpost.local.server.serve` on port 0 in a thread; return once it listens."""
    from pingpost.local.server import serve

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
