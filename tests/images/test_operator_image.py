"""The `operator` image, run from the chart's rendered operator pod against kmock's Kubernetes emulator.

The container gets the chart's operator Deployment (default values) as the kubelet would run it:
read-only, uid 10001, its env and /tmp volume. Two variables reach it through the chart's own
`operator.extraEnv`: KUBECONFIG (a kubeconfig for the emulator, mounted read-only, where a cluster
would give a service-account token) and the liveness port (the container shares the host's
network, where 8080 may be taken).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import kmock
import pytest
from reranker_operator import naming

from tests.chart.rendering import one, render
from tests.conftest import free_port
from tests.images.podman import Container, Images, pod_run_options
from tests.operator.conftest import DEPLOYMENTS, NAMESPACE, emulate_cluster, live
from tests.operator.test_loop import MINILM, create

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


async def wait_for(predicate: Callable[[], object], container: Container, within: float) -> object:
    """Keep the event loop (and with it the emulator) serving while the container works."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not (result := predicate()):
        if loop.time() > deadline:
            logs = await asyncio.to_thread(container.logs)
            raise AssertionError(f"not true within {within} s: {predicate.__doc__}\n{logs[-4000:]}")
        await asyncio.sleep(0.5)
    return result


async def test_the_operator_image_turns_a_cr_into_a_deployment(
    images: Images,
    kmock: kmock.KubernetesEmulator,
    pod_volume: Callable[[str], Path],
) -> None:
    kube = pod_volume("kube")
    emulate_cluster(kmock, kube / "config")
    (kube / "config").chmod(0o644)
    liveness = free_port()
    chart = render(
        settings=(
            "operator.extraEnv[0].name=KUBECONFIG",
            "operator.extraEnv[0].value=/kube/config",
            "operator.extraEnv[1].name=RERANKER_OPERATOR_LIVENESS_PORT",
        ),
        extra=("--set-string", f"operator.extraEnv[1].value={liveness}"),
    )
    pod = one(chart, "Deployment")["spec"]["template"]["spec"]
    (spec,) = pod["containers"]
    assert spec["image"] == images.tag("operator"), "the chart's default image is the tag built here"
    options = pod_run_options(pod, spec, volumes={"tmp": pod_volume("tmp")}, env_swaps={})
    options += ["--volume", f"{kube}:/kube:ro"]
    container = await asyncio.to_thread(Container.start, spec["image"], options, spec["args"])
    try:
        await create(kmock, minilm_cr())

        def deployment_created() -> object:
            """the operator created the CR's Deployment"""
            return live(kmock, DEPLOYMENTS, "minilm")

        deployment = await wait_for(deployment_created, container, within=120)
        health = await asyncio.to_thread(container.exec, "python3", "-c", health_check(liveness))
    finally:
        await asyncio.to_thread(container.remove)
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert deployment["metadata"]["ownerReferences"][0]["name"] == "minilm"
    assert health.stdout.strip() == "200", health.stderr


def minilm_cr() -> dict:
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {"name": "minilm", "namespace": NAMESPACE, "uid": str(uuid.uuid4()), "generation": 1},
        "spec": MINILM,
    }


def health_check(port: int) -> str:
    return (
        f"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/healthz', timeout=10).status)"
    )
