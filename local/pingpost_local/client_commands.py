"""`pingpost ping|post|full|send`: call an exchange from the command line, a lead or a file.

The exit status says what happened, so scripts need not read the output:
0 Matched (or Success), 1 Unmatched, 2 a usage error, 3 refused by the exchange (a field, the
Key, the lead: sending it again would not help), 4 no answer of the API (rate limited or
unavailable after the retries, no connection, a timeout, an answer that is not the API's):
the same command may work later.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pingpost_local.client import (
    ENCODINGS,
    OWN_FIELDS,
    AuthenticationFailed,
    Client,
    PingPostError,
    Refused,
    Result,
)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

MATCHED, UNMATCHED, USAGE, REFUSED, NO_ANSWER = 0, 1, 2, 3, 4
INTERRUPTED = 130  # the shell's code for Ctrl-C
EXIT_CODES = (
    "exit status: 0 Matched (or Success), 1 Unmatched, 2 usage error, 3 refused by the exchange"
    " (a field, the Key, the lead), 4 no answer of the API (429/503 after retries, no"
    " connection, timeout, an answer that is not the API's)"
)
SEND_CODES = (
    "exit status: 0 every row has its final answer (Matched, Unmatched or Error: see --out),"
    " 2 usage error, 3 the Key was refused (nothing more is sent), 4 some rows are Unanswered"
    " (run the same command again to resend them), 130 interrupted"
)
RESULT_COLUMNS = ("row", "status", "lead_id", "error")
FINAL = frozenset({"Matched", "Unmatched", "Success", "Error"})
UNANSWERED = "Unanswered"


def _field(text: str) -> tuple[str, str]:
    """A `Name=value` argument."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not Name=value")
    return name, value


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError("a number of requests at once, 1 to 64")
    return int(text)


def _client(args: argparse.Namespace) -> Client:
    return Client(
        args.url, args.key, args.encoding, args.timeout, args.retries, lead_type=args.type
    )


def final(error: Refused) -> bool:
    """Whether a refusal is the lead's final answer: a 4xx about the lead, not the Key (the next
    run may have the right one) nor a 409 (another request held the lead: retry)."""
    return 400 <= error.status < 500 and error.status not in (401, 403, 409)


def _line(result: Result) -> str:
    extra = [f"price={result.price}"] if result.price is not None else []
    extra += [f"matches={result.matches}"] if result.matches is not None else []
    extra += [f"hash={h.value_type}:{h.hash_type}:{h.value}" for h in result.hashes]
    return " ".join([result.status, str(result.lead_id), *extra])


def call(args: argparse.Namespace) -> None:
    """Send one lead; print `Matched ID`, `Unmatched ID` or `Error: message` on stdout."""
    fields = dict(args.fields)
    lead_id: int | None = None
    if args.command == "post":
        text = fields.pop("Lead_ID", "")
        if not text.isdigit():
            print(
                f"pingpost post: give the ping's lead_id as Lead_ID=N, not {text!r}",
                file=sys.stderr,
            )
            raise SystemExit(USAGE)
        lead_id = int(text)
    with _client(args) as client:
        try:
            result = client.call(args.command, fields, lead_id=lead_id)
        except ValueError as error:  # a field the client sends itself
            print(f"pingpost {args.command}: {error}", file=sys.stderr)
            raise SystemExit(USAGE) from None
        except PingPostError as error:
            print(f"Error: {error.message if isinstance(error, Refused) else error}")
            raise SystemExit(REFUSED if isinstance(error, Refused) else NO_ANSWER) from None
    print(_line(result))
    if not result.matched:
        raise SystemExit(UNMATCHED)


def idempotency_key(source: Path, number: int, row: Mapping[str, str]) -> str:
    """The Idempotency-Key of a row: the same file, row number and content, the same key, so a
    row resent after an interruption is answered as the first time, never sold twice."""
    identity = json.dumps([str(source.resolve()), number, sorted(row.items())])
    return "pingpost-send-" + hashlib.sha256(identity.encode()).hexdigest()


