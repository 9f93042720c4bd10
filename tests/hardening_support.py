"""Shared helpers for the hardening tests (property, fuzz, load, faults, privacy).

Everything here stays on loopback and is bounded: servers run in a daemon thread or a
subprocess that the test stops, fault injectors (a closed port, a slow HTTP server, a TCP
proxy that can be cut) are started and stopped by the test that uses them.

BACKLINE_SOAK=1 turns the "small" sizes into "large" ones (`scaled`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LEVELS = ("info", "routine", "urgent", "emergency")


def soak() -> bool:
    """True when the long soak run was asked for (BACKLINE_SOAK=1)."""
    return os.environ.get("BACKLINE_SOAK", "").strip().lower() in ("1", "true", "yes")


def scaled(default: int, soak_value: int) -> int:
    return soak_value if soak() else default


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def agent_with_stores(base: Any, tracker_store: Any, lock_store: Any | None = None,
                      processor: Any | None = None) -> Any:
    """An Agent sharing `base`'s loaded model and processor but with its own stores (cheap)."""
    from bot.agent import Agent
    from bot.stores import InMemoryLockStore

    return Agent(base.project, base.nlu, processor or base.processor, tracker_store,
                 lock_store or InMemoryLockStore(), base.model_path, base.model_meta)


@contextlib.contextmanager
def served(agent: Any, credentials: dict | None = None, **opts: Any) -> Iterator[str]:
    """`create_app(agent)` on a free loopback port in a daemon thread; yields the base URL."""
    from bot.server import create_app
    from tests.servers import ServerLoop

    loop = ServerLoop()
    try:
        url = loop.start(create_app(agent, credentials if credentials is not None else {"rest": None}, **opts))
        yield url
    finally:
        try:
            loop.run(agent.close(), timeout=30)  # runner session, tracker and lock stores
        except Exception:  # noqa: BLE001 - best effort, the loop goes away next
            pass
        loop.stop()


class LogCapture(logging.Handler):
    """Collects every record (message + traceback text) that reaches the root logger."""

    def __init__(self, level: int = logging.DEBUG, ignore: tuple[str, ...] = ("httpx", "httpcore", "hpack")):
        super().__init__(level)
        self.records: list[logging.LogRecord] = []
        self.ignore = ignore
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self._old_level: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(self.ignore):
            return  # the test's own HTTP client logs the URLs it calls
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(self.format(r) for r in self.records)

    def __enter__(self) -> "LogCapture":
        root = logging.getLogger()
        self._old_level = root.level
        root.addHandler(self)
        if root.getEffectiveLevel() > self.level:
            root.setLevel(self.level)
        return self

    def __exit__(self, *exc: Any) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        if self._old_level is not None:
            root.setLevel(self._old_level)


# -- fault injectors ---------------------------------------------------------------------------

class SlowActionServer:
    """A tiny HTTP server that answers every POST after `delay` seconds (a stuck action server),
    with no events. `only`: delay just that action (`next_action`); the rest answer at once."""

    def __init__(self, delay: float, only: str | None = None) -> None:
        self.delay = delay
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length") or 0)
                payload = self.rfile.read(length)
                if only is None or json.loads(payload or b"{}").get("next_action") == only:
                    outer.calls += 1
                    time.sleep(outer.delay)
                body = json.dumps({"events": [], "responses": []}).encode()
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up first: that is the point

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhook"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "SlowActionServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class TcpProxy:
    """Forwards a loopback port to `upstream`; `cut()` drops every connection and stops
    listening (the store "goes down"), `restore()` listens again on the same port."""

    def __init__(self, upstream_host: str, upstream_port: int, cut_on: bytes | None = None) -> None:
        """cut_on: when the client sends these bytes, forward only what comes before them and
        cut everything (the store dies in the middle of a write)."""
        self.upstream = (upstream_host, upstream_port)
        self.cut_on = cut_on
        self.tripped = threading.Event()
        self.port = closed_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> "TcpProxy":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
            for a, b, upstream in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(a, b, upstream), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool = False) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if upstream and self.cut_on and not self.tripped.is_set() and self.cut_on in data:
                    sink.sendall(data[:data.index(self.cut_on)])
                    self.tripped.set()
                    self.cut()
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> "TcpProxy":
        return self.restore()

    def __exit__(self, *exc: Any) -> None:
        self.cut()


# -- tracker invariants ------------------------------------------------------------------------

def assert_tracker_valid(tracker: Any, domain: Any, previous_level: str | None = None) -> str:
    """Events JSON-serialisable, slots within the domain, triage_level a known level that did not
    drop below `previous_level`. Returns the current level."""
    for event in tracker.events:
        json.dumps(event)  # raises on anything a store could not keep
        assert isinstance(event.get("event"), str), event
    for name, value in tracker.slots.items():
        assert name in domain.slots, f"slot {name!r} is not in the domain"
        slot = domain.slots[name]
        if value is None:
            continue
        if slot.type == "categorical" and slot.values:
            assert value in slot.values, f"slot {name}={value!r} not in {slot.values}"
        if slot.type == "list":
            assert isinstance(value, list), f"list slot {name}={value!r}"
        if slot.type == "bool":
            assert isinstance(value, bool), f"bool slot {name}={value!r}"
    level = tracker.slots.get("triage_level")
    assert level in LEVELS, f"triage_level {level!r}"
    if previous_level is not None:
        assert LEVELS.index(level) >= LEVELS.index(previous_level), \
            f"triage_level dropped from {previous_level} to {level}"
    return level
