"""A real Prometheus on loopback for one test: free port, temporary data dir, stopped in `finally`."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

from tests.autoscaling.tools import binary
from tests.conftest import free_port, stop_process

START_BUDGET_S: Final = 60.0


@dataclass(frozen=True)
class Prometheus:
    """The HTTP API of a running Prometheus."""

    url: str
    process: subprocess.Popen
    log: Path

    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=30)
        body = response.json()
        assert response.status_code == 200, f"{path} {params}: {response.status_code} {body}"
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expression: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query (at `at`, a Unix time, or now): the vector's samples."""
        params: dict[str, Any] = {"query": expression}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        assert data["resultType"] == "vector", data
        return data["result"]

    def value(self, expression: str, at: float | None = None) -> float | None:
        """The single value of an aggregated query, None when it has no sample."""
        samples = self.query(expression, at)
        assert len(samples) <= 1, samples
        return float(samples[0]["value"][1]) if samples else None

    def query_range(
        self, expression: str, start: float, end: float, step_s: float
    ) -> list[tuple[float, float]]:
        """(time, value) of the first series of a range query."""
        data = self._get(
            "/api/v1/query_range", {"query": expression, "start": start, "end": end, "step": f"{step_s}s"}
        )
        assert data["resultType"] == "matrix", data
        if not data["result"]:
            return []
        (series,) = data["result"]
        return [(float(at), float(value)) for at, value in series["values"]]

    def series(self, match: str) -> list[dict[str, str]]:
        return self._get("/api/v1/series", {"match[]": match})

    def wait_for(self, predicate: Callable[[], Any], what: str, budget_s: float = 30.0) -> Any:
        """Poll `predicate` until truthy; fail naming `what` after the budget."""
        deadline = time.monotonic() + budget_s
        while not (result := predicate()):
            assert self.process.poll() is None, (
                f"prometheus exited with {self.process.returncode}: {self.log.read_text()[-2000:]}"
            )
            assert time.monotonic() < deadline, f"not within {budget_s:.0f} s: {what}"
            time.sleep(0.2)
        return result


@contextlib.contextmanager
def running_prometheus(config: Mapping[str, Any], workdir: Path) -> Iterator[Prometheus]:
    """Start `prometheus` with `config` on a free loopback port; always stopped (and reaped) on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    port = free_port()
    log_path = workdir / "prometheus.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    prometheus = Prometheus(url=f"http://127.0.0.1:{port}", process=process, log=log_path)
    try:
        prometheus.wait_for(lambda: _ready(prometheus.url), "prometheus /-/ready", START_BUDGET_S)
        yield prometheus
    finally:
        stop_process(process, grace_s=30)
        log.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