def read_leads(source: Path) -> list[tuple[int, dict[str, str]]]:
    """The rows of a CSV of leads, numbered from 1 after the header, empty cells left out."""
    with source.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        header = reader.fieldnames or []
        own = sorted(set(OWN_FIELDS) & set(header))
        if own or not header or "" in header:
            raise ValueError(f"bad header (the client sends {', '.join(OWN_FIELDS)} itself)")
        rows = []
        for number, row in enumerate(reader, 1):
            if None in row:
                raise ValueError(f"row {number} has more cells than the header")
            rows.append((number, {k: v for k, v in row.items() if v}))
    return rows


def read_results(out: Path) -> dict[int, dict[str, str]]:
    """The last result of each row an earlier run wrote (rows are appended as answered)."""
    if not out.exists():
        return {}
    with out.open(newline="") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames and tuple(reader.fieldnames) != RESULT_COLUMNS:
            raise ValueError(f"its columns are not {','.join(RESULT_COLUMNS)}")
        return {int(row["row"]): row for row in reader if row.get("row", "").isdigit()}


def _sent(
    client: Client, mode: str, source: Path, number: int, row: dict[str, str]
) -> dict[str, str]:
    """One row sent: its result line (a refused Key is left to stop the run)."""
    line = {"row": str(number), "status": UNANSWERED, "lead_id": "", "error": ""}
    try:
        result = client.call(mode, row, idempotency_key(source, number, row))
    except AuthenticationFailed:
        raise
    except Refused as error:
        return line | {"status": "Error" if final(error) else UNANSWERED, "error": error.message}
    except (PingPostError, ValueError) as error:
        return line | {"error": str(error)}
    return line | {"status": result.status, "lead_id": str(result.lead_id)}


def _write(sink: TextIO, lines: Iterable[Mapping[str, str]], header: bool) -> None:
    writer = csv.DictWriter(sink, RESULT_COLUMNS, extrasaction="ignore")
    if header:
        writer.writeheader()
    writer.writerows(lines)
    sink.flush()  # a killed run keeps every row answered so far


def _compact(out: Path, numbers: Iterable[int]) -> dict[int, dict[str, str]]:
    """Rewrite --out with one line per row, in row order (replaced at once, never half); a
    row not sent (the run stopped) is Unanswered."""
    results = read_results(out)
    for n in numbers:
        results.setdefault(n, {"row": str(n), "status": UNANSWERED, "error": "not sent"})
    spare = out.with_name(out.name + ".tmp")
    with spare.open("w", newline="") as sink:
        _write(sink, (results[n] for n in sorted(results)), header=True)
    os.replace(spare, out)
    return results


