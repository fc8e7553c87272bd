"""Fixtures of the image tests: the images built once per run, volumes as a kubelet would lay them out.

Every test here runs a real image with podman. Where podman cannot run (no apt, not root, a host
podman refuses), the whole area skips with build-images.sh's one-line reason; anywhere else a broken
image is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.images.podman import STATE, Images, PodmanUnavailable, build_images

#: The uid and gid the pods run as (runAsUser / fsGroup), so volumes are laid out for it.
POD_UID = 10001


@pytest.fixture(scope="session")
def images() -> Images:
    try:
        return build_images()
    except PodmanUnavailable as exc:
        pytest.skip(str(exc))


def readable_copy(source: Path, destination: Path, *, skip: tuple[str, ...] = ()) -> Path:
    """A copy any uid can read, as a read-only volume from a ConfigMap or a model store would be."""
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(*skip))
    for path in [destination, *destination.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return destination


@pytest.fixture(scope="session")
def served_model(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test model with its ONNX graph, readable by the pod's uid."""
    return readable_copy(test_model_dir, tmp_path_factory.mktemp("volumes") / "test-model")


@pytest.fixture(scope="session")
def checkpoint_without_graph(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test model as a hub repository that ships only safetensors weights, no ONNX graph."""
    return readable_copy(test_model_dir, tmp_path_factory.mktemp("volumes") / "checkpoint", skip=("onnx",))


def owned_by_pod(path: Path) -> Path:
    """An emptyDir or claim as the pod sees it: owned by the pod's fsGroup, writable by its uid."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, POD_UID, POD_UID)
    path.chmod(0o775)
    return path


@pytest.fixture
def pod_volume(tmp_path: Path) -> Callable[[str], Path]:
    """A fresh pod volume per name, for one test."""
    return lambda name: owned_by_pod(tmp_path / "volumes" / name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The size and build time of each image the run built, and the base it was built on."""
    report_path = STATE / "report.json"
    if not any(item.nodeid.startswith("tests/images") for item in terminalreporter.stats.get("passed", [])):
        return
    if not report_path.is_file():
        return
    report = json.loads(report_path.read_text())
    terminalreporter.section("images (scripts/build-images.sh)")
    base = report.pop("base")
    terminalreporter.write_line(
        f"base: {base['image']}, Debian {base['debian_version']} (debootstrapped here)"
    )
    for target, facts in report.items():
        terminalreporter.write_line(
            f"{target:9s} {facts['image']:42s} {facts['size_bytes'] / 1e6:6.0f} MB"
            f"  (last build {facts['build_seconds']} s)"
        )
