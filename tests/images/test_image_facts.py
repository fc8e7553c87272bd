"""What a platform team checks in an image before it runs in their cluster, asked of the real images."""

from __future__ import annotations

import json
import re

import pytest

from tests.images.podman import ROOT, STATE, Images, in_image, podman

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

TARGETS = ("server", "operator", "export")
#: Packages each image must not carry: the serving path has no torch, the operator no model stack.
FORBIDDEN_MODULES = {
    "server": ("torch", "transformers", "kopf"),
    "operator": ("onnxruntime", "tokenizers", "torch", "fastapi"),
    "export": ("kopf",),
}


def dockerfile_debian_release() -> str:
    """The Debian major release the Dockerfile's default base tag names (debian:12.x-slim -> 12)."""
    match = re.search(r"^ARG DEBIAN_IMAGE=debian:(\d+)\.", (ROOT / "Dockerfile").read_text(), re.M)
    assert match, "the Dockerfile's DEBIAN_IMAGE must be a debian:<major>.<minor>-slim tag"
    return match.group(1)


def test_the_base_is_the_debian_release_the_dockerfile_names(images: Images) -> None:
    version = images.report["base"]["debian_version"]
    assert version.split(".")[0] == dockerfile_debian_release(), f"built on {images.base}"


@pytest.mark.parametrize("target", TARGETS)
def test_the_base_goes_in_by_digest_and_is_the_image_underneath(images: Images, target: str) -> None:
    """The Dockerfile's DEBIAN_IMAGE takes `repository@sha256:...`, as a pinned registry base would."""
    reference = images.report["base"]["reference"]
    assert re.fullmatch(r"[a-z0-9./-]+@sha256:[0-9a-f]{64}", reference), reference

    def layers(image: str) -> str:
        return podman("image", "inspect", "--format", "{{json .RootFS.Layers}}", image).stdout.strip()

    base_layers = json.loads(layers(reference))
    assert json.loads(layers(images.tag(target)))[: len(base_layers)] == base_layers


@pytest.mark.parametrize("target", TARGETS)
def test_the_image_runs_as_uid_10001_by_default(images: Images, target: str) -> None:
    result = in_image(images.tag(target), "id -u; id -g")
    assert result.stdout.split() == ["10001", "10001"], result.stderr


@pytest.mark.parametrize("target", TARGETS)
def test_the_image_carries_no_installer(images: Images, target: str) -> None:
    result = in_image(images.tag(target), "python3 -m pip --version; command -v pip pip3 easy_install")
    assert "No module named pip" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("target", TARGETS)
def test_the_image_carries_no_compiler(images: Images, target: str) -> None:
    result = in_image(images.tag(target), "command -v gcc cc c++ g++ clang ld make")
    assert result.stdout == ""


@pytest.mark.parametrize("target", TARGETS)
def test_nothing_of_the_build_host_lands_in_the_image(images: Images, target: str) -> None:
    """The pip configuration, CA bundle and wheel folders were build-time mounts only."""
    mounts = [line.split(":")[1] for line in (STATE / "pip-host" / "mounts").read_text().split()]
    paths = " ".join(["/etc/pip.conf", "/etc/xdg/pip", *mounts])
    result = in_image(images.tag(target), f"for p in {paths}; do [ -e $p ] && echo $p; done; true")
    assert result.stdout == ""


@pytest.mark.parametrize("target", TARGETS)
def test_the_image_lacks_what_its_role_must_not_carry(images: Images, target: str) -> None:
    checks = "; ".join(f"python3 -c 'import {m}' 2>/dev/null && echo {m}" for m in FORBIDDEN_MODULES[target])
    result = in_image(images.tag(target), f"{checks}; true")
    assert result.stdout == ""


def test_the_export_image_carries_the_cpu_build_of_torch(images: Images) -> None:
    result = in_image(images.tag("export"), "python3 -c 'import torch; print(torch.__version__)'")
    assert result.stdout.strip().endswith("+cpu"), result.stdout + result.stderr