def _progress(total: int) -> tuple[Progress, TaskID]:
    """A rich progress bar on stderr, drawn only when stderr is a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    return bar, bar.add_task("sending", total=total)


def _run(
    args: argparse.Namespace, todo: list[tuple[int, dict[str, str]]], stop: threading.Event
) -> str | None:
    """Send the rows on a thread pool, appending each result as it comes; the Key's refusal
    (which every row would get) stops the run and is returned."""
    local = threading.local()
    refused: list[str] = []

    def work(number: int, row: dict[str, str]) -> dict[str, str] | None:
        if stop.is_set():
            return None
        if not hasattr(local, "client"):
            local.client = _client(args)  # a session per thread: requests' are not shared
        try:
            return _sent(local.client, args.mode, args.file, number, row)
        except AuthenticationFailed as error:  # every row would be: send no more
            stop.set()
            refused.append(error.message)
            return {"row": str(number), "status": UNANSWERED, "error": error.message}

    bar, task = _progress(len(todo))
    header = not args.out.exists() or args.out.stat().st_size == 0
    if not header and not args.out.read_bytes().endswith(b"\n"):
        with args.out.open("a") as sink:
            sink.write("\r\n")  # a line cut short by a kill stays a line of its own
    pool = ThreadPoolExecutor(max_workers=args.workers)
    try:
        with args.out.open("a", newline="") as sink, bar:
            futures: list[Future[dict[str, str] | None]] = [
                pool.submit(work, number, row) for number, row in todo
            ]
            for future in as_completed(futures):
                if (line := future.result()) is not None:
                    _write(sink, [line], header)
                    header = False
                bar.advance(task)
    finally:
        stop.set()  # on Ctrl-C, rows not yet started are not sent
        pool.shutdown(wait=False, cancel_futures=True)
    return refused[0] if refused else None


def send(args: argparse.Namespace) -> None:
    """Send a CSV of leads, each row's columns its fields; write each row's result to --out.

    Rows already answered in --out are skipped: after an interruption, the same command
    sends the rest, each row with the Idempotency-Key it had the first time.
    """
    try:
        rows = read_leads(args.file)
        done = read_results(args.out)
    except (OSError, ValueError, csv.Error) as error:
        print(f"pingpost send: {error}", file=sys.stderr)
        raise SystemExit(USAGE) from None
    todo = [(n, row) for n, row in rows if done.get(n, {}).get("status") not in FINAL]
    before = len(rows) - len(todo)
    print(f"{len(rows)} rows, {before} answered before, sending {len(todo)}", file=sys.stderr)
    try:
        refused = _run(args, todo, threading.Event())
    except KeyboardInterrupt:
        print("interrupted: run the same command again to send the rest", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None
    except OSError as error:  # --out cannot be written
        print(f"pingpost send: {error}", file=sys.stderr)
        raise SystemExit(USAGE) from None
    results = _compact(args.out, (n for n, _ in rows))
    counts: dict[str, int] = {}
    for number, _ in rows:
        status = results.get(number, {}).get("status", UNANSWERED)
        counts[status] = counts.get(status, 0) + 1
    print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())), file=sys.stderr)
    if refused is not None:
        print(f"Error: {refused}", file=sys.stderr)
        raise SystemExit(REFUSED)
    if counts.get(UNANSWERED):
        raise SystemExit(NO_ANSWER)


def _connection(command: argparse.ArgumentParser) -> None:
    """--url, --key (defaults from PINGPOST_URL, PINGPOST_KEY), --encoding, --timeout, --retries."""
    url, key = os.environ.get("PINGPOST_URL"), os.environ.get("PINGPOST_KEY")
    command.add_argument(
        "--url", default=url, required=url is None, help="the exchange's base URL ($PINGPOST_URL)"
    )
    command.add_argument(
        "--key", default=key, required=key is None, help="the vendor Key ($PINGPOST_KEY: not in ps)"
    )
    command.add_argument(
        "--encoding",
        choices=ENCODINGS,
        default="form",
        help="form (/api.php, the default), xml (/apiXML.php) or json (/apiJSON.php)",
    )
    command.add_argument("--type", default="7", help="the leads' TYPE (default 7)")
    command.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    command.add_argument("--retries", type=int, default=3, help="of a 429 or 503 (default 3)")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ping, post, full and send on the `pingpost` command."""
    for mode, what in (
        ("ping", "ask whether a partial lead can be sold"),
        ("post", "sell a pinged lead: Lead_ID=N and the rest of its fields"),
        ("full", "ping and post a whole lead in one request"),
    ):
        command = commands.add_parser(mode, help=what, description=what, epilog=EXIT_CODES)
        _connection(command)
        command.add_argument("fields", nargs="*", type=_field, metavar="Field=value")
        command.set_defaults(handler=call)
    sender = commands.add_parser(
        "send", help="send a CSV of leads concurrently, resumably", epilog=SEND_CODES
    )
    _connection(sender)
    sender.add_argument("file", type=Path, help="CSV: a header of field names, a lead a row")
    sender.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the result CSV (row,status,lead_id,error); rows answered there are not sent again",
    )
    sender.add_argument("--workers", type=_workers, default=4, help="requests at once (default 4)")
    sender.add_argument("--mode", choices=("full", "ping"), default="full")
    sender.set_defaults(handler=send)
