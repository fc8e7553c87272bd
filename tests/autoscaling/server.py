"""The server container of a rendered Deployment, run as a local process on loopback.

The pod's initContainer prepares first, then the server starts; command, args and env are exactly
what the operator renders; only what cannot exist outside a pod is swapped: the model id for the
locally built test model, the cache and home paths for temporary directories, the host and ports
for free loopback ones.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from tests.conftest import free_port, local_run, prepare_locally, stop_process

READY_BUDGET_S: Final = 120.0


@dataclass(frozen=True)
class Server:
    url: str
    metrics_url: str
    env: Mapping[str, str]
    process: subprocess.Popen


@contextlib.contextmanager
def running_server(deployment: Mapping[str, Any], model_dir: Path, workdir: Path) -> Iterator[Server]:
    """Prepare as the rendered initContainer does, start the rendered server container and wait for its
    readiness probe; SIGTERM (then kill) on exit."""
    pod = deployment["spec"]["template"]["spec"]
    for init in pod.get("initContainers", ()):
        prepare_locally(init, model_dir, workdir)
    (container,) = pod["containers"]
    port, metrics_port = free_port(), free_port()
    swapped = {
        "RERANKER_MODEL": str(model_dir),
        "RERANKER_HOST": "127.0.0.1",
        "RERANKER_PORT": str(port),
        "RERANKER_METRICS_PORT": str(metrics_port),
    }
    command, env = local_run(container, workdir, swapped)
    log = (workdir / "server.log").open("w")
    process = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    server = Server(
        url=f"http://127.0.0.1:{port}",
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
        env=env,
        process=process,
    )
    try:
        _wait_ready(f"{server.url}{container['readinessProbe']['httpGet']['path']}", process, workdir)
        yield server
    finally:
        stop_process(process, grace_s=60)
        log.close()


def _wait_ready(url: str, process: subprocess.Popen, workdir: Path) -> None:
    deadline = time.monotonic() + READY_BUDGET_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"the server exited with {process.returncode}: {(workdir / 'server.log').read_text()[-2000:]}"
            )
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{url} was not 200 within {READY_BUDGET_S:.0f} s")
