"""A real `reranker-server serve` process for tests: started with env vars, waited on, signalled."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self

import httpx

BIN = Path(sys.executable).parent
#: Env vars of the test process that must not leak into the server's settings.
LEAKY_PREFIXES = ("RERANKER_", "HF_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`reranker-server serve` in a child process, its output captured in a log file."""

    def __init__(self, env: Mapping[str, str], log_path: Path, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
        self.env = {**base_env, "RERANKER_HOST": "127.0.0.1", "RERANKER_PORT": str(self.port), **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.readiness: list[int | None] = []

    def start(self) -> Self:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [BIN / "reranker-server", "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> Self:
        """Poll /ready, remembering every answer (None = not listening yet), until it says 200."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                status = httpx.get(f"{self.base}/ready", timeout=5.0).status_code
            except httpx.TransportError:
                status = None
            self.readiness.append(status)
            if status == 200:
                return self
            time.sleep(0.02)
        raise AssertionError(f"server not ready within {timeout_s} s:\n{self.log()}")

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL if it hangs, which fails the caller's check)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -signal.SIGKILL

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.terminate()
