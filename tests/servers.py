"""Test plumbing for real servers on loopback: a free port, and `ServerLoop`, an event loop in a
thread that serves Sanic apps (tests; benchmarks import `free_port` from here too)."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from sanic import Sanic


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerLoop:
    """An event loop in a daemon thread that hosts one or more apps (tests, benchmarks).

    Apps that share one Agent must share one loop: the Agent's locks and store connections
    belong to the loop that first used them.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="backline-server",
                                        daemon=True)
        self._thread.start()
        self._servers: list[Any] = []

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, app: Sanic, host: str = "127.0.0.1", port: int | None = None) -> str:
        """Serve `app` on host:port (a free port by default); returns its base URL."""
        port = port or free_port(host)

        async def start() -> Any:
            server = await app.create_server(host=host, port=port, return_asyncio_server=True,
                                             access_log=False)
            await server.startup()
            await server.before_start()
            await server.after_start()
            await server.start_serving()
            return server

        self._servers.append(self.run(start()))
        return f"http://{host}:{port}"

    def stop(self) -> None:
        async def stop_all() -> None:
            for server in reversed(self._servers):
                await server.before_stop()
                server.close()
                await server.wait_closed()
                await server.after_stop()

        try:
            self.run(stop_all(), timeout=30)
        finally:
            self._servers.clear()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
