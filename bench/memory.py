"""Peak memory of each function serving requests: what MemorySize is chosen from.

    .venv/bin/python bench/memory.py --requests 200

The exchange's tables and queues are made on an embedded AWS endpoint in this process and
seeded with the demo vendors and partners. Each function then runs in an interpreter of its own
(its folder and the layer's package on the path, as on Lambda), imports its handler and serves
`--requests` events: pings, posts of pinged leads, full requests, the API's full requests, one
delivery per message (to a local partner), and the retry function's scheduled runs. The figure
is the interpreter's peak resident memory (VmHWM) after import and after serving. The
memory a copy of many partners adds is measured by bench/partners.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

CHILD = """
import json, sys
def peak():  # VmHWM: this process's own peak (ru_maxrss keeps the parent's across exec)
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    return int(status.split()[0]) / 1024
import app
imported = peak()
from pingpost_local.functions import LambdaContext as Context
plan = json.loads(sys.stdin.read())
for event in plan["events"]:
    result = app.lambda_handler(event, Context(plan["name"], 512, 10))
    if "statusCode" in result:
        assert result["statusCode"] == 200, result
print(json.dumps([imported, peak()]))
"""


def _event(route: str, fields: dict[str, str]) -> dict[str, object]:
    from urllib.parse import urlencode

    event = json.loads((ROOT / "events" / f"{route}-get.json").read_text())
    event["rawQueryString"] = urlencode(fields)
    event["queryStringParameters"] = fields
    return event


def plans(requests: int) -> dict[str, list[dict[str, object]]]:
    """The events each function serves, made ready against the seeded exchange."""
    import cost

    from pingpost_local.schedules import scheduled_event, schedules
    from pingpost_local.sqs import sqs_event
    from pingpost_local.template import load_template

    exchange = cost.Exchange()
    run = cost.Run(exchange)
    ignored = cost.Usage()
    out: dict[str, list[dict[str, object]]] = {
        "ping": [_event("ping", run.lead("ping")) for _ in range(requests)],
        "full": [_event("full", run.lead("full")) for _ in range(requests)],
        "api": [_event("api", run.lead("full")) for _ in range(requests)],
    }
    pinged = [
        cost._lead_id(run.http("ping", run.lead("ping"), ignored)["body"]) for _ in range(requests)
    ]
    out["post"] = [_event("post", run.lead("post", Lead_ID=str(i))) for i in pinged]
    for _ in range(requests):
        run.full(ignored)
    queue = os.environ["DELIVERY_QUEUE_URL"]
    arn = exchange.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    messages = []
    while got := exchange.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get(
        "Messages"
    ):
        messages += got
    out["deliver"] = [sqs_event([m], arn["Attributes"]["QueueArn"]) for m in messages]
    (source,) = schedules(load_template(ROOT / "template.yaml"))
    out["retry"] = [scheduled_event(source) for _ in range(min(requests, 20))]
    out["_exchange"] = exchange  # type: ignore[assignment]  # kept open while children run
    return out


def in_function(name: str, child: str, given: str, *, timeout: float) -> Any:
    """Run `child` (Python) in an interpreter of its own in the function's folder, with the
    layer's package on the path as on Lambda, `given` on its standard input; what its last
    line of output says (JSON)."""
    env = os.environ | {"PYTHONPATH": f"{ROOT / 'layers' / 'pingpost'}:{ROOT / 'local'}"}
    done = subprocess.run(
        [sys.executable, "-c", child],
        input=given,
        cwd=ROOT / "functions" / name,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def measure(requests: int) -> dict[str, tuple[float, float, int]]:
    """Per function: (MB after import, peak MB after serving, events served)."""
    made = plans(requests)
    exchange = made.pop("_exchange")
    try:
        results = {}
        for name, events in sorted(made.items()):
            plan = json.dumps({"name": f"{name.title()}Function", "events": events})
            imported, peak = in_function(name, CHILD, plan, timeout=900)
            results[name] = (imported, peak, len(events))
        return results
    finally:
        exchange.close()  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    print("| function | MB after import | peak MB serving | events |")
    print("|---|--:|--:|--:|")
    for name, (imported, peak, served) in measure(args.requests).items():
        print(f"| {name} | {imported:.0f} | {peak:.0f} | {served} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
