"""pingpost_local.client and `pingpost ping|post|full|send`, against the exchange `pingpost
serve` runs, and against tiny HTTP servers of the tests' own for what it never answers
(503 and 429 in a row, a hang, an answer that is not the API's)."""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from pingpost.fields import FIELDS
from pingpost_local import cli
from pingpost_local.client import (
    CONTROL_FIELDS,
    ENCODINGS,
    OWN_FIELDS,
    AuthenticationFailed,
    Client,
    Encoding,
    RateLimited,
    Refused,
    TransportError,
    Unavailable,
    UnreadableAnswer,
    backoff_wait,
    retry_after,
)
from tests.conftest import ROOT, Server
from tests.leads import KEY, complete

pytestmark = pytest.mark.e2e

CLIENT = ROOT / "local" / "pingpost_local" / "client.py"


def lead_fields(mode: str, **changes: str) -> dict[str, str]:
    """A lead for `mode` without the fields the client sends itself."""
    return {k: v for k, v in complete(mode, **changes).items() if k not in OWN_FIELDS}


def stored(server: Server, lead_id: int) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    item = server.dynamodb().get_item(TableName="LeadsTable", Key={"lead_id": {"N": str(lead_id)}})
    return {k: TypeDeserializer().deserialize(v) for k, v in item["Item"].items()}


# What the client may import.


def _modules(code: str) -> set[str]:
    shown = subprocess.run(
        [sys.executable, "-c", f"import sys; {code}; print(' '.join(sys.modules))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(shown.stdout.split())


def test_the_client_imports_only_the_standard_library_requests_and_lxml() -> None:
    # Its own import statements name nothing else
    tree = ast.parse(CLIENT.read_text())
    named = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    named |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    tops = {name.split(".")[0] for name in named}
    assert tops - set(sys.stdlib_module_names) == {"requests", "lxml"}
    # And importing it loads nothing beyond what requests and lxml load, but the standard library
    baseline = _modules("import requests, lxml.etree")
    loaded = _modules("import pingpost_local.client")
    extra = {name.split(".")[0] for name in loaded - baseline}
    assert extra - set(sys.stdlib_module_names) == {"pingpost_local"}
    assert {n for n in loaded if n.startswith("pingpost")} == {
        "pingpost_local",
        "pingpost_local.client",
    }


def test_the_xml_request_puts_at_the_top_exactly_the_field_tables_control_tags() -> None:
    assert {f.name for f in FIELDS if f.control} == CONTROL_FIELDS


# The exchange's answers, each encoding.


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_ping_then_post_sells_the_lead(server: Server, encoding: Encoding) -> None:
    with Client(server.url, KEY, encoding) as client:
        pinged = client.ping(**lead_fields("ping"))
        assert (pinged.status, pinged.matched, pinged.price) == ("Matched", True, None)
        posted = client.post(pinged.lead_id, **lead_fields("post"))
    assert (posted.status, posted.lead_id) == ("Matched", pinged.lead_id)
    assert stored(server, posted.lead_id)["status"] == "sold"
    # The raw answer is kept, in the format the encoding asked for
    assert posted.answer.lstrip().startswith("{" if encoding == "json" else "<?xml")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_full_answers_price_matches_and_an_unmatched_lead(
    server: Server, encoding: Encoding
) -> None:
    with Client(server.url, KEY, encoding) as client:
        sold = client.full(**lead_fields("full", Return_Best_Price="1", Allowed_Times_Sold="2"))
        unmatched = client.full(**lead_fields("full", Cost="50"))  # above every partner's price
    assert (sold.status, str(sold.price), sold.matches) == (
        "Matched",
        "10.00",
        2,
    )  # the demo's cost
    assert sorted(stored(server, sold.lead_id)["sold_to"]) == ["142", "1543"]
    assert (unmatched.status, unmatched.matched) == ("Unmatched", False)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_ping_answers_the_partners_hashes_when_asked(server: Server, encoding: Encoding) -> None:
    asked = lead_fields("ping", Return_Hash_Type="md5", Return_Hash_Value_Type="company")
    with Client(server.url, KEY, encoding) as client:
        pinged = client.ping(**asked)
    assert {(h.value_type, h.hash_type) for h in pinged.hashes} == {("company", "md5")}
    assert hashlib.md5(b"roof co").hexdigest() in {h.value for h in pinged.hashes}  # normalised


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_refused_field_is_named(server: Server, encoding: Encoding) -> None:
    with Client(server.url, KEY, encoding) as client, pytest.raises(Refused) as refused:
        client.full(**lead_fields("full", Zip="00000"))
    assert refused.value.status == 400
    assert refused.value.message == "Invalid value for Zip: is not an existing US ZIP code"
    assert "Zip" in refused.value.answer


def test_the_client_refuses_fields_it_sends_itself(server: Server) -> None:
    with Client(server.url, KEY) as client, pytest.raises(ValueError, match="Key, Mode"):
        client.ping(Key="other", Mode="post", Zip="60610")


# Vendors of these tests' own, seeded into the running exchange.
DISABLED_KEY = "client-disabled-key-0123456789"
QUIET_KEY = "client-quiet-key-0123456789"  # success_error answers, errors with HTTP 200
LIMITED_KEY = "client-limited-key-0123456789"  # one request a second


@pytest.fixture(scope="module")
def vendors(server: Server, tmp_path_factory: pytest.TempPathFactory) -> None:
    seed = tmp_path_factory.mktemp("vendors") / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "vendors": [
                    {"id": "client-disabled", "key": DISABLED_KEY, "cost": 10, "active": False},
                    {
                        "id": "client-quiet",
                        "key": QUIET_KEY,
                        "cost": 10,
                        "response_style": "success_error",
                        "http_errors": False,
                    },
                    {"id": "client-limited", "key": LIMITED_KEY, "cost": 10, "rate_limit": 1},
                ]
            }
        )
    )
    # `pingpost seed` with the variables `pingpost serve` printed for operator commands
    line = next(text for text in server.output if "Operator commands" in text)
    exports = dict(pair.split("=", 1) for pair in line.split("export ", 1)[1].split())
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    subprocess.run(
        [sys.executable, "-m", "pingpost_local.cli", "seed", str(seed)],
        env=environment | exports,
        timeout=60,
        check=True,
        capture_output=True,
    )


