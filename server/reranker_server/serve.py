"""Run the app under uvicorn, draining on SIGTERM instead of stopping at once.

Uvicorn's own SIGTERM handling closes the listening socket immediately. Kubernetes, though, keeps
sending traffic to a terminating pod until its endpoints update; and /ready must turn 503 *first*
so that update happens. So the first SIGTERM (or Ctrl-C) only marks the app draining: /ready says
503, in-flight requests finish (at most --drain-timeout-s), and only then does uvicorn stop. A
second signal stops at once.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from reranker_server.api import app_services
from reranker_server.config import Settings

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM/SIGINT drains the app before the server stops."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.lifecycle = app_services(app).lifecycle
        self.drain_timeout_s = drain_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False
        self._drain_task: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or self._loop is None or sig not in (signal.SIGTERM, signal.SIGINT):
            super().handle_exit(sig, frame)
            return
        self._draining = True
        log.info("received %s: /ready now 503, draining in-flight requests", signal.Signals(sig).name)
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self.lifecycle.drain()
        self._drain_task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        idle = await self.lifecycle.wait_idle(self.drain_timeout_s)
        if not idle:
            log.warning("drain timeout (%.0f s) passed with requests still in flight", self.drain_timeout_s)
        self.should_exit = True


def port_problem(settings: Settings) -> str | None:
    """A listening port someone else holds, named with its flag, before any of the server starts.

    Found late, the metrics listener's bind fails as a traceback inside the app's start-up; checked
    here it is one line that says what to change.
    """
    ports = [(settings.port, "--port / RERANKER_PORT")]
    if settings.metrics_port:
        ports.append((settings.metrics_port, "--metrics-port / RERANKER_METRICS_PORT"))
    for port, option in ports:
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((settings.host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return f"port {port} on {settings.host} is already in use: choose another with {option}"
                return f"cannot listen on {settings.host}:{port} ({exc.strerror}): check {option} and --host"
    return None


def run(app: FastAPI, settings: Settings) -> None:
    """Serve `app` on settings.host:port with uvloop/httptools when installed, until drained."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="auto",
        http="auto",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.drain_timeout_s)),
        timeout_keep_alive=30,
    )
    DrainingServer(config, app, settings.drain_timeout_s).run()
