"""Warm CPU per request: ping, post and full through their real handlers, storage answered by
botocore's Stubber, against the floor of validating the same fields and rendering an answer.

    .venv/bin/python bench/warm.py --rounds 300

A warm container first (bench/cost.py's exchange on the embedded AWS endpoint: vendors,
partners and a block of lead IDs cached). One request of each kind is then made for real and the
answers of its AWS calls recorded; from there on those answers are handed back by botocore's
Stubber, so no request leaves the process and only this process's CPU is counted
(time.thread_time around the handler: decoding, validation, matching, the answer, and botocore
building each call and reading its answer). The floor, in the same run: a bare Pydantic model of
the same fields (every one a string) validating the request's fields, and lxml building and
serializing a two-element answer; and the request's own AWS calls alone (the same parameters,
the same stubbed answers), what botocore costs any design making those calls. Times are
medians; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def _event(route: str, fields: dict[str, str]) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events" / f"{route}-get.json").read_text())
    event["rawQueryString"] = urlencode(fields)
    event["queryStringParameters"] = fields
    return event


Call = tuple[Any, str, dict[str, Any], dict[str, Any]]


def _recorded(clients: list[Any], action: Any) -> list[Call]:
    """(client, operation, parameters, answer) of every AWS call `action` makes, in order."""
    from botocore import xform_name

    calls: list[Call] = []
    sent: list[dict[str, Any]] = []
    for client in clients:

        def before(params: dict[str, Any], **_: Any) -> None:
            sent.append(dict(params))

        def after(parsed: dict[str, Any], model: Any, _client: Any = client, **_: Any) -> None:
            answer = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
            calls.append((_client, xform_name(model.name), sent.pop(), answer))

        client.meta.events.register("before-parameter-build", before, unique_id="warm-in")
        client.meta.events.register("after-call", after, unique_id="warm-out")
    try:
        action()
    finally:
        for client in clients:
            client.meta.events.unregister("before-parameter-build", unique_id="warm-in")
            client.meta.events.unregister("after-call", unique_id="warm-out")
    return calls


def _cpu(action: Any, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.thread_time()
        action()
        samples.append(time.thread_time() - started)
    return statistics.median(samples)


def measure(rounds: int) -> dict[str, tuple[float, float, float]]:
    """Per kind of request, median seconds of CPU: (the handler, the same AWS calls alone,
    the floor)."""
    import cost
    from botocore.stub import Stubber

    from pingpost.store import dynamodb
    from pingpost.store.queues import sqs
    from pingpost_local.functions import LambdaContext

    os.environ["LEAD_ID_BLOCK"] = "100000"  # no counter write while measuring
    exchange = cost.Exchange()
    try:
        run = cost.Run(exchange)
        ignored = cost.Usage()
        run.pair(ignored, ignored)
        run.full(ignored)
        pinged = cost._lead_id(run.http("ping", run.lead("ping"), ignored)["body"])
        requests = {
            "ping": run.lead("ping"),
            "post": run.lead("post", Lead_ID=str(pinged)),
            "full": run.lead("full"),
        }
        clients = [dynamodb(), sqs()]
        out = {}
        for kind, fields in requests.items():
            handler = run.functions[kind].load()
            event = _event(kind, fields)

            def serve(handler: Any = handler, event: Any = event, kind: str = kind) -> None:
                result = handler(event, LambdaContext(f"{kind.title()}Function", 512, 10))
                assert result["statusCode"] == 200, result["body"]

            calls = _recorded(clients, serve)
            stubs = [Stubber(client) for client in clients]
            by_client = {id(s.client): s for s in stubs}
            for stub in stubs:
                stub.activate()
            try:

                def replayed(
                    serve: Any = serve, calls: Any = calls, stubbed: Any = by_client
                ) -> None:
                    for client, operation, _, answer in calls:
                        stubbed[id(client)].add_response(operation, answer)
                    serve()

                def alone(calls: Any = calls, stubbed: Any = by_client) -> None:
                    for client, operation, params, answer in calls:
                        stubbed[id(client)].add_response(operation, answer)
                        getattr(client, operation)(**params)

                replayed()  # the recorded calls are the calls it makes
                ours = _cpu(replayed, rounds)
                calls_only = _cpu(alone, rounds)
            finally:
                for stub in stubs:
                    stub.deactivate()
            out[kind] = (ours, calls_only, _cpu(_floor(fields), rounds))
        return out
    finally:
        exchange.close()


def _floor(fields: dict[str, str]) -> Any:
    """Validating `fields` with a bare model of as many string fields, and an lxml answer."""
    from lxml import etree
    from pydantic import create_model

    model = create_model("Floor", **{name: (str, ...) for name in fields})  # type: ignore[call-overload]

    def floor() -> None:
        model.model_validate(fields)
        root = etree.Element("response")
        etree.SubElement(root, "status").text = "Matched"
        etree.SubElement(root, "lead_id").text = "1"
        etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    return floor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args(argv)
    print(
        "| request | handler µs | its AWS calls alone µs | floor µs"
        " | handler / floor | handler / (floor + calls) |"
    )
    print("|---|--:|--:|--:|--:|--:|")
    for kind, (ours, calls, floor) in measure(args.rounds).items():
        print(
            f"| {kind} | {ours * 1e6:,.0f} | {calls * 1e6:,.0f} | {floor * 1e6:,.0f}"
            f" | {ours / floor:.0f}x | {ours / (floor + calls):.1f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