def test_an_unknown_key_and_a_disabled_vendor_fail_authentication(
    server: Server, vendors: None
) -> None:
    for key, status, message in [
        ("no-such-key-0123456789", 401, "Invalid Key"),
        (DISABLED_KEY, 403, "This Key's vendor account is disabled"),
    ]:
        with Client(server.url, key) as client, pytest.raises(AuthenticationFailed) as refused:
            client.ping(**lead_fields("ping"))
        assert (refused.value.status, refused.value.message) == (status, message)


def test_a_vendor_told_errors_with_200_and_only_success(server: Server, vendors: None) -> None:
    with Client(server.url, QUIET_KEY) as client:
        accepted = client.full(**lead_fields("full"))
        with pytest.raises(Refused) as refused:
            client.full(**lead_fields("full", Zip="00000"))
    assert (accepted.status, accepted.matched) == ("Success", True)
    assert stored(server, accepted.lead_id)["status"] == "sold"
    assert (refused.value.status, refused.value.message) == (
        200,
        "Invalid value for Zip: is not an existing US ZIP code",
    )


def test_the_exchanges_429_is_waited_out(server: Server, vendors: None) -> None:
    limited = sum(" 429 " in line for line in server.output)
    started = time.monotonic()
    with Client(server.url, LIMITED_KEY, encoding="json") as client:
        answers = [client.ping(**lead_fields("ping")) for _ in range(3)]
    assert [a.status for a in answers] == ["Matched"] * 3
    # At one request a second, the second and third waited for the next second (Retry-After: 1)
    assert sum(" 429 " in line for line in server.output) > limited
    assert time.monotonic() - started >= 1


# Retries and bad answers, from a server of the test's own.

