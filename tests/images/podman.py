"""Podman for the image tests: build the images once, run containers the way a kubelet would.

`pod_run_options` is the one translation from a rendered pod to `podman run`: the pod's and the
container's securityContext, resources, env and volume mounts become podman options, so a container
started here runs as the operator's pod would, not as a hand-picked command line. Containers share
the host's network and talk over loopback only; the caller swaps the rendered ports for free ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

ROOT: Final = Path(__file__).resolve().parents[2]
BUILD_SCRIPT: Final = ROOT / "scripts" / "build-images.sh"
STATE: Final = ROOT / "build" / "images"
#: build-images.sh's exit code for "podman cannot run on this machine".
CANNOT_RUN: Final = 3
BUILD_TIMEOUT_S: Final = 1500


class PodmanUnavailable(RuntimeError):
    """Podman cannot run here; the message is build-images.sh's one-line reason."""


@dataclass(frozen=True)
class Images:
    """What build-images.sh built: each target's tag, size and build time, and the base it used."""

    report: dict[str, Any]

    def tag(self, target: str) -> str:
        return self.report[target]["image"]

    @property
    def base(self) -> str:
        base = self.report["base"]
        return f"{base['image']} (Debian {base['debian_version']}, debootstrap --variant=minbase)"


def build_images() -> Images:
    """Run scripts/build-images.sh (cached layers make a rebuild take seconds) and read its report."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )
    if result.returncode == CANNOT_RUN:
        raise PodmanUnavailable(result.stderr.strip().splitlines()[-1])
    if result.returncode != 0:
        raise AssertionError(
            f"scripts/build-images.sh failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return Images(json.loads((STATE / "report.json").read_text()))


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(STATE / "containers.conf")}


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, env=podman_env(), check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return result


def in_image(image: str, script: str, *, user: str | None = None) -> subprocess.CompletedProcess[str]:
    """`sh -c script` in a throw-away container of `image` (its own user unless `user` is given)."""
    options = ["--user", user] if user else []
    return podman("run", "--rm", *options, "--entrypoint", "sh", image, "-c", script, check=False)


def pod_run_options(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    volumes: Mapping[str, Path],
    env_swaps: Mapping[str, str],
    pod_name: str = "test-pod",
) -> list[str]:
    """`podman run` options for `container` of `pod` as the kubelet would start it.

    `volumes` maps each of the pod's volume names to the host directory standing in for it;
    `env_swaps` may only replace rendered variables (ports, a model id the hub would resolve).
    A `fieldRef` to the pod's name gets `pod_name`, as the downward API would give it.
    """
    pod_security = pod.get("securityContext", {})
    security = container.get("securityContext", {})
    options = [
        "--user",
        f"{security.get('runAsUser', pod_security['runAsUser'])}:{pod_security.get('runAsGroup', 0)}",
        "--read-only-tmpfs=false",
        "--network=host",
    ]
    if security.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    if security.get("allowPrivilegeEscalation") is False:
        options.append("--security-opt=no-new-privileges")
    options += [f"--cap-drop={cap}" for cap in security.get("capabilities", {}).get("drop", [])]
    limits = container.get("resources", {}).get("limits", {})
    if "cpu" in limits:
        cpu = str(limits["cpu"])
        options.append(f"--cpus={int(cpu[:-1]) / 1000 if cpu.endswith('m') else cpu}")
    if "memory" in limits:
        options.append(f"--memory={limits['memory'].removesuffix('i').lower()}")
    rendered = {item["name"]: env_value(item, pod_name) for item in container.get("env", [])}
    assert set(env_swaps) <= set(rendered), "a swap may only replace variables the operator rendered"
    for name, value in {**rendered, **env_swaps}.items():
        options += ["--env", f"{name}={value}"]
    for mount in container.get("volumeMounts", []):
        suffix = ":ro" if mount.get("readOnly") else ""
        options += ["--volume", f"{volumes[mount['name']]}:{mount['mountPath']}{suffix}"]
    command = container.get("command", [])
    if command:
        options += ["--entrypoint", command[0]]
    return options


def env_value(item: Mapping[str, Any], pod_name: str) -> str:
    if "value" in item:
        return item["value"]
    field = item["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == "metadata.name", f"no stand-in for the downward API's {field}"
    return pod_name


@dataclass
class Container:
    """One running container, removed (with its logs kept in the failure message) when stopped."""

    name: str

    @classmethod
    def start(cls, image: str, options: Sequence[str], args: Sequence[str]) -> Container:
        name = f"kube-reranker-test-{uuid.uuid4().hex[:8]}"
        podman("run", "--detach", "--name", name, *options, image, *args)
        return cls(name)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def state(self) -> dict[str, Any]:
        return json.loads(podman("inspect", "--format", "{{json .State}}", self.name).stdout)

    def exec(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *command, timeout=timeout, check=False)

    def signal(self, name: str) -> None:
        podman("kill", "--signal", name, self.name)

    def wait_exit(self, timeout_s: float) -> int:
        """The exit code once the container has stopped by itself within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.state()
            if state["Status"] in {"exited", "stopped"}:
                return int(state["ExitCode"])
            time.sleep(0.2)
        raise AssertionError(f"{self.name} still runs after {timeout_s} s:\n{self.logs()[-3000:]}")

    def remove(self) -> None:
        podman("rm", "--force", "--time", "5", self.name, check=False)


def poll_ready(url: str, container: Container, timeout_s: float) -> list[int]:
    """Every status `url` answered (connection refusals skipped) until it said 200."""
    answers: list[int] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if container.state()["Status"] != "running":
            raise AssertionError(f"the container stopped before it was ready:\n{container.logs()[-4000:]}")
        with contextlib.suppress(httpx.TransportError):
            answers.append(httpx.get(url, timeout=5.0).status_code)
        if answers and answers[-1] == 200:
            return answers
        time.sleep(0.05)
    raise AssertionError(
        f"{url} not 200 within {timeout_s} s (answers {answers[-5:]}):\n{container.logs()[-4000:]}"
    )
