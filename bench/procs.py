"""Contender processes: the in-process recipes' workers and our server, started, timed, stopped.

Cold start is measured from the moment the process is spawned: for a worker until it says it is
ready, for the server until GET /ready answers 200 (model loaded and warm-up done).
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from bench.config import ROOT
from bench.guard import MemoryGuard, Watched
from bench.worker import PREFIX


class ContenderFailed(RuntimeError):
    """The contender process died, was killed by the memory guard, or did not answer in time."""


def vm_hwm_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class _Process:
    """What workers and servers share: spawn under the memory guard, peak memory, stop."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None
        self.watched: Watched | None = None
        self.cold_start_s: float | None = None
        self.peak_hwm_bytes = 0
        self._log: IO[str] | None = None

    def _spawn(self, guard: MemoryGuard, cap_bytes: int, stdin: bool) -> float:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdin else self._log,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self.watched = guard.watch(self.name, self.process.pid, cap_bytes)
        return started

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def failure(self, what: str) -> ContenderFailed:
        reason = self.watched.killed_reason if self.watched else None
        code = self.process.poll() if self.process else None
        detail = reason or f"exit code {code}; log tail:\n{log_tail(self.log_path)}"
        return ContenderFailed(f"{self.name}: {what}: {detail}")

    def peak_rss_bytes(self) -> int:
        """The larger of the kernel's high-water mark and the guard's samples (children included)."""
        if self.process is not None and self.process.poll() is None:
            self.peak_hwm_bytes = max(self.peak_hwm_bytes, vm_hwm_bytes(self.process.pid))
        sampled = self.watched.peak_bytes if self.watched else 0
        return max(self.peak_hwm_bytes, sampled)

    def killed_reason(self) -> str | None:
        return self.watched.killed_reason if self.watched else None

    def stop(self, guard: MemoryGuard, timeout_s: float = 30.0) -> None:
        if self.process is None:
            return
        self.peak_rss_bytes()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        guard.forget(self.process.pid)
        if self._log is not None:
            self._log.close()


class WorkerProcess(_Process):
    """A `python -m bench.worker` contender speaking JSON lines."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        super().__init__(name, argv, env, log_path)
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(PREFIX):
                self._lines.put(json.loads(line[len(PREFIX) :]))
            elif self._log is not None:
                self._log.write(line)
        self._lines.put(None)

    def _next(self, timeout_s: float, what: str) -> dict[str, Any]:
        try:
            message = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise self.failure(f"no answer to {what} within {timeout_s:.0f} s") from None
        if message is None:
            raise self.failure(what)
        return message

    def start(self, guard: MemoryGuard, cap_bytes: int, timeout_s: float = 600.0) -> None:
        started = self._spawn(guard, cap_bytes, stdin=True)
        threading.Thread(target=self._read, name=f"{self.name}-reader", daemon=True).start()
        self._next(timeout_s, "start")
        self.cold_start_s = time.perf_counter() - started

    def request(self, command: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self.failure("request") from None
        return self._next(timeout_s, "request")

    def stop(self, guard: MemoryGuard, timeout_s: float = 30.0) -> None:
        if self.process is not None and self.process.poll() is None and self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.process.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.process.stdin.flush()
            self.peak_rss_bytes()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout_s)
        super().stop(guard, timeout_s)


class ServerProcess(_Process):
    """`reranker-server serve`, ready when GET /ready says 200."""

    def __init__(
        self, name: str, argv: Sequence[str], env: dict[str, str], log_path: Path, port: int
    ) -> None:
        super().__init__(name, argv, env, log_path)
        self.base_url = f"http://127.0.0.1:{port}"

    def start(self, guard: MemoryGuard, cap_bytes: int, timeout_s: float = 600.0) -> None:
        started = self._spawn(guard, cap_bytes, stdin=False)
        deadline = started + timeout_s
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.perf_counter() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise self.failure("exited before /ready")
                try:
                    if client.get("/ready").status_code == 200:
                        self.cold_start_s = time.perf_counter() - started
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise self.failure(f"not ready within {timeout_s:.0f} s")