MATCHED = (
    b'<?xml version="1.0"?>\n<response><status>Matched</status><lead_id>7</lead_id></response>'
)
ERROR = b"<response><status>Error</status><error>%s</error></response>"


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` on a loopback port in a thread, quiet, until the block ends: its URL."""

    class Quiet(handler):  # type: ignore[valid-type,misc]
        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class Scripted:
    """What a scripted server was asked: each request's headers, and when it came."""

    url: str
    seen: list[dict[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


@contextmanager
def scripted(*answers: tuple[int, dict[str, str], bytes], delay: float = 0) -> Iterator[Scripted]:
    """An HTTP server on 127.0.0.1 giving `answers` in turn (the last one again and again)."""
    state: Scripted

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.seen.append(dict(self.headers))
            state.times.append(time.monotonic())
            status, headers, body = answers[min(len(state.seen), len(answers)) - 1]
            time.sleep(delay)
            self.send_response(status)
            for name, value in (headers | {"Content-Length": str(len(body))}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    with _serving(Handler) as url:
        state = Scripted(url)
        yield state


def test_503_is_retried_with_the_same_idempotency_key() -> None:
    with scripted((503, {}, ERROR % b"busy"), (503, {}, b""), (200, {}, MATCHED)) as server:
        client = Client(server.url, KEY, backoff=0.05)
        assert client.full(Zip="60610").lead_id == 7
        client.full(Zip="60610")
    keys = [seen["Idempotency-Key"] for seen in server.seen]
    assert len(keys) == 4 and len(set(keys[:3])) == 1 and keys[3] != keys[0]


def test_429_waits_what_retry_after_says() -> None:
    busy = (429, {"Retry-After": "1"}, ERROR % b"Too many requests")
    with scripted(busy, (200, {}, MATCHED)) as server:
        # Its own backoff would wait 5 to 10 s: Retry-After is honoured instead
        Client(server.url, KEY, backoff=10).ping(Zip="60610")
    assert len(server.seen) == 2
    assert 1.0 <= server.times[1] - server.times[0] < 2.0


@pytest.mark.parametrize(
    ("status", "error"), [(500, Refused), (400, Refused), (403, AuthenticationFailed)]
)
def test_other_statuses_are_not_retried(status: int, error: type[Refused]) -> None:
    answers = (status, {}, ERROR % b"no"), (200, {}, MATCHED)
    with scripted(*answers) as server, pytest.raises(error) as raised:
        Client(server.url, KEY, backoff=0.01).full(Zip="60610")
    assert (raised.value.status, raised.value.message, len(server.seen)) == (status, "no", 1)


@pytest.mark.parametrize(("status", "error"), [(503, Unavailable), (429, RateLimited)])
def test_retries_end(status: int, error: type[Exception]) -> None:
    exhausted = f"HTTP {status} after 3 attempts: still busy"
    with (
        scripted((status, {}, ERROR % b"still busy")) as server,
        pytest.raises(error, match=exhausted),
    ):
        Client(server.url, KEY, retries=2, backoff=0.01).full(Zip="60610")
    assert len(server.seen) == 3


def test_a_wait_over_the_budget_is_not_waited() -> None:
    with scripted((429, {"Retry-After": "120"}, b"")) as server:
        started = time.monotonic()
        with pytest.raises(RateLimited):
            Client(server.url, KEY, max_wait=5).full(Zip="60610")
    assert time.monotonic() - started < 1 and len(server.seen) == 1


def test_backoff_grows_with_jitter_and_retry_after_reads_dates() -> None:
    waits = [[backoff_wait(attempt, 1.0, None) for _ in range(50)] for attempt in (1, 2, 3)]
    for attempt, drawn in enumerate(waits, 1):
        ceiling = 2.0 ** (attempt - 1)
        assert all(ceiling / 2 <= w <= ceiling for w in drawn) and len(set(drawn)) > 1
    assert backoff_wait(3, 1.0, 0.25) == 0.25
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert retry_after("Thu, 01 Jan 2026 00:00:07 GMT", now) == 7
    assert (retry_after("3"), retry_after(""), retry_after("soon")) == (3, None, None)


# Read with its entity, this would be a Matched answer: it must not be read so.
ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE response [<!ENTITY id "7">]>
<response><status>Matched</status><lead_id>&id;</lead_id></response>"""


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>Bad gateway</body></html>",
        b'{"message": "Not Found"}',
        ENTITY,
        b"<response><status>Maybe</status><lead_id>1</lead_id></response>",
        b"<response><status>Matched</status><lead_id>one</lead_id></response>",
        MATCHED + b" " * (1 << 20),
    ],
    ids=["html", "json", "entities", "status", "lead_id", "too-large"],
)
def test_an_answer_not_the_apis_is_unreadable(body: bytes) -> None:
    with scripted((200, {}, body)) as server, pytest.raises(UnreadableAnswer):
        Client(server.url, KEY).full(Zip="60610")


def test_no_answer_is_a_transport_error_and_not_retried() -> None:
    with scripted((200, {}, MATCHED), delay=2) as server, pytest.raises(TransportError):
        Client(server.url, KEY, timeout=0.3).full(Zip="60610")
    assert len(server.seen) == 1
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(TransportError):
        Client(f"http://127.0.0.1:{port}", KEY).full(Zip="60610")


# The command line.


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`pingpost ARGS` in this process: its exit status, stdout and stderr."""
    code = 0
    try:
        cli.main(list(args))
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def _arguments(fields: dict[str, str]) -> list[str]:
    return [f"{name}={value}" for name, value in fields.items()]


def test_the_commands_print_the_answer_and_exit_with_its_status(
    server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    at = ["--url", server.url, "--key", KEY]
    code, out, _ = run_cli(capsys, "ping", *at, *_arguments(lead_fields("ping")))
    status, lead_id = out.split()
    assert (code, status) == (0, "Matched")
    post = [f"Lead_ID={lead_id}", *_arguments(lead_fields("post"))]
    assert run_cli(capsys, "post", *at, "--encoding", "xml", *post)[:2] == (
        0,
        f"Matched {lead_id}\n",
    )
    code, out, _ = run_cli(capsys, "full", *at, *_arguments(lead_fields("full", Cost="50")))
    assert (code, out.split()[0]) == (1, "Unmatched")
    refused = _arguments(lead_fields("ping", Zip="00000"))
    code, out, _ = run_cli(capsys, "ping", *at, "--encoding", "json", *refused)
    assert (code, out) == (3, "Error: Invalid value for Zip: is not an existing US ZIP code\n")
    code, out, _ = run_cli(capsys, "ping", "--url", server.url, "--key", "wrong-key-0123456789")
    assert (code, out) == (3, "Error: Invalid Key\n")
    # Usage errors: no Key anywhere, a field that is not Name=value, a post without Lead_ID
    monkeypatch.delenv("PINGPOST_KEY", raising=False)
    assert run_cli(capsys, "ping", "--url", server.url)[0] == 2
    assert run_cli(capsys, "ping", *at, "Zip")[0] == 2
    assert run_cli(capsys, "post", *at, "Zip=60610")[0] == 2
    assert run_cli(capsys, "ping", *at, "Key=other")[0] == 2


def test_no_answer_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    with scripted((503, {}, ERROR % b"storage is busy")) as server:
        code, out, _ = run_cli(capsys, "full", "--url", server.url, "--key", KEY, "--retries", "0")
    assert (code, out) == (4, "Error: HTTP 503 after 1 attempt: storage is busy\n")


def test_the_command_reads_url_and_key_from_the_environment(server: Server) -> None:
    environment = os.environ | {"PINGPOST_URL": server.url, "PINGPOST_KEY": KEY}
    done = subprocess.run(
        [sys.executable, "-m", "pingpost_local.cli", "full", *_arguments(lead_fields("full"))],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Matched ")
    shown = subprocess.run(
        [sys.executable, "-m", "pingpost_local.cli", "ping", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "exit status: 0 Matched" in shown.stdout and "4 no answer" in shown.stdout


# Sending a file of leads.


def write_leads(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = list(dict.fromkeys(name for row in rows for name in row))
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def results(out: Path) -> list[dict[str, str]]:
    with out.open(newline="") as file:
        return list(csv.DictReader(file))


def test_send_answers_every_row_and_a_second_run_sends_nothing(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        lead_fields("full"),
        lead_fields("full", Zip="00000"),
        lead_fields("full", Cost="50"),
        lead_fields("full"),
    ]
    leads = write_leads(tmp_path / "leads.csv", rows)
    out = tmp_path / "results.csv"
    command = ["send", str(leads), "--url", server.url, "--key", KEY, "--out", str(out)]

    code, _, err = run_cli(capsys, *command, "--workers", "3")

    assert code == 0, err
    answered = results(out)
    assert [(r["row"], r["status"]) for r in answered] == [
        ("1", "Matched"),
        ("2", "Error"),
        ("3", "Unmatched"),
        ("4", "Matched"),
    ]
    assert answered[1] == {
        "row": "2",
        "status": "Error",
        "lead_id": "",
        "error": "Invalid value for Zip: is not an existing US ZIP code",
    }
    assert stored(server, int(answered[0]["lead_id"]))["data"]["Email"] == rows[0]["Email"]
    assert "1 Error, 2 Matched, 1 Unmatched" in err
    # Run again: every row has its answer, nothing is sent and the results stay as they were
    before = out.read_text()
    code, _, err = run_cli(capsys, *command)
    assert code == 0 and "4 rows, 4 answered before, sending 0" in err
    assert out.read_text() == before
    # --mode ping pings each row; an --out that cannot be written is a usage error
    pinged = tmp_path / "pinged.csv"
    code, _, err = run_cli(capsys, *command[:-1], str(pinged), "--mode", "ping")
    assert [r["status"] for r in results(pinged)] == ["Matched", "Error", "Unmatched", "Matched"]
    assert stored(server, int(results(pinged)[0]["lead_id"]))["status"] == "pinged"
    assert run_cli(capsys, *command[:-1], str(tmp_path / "no" / "such.csv"))[0] == 2


def test_send_resends_a_row_whose_result_line_was_cut_short(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given results of a killed run: row 1 answered, row 2's line cut in the middle
    leads = write_leads(tmp_path / "leads.csv", [lead_fields("full"), lead_fields("full")])
    out = tmp_path / "results.csv"
    out.write_bytes(b"row,status,lead_id,error\r\n1,Matched,5,\r\n2,Matc")
    command = ["send", str(leads), "--url", server.url, "--key", KEY, "--out", str(out)]
    code, _, err = run_cli(capsys, *command)
    assert code == 0, err
    assert [(r["row"], r["status"]) for r in results(out)] == [("1", "Matched"), ("2", "Matched")]
    assert results(out)[0]["lead_id"] == "5"  # not sent again
    # A result file of other columns is not taken for one
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert run_cli(capsys, *command[:-1], str(tmp_path / "other.csv"))[0] == 2


def test_send_stops_at_a_refused_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leads = write_leads(tmp_path / "leads.csv", [lead_fields("full") for _ in range(4)])
    out = tmp_path / "results.csv"
    with scripted((401, {}, ERROR % b"Invalid Key")) as exchange:
        command = ["send", str(leads), "--url", exchange.url, "--key", "k", "--out", str(out)]
        code, _, err = run_cli(capsys, *command, "--workers", "1")
    # Every row would be refused the same: one was sent, the others are left for the next run
    assert (code, len(exchange.seen)) == (3, 1)
    assert "Error: Invalid Key" in err
    assert [(r["row"], r["status"], r["error"]) for r in results(out)] == [
        ("1", "Unanswered", "Invalid Key"),
        ("2", "Unanswered", "not sent"),
        ("3", "Unanswered", "not sent"),
        ("4", "Unanswered", "not sent"),
    ]


def test_send_draws_a_progress_bar_on_a_terminal(server: Server, tmp_path: Path) -> None:
    import pty

    leads = write_leads(tmp_path / "leads.csv", [lead_fields("full"), lead_fields("full")])
    out = tmp_path / "results.csv"
    terminal, stderr = pty.openpty()
    command = ["send", str(leads), "--url", server.url, "--key", KEY, "--out", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-m", "pingpost_local.cli", *command],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env=os.environ | {"COLUMNS": "80", "TERM": "xterm"},
    )
    os.close(stderr)
    shown = b""
    while chunk := _read(terminal):
        shown += chunk
    assert process.wait(30) == 0, shown
    assert b"sending" in shown and b"2/2" in shown
    assert [r["status"] for r in results(out)] == ["Matched", "Matched"]


def _read(terminal: int) -> bytes:
    try:
        return os.read(terminal, 4096)
    except OSError:  # the other end closed
        return b""


@dataclass
class Proxy:
    """A proxy to the exchange that can hold the answer to a request marked HOLD-ME."""

    url: str
    hold: bool = True
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    answers: list[bytes] = field(default_factory=list)  # every answer the exchange gave


@contextmanager
def proxy(target: str) -> Iterator[Proxy]:
    """While `hold`, a request marked HOLD-ME reaches the exchange (the lead is sold), but its
    answer is kept from the client until `release`: the client's run dies waiting for it."""
    state: Proxy

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            names = ("Content-Type", "Accept", "Idempotency-Key")
            headers = {name: self.headers[name] for name in names if self.headers[name]}
            answer = requests.post(target + self.path, data=body, headers=headers, timeout=30)
            state.answers.append(answer.content)
            if state.hold and b"HOLD-ME" in body:
                state.held.set()
                state.release.wait(30)
            try:
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers["Content-Type"])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client was killed while the answer was held: nobody to tell

    with _serving(Handler) as url:
        state = Proxy(url)
        try:
            yield state
        finally:
            state.release.set()


def test_an_interrupted_send_resumes_and_sells_no_lead_twice(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a file whose third lead's answer never reaches the first run, killed while waiting
    rows = [lead_fields("full", Comments="HOLD-ME" if n == 3 else "") for n in range(1, 6)]
    leads = write_leads(tmp_path / "leads.csv", rows)
    out = tmp_path / "results.csv"
    with proxy(server.url) as middle:
        command = ["send", str(leads), "--url", middle.url, "--key", KEY, "--out", str(out)]
        first = subprocess.Popen(
            [sys.executable, "-m", "pingpost_local.cli", *command, "--workers", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert middle.held.wait(60), "the held lead was never sent"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        held = middle.answers[-1]
        answered_first = results(out) if out.exists() and out.stat().st_size else []
        assert {r["row"] for r in answered_first} <= {"1", "2"}

        # When the same command runs again
        middle.hold = False
        middle.answers.clear()
        code, _, err = run_cli(capsys, *command, "--workers", "2")

    # Then it sent only the rows the first run did not record, the held one with the same
    # Idempotency-Key: the exchange answered the lead it had sold, and sold nothing again
    assert code == 0, err
    assert len(middle.answers) == 5 - len(answered_first)
    answered = results(out)
    assert [(r["row"], r["status"]) for r in answered] == [(str(n), "Matched") for n in range(1, 6)]
    assert f"<lead_id>{answered[2]['lead_id']}</lead_id>".encode() in held
    for row, result in zip(rows, answered, strict=True):
        lead = stored(server, int(result["lead_id"]))
        assert (lead["data"]["Email"], lead["status"], len(lead["sold_to"])) == (
            row["Email"],
            "sold",
            1,
        )
    emails = {row["Email"] for row in rows}
    pages = server.dynamodb().get_paginator("scan").paginate(TableName="LeadsTable")
    leads_of_these = [
        item
        for page in pages
        for item in page["Items"]
        if item.get("data", {}).get("M", {}).get("Email", {}).get("S") in emails
    ]
    assert len(leads_of_these) == 5
