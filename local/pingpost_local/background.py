"""What the local runner's background parts share: a thread that loops, a server on a thread."""

from __future__ import annotations

import sys
import threading
import traceback
from abc import ABC, abstractmethod
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Final, Self

# Everything the local runner serves listens on loopback only.
LOOPBACK: Final = "127.0.0.1"


class Loop(ABC):
    """Work on a daemon thread until stop() (the SQS pollers, the schedules)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _run(self) -> None:
        """The loop; it returns once self._stop is set."""

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Run in a daemon thread until stop()."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop after the work in hand, without waiting."""
        self._stop.set()

    def stop(self) -> None:
        """Stop; returns once the work in hand (if any) is finished."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class Served(ABC):
    """An HTTP server on 127.0.0.1 in a daemon thread (the exchange, the demo partner)."""

    def __init__(self, address: tuple[str, int], name: str) -> None:
        self._address = address
        self._name = name
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _bind(self) -> ThreadingHTTPServer:
        """The server, bound to self._address."""

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:3000 (the real port when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Bind the port and serve in a daemon thread."""
        if self._server is not None:
            return
        self._server = self._bind()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close the socket and join the serving thread."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        """Serve for the duration of a with block."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop serving."""
        self.stop()


def report(message: str) -> None:
    """One line for the person watching the local runner."""
    print(message, file=sys.stderr, flush=True)


def report_exception(message: str) -> None:
    """A failure with its traceback; the loop that caught it goes on."""
    print(message, file=sys.stderr)
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()
