"""`make demo`: the main job end to end on one machine, offline, with the `server` and `operator`
extras only (no torch).

It prepares a model (the hub's ms-marco MiniLM reranker when the hub answers, otherwise a
locally built test model, said loudly), serves it with `reranker-server`, shows readiness
waiting for warm-up, reranks with a Cohere-shaped request, renders the Kubernetes objects of
every example into build/demo/manifests/ with a table of what each holds, and stops the server.

    python scripts/demo.py        # the demo; the server's own log goes to build/demo/server.log
    python scripts/demo.py -v     # the server's log on the terminal, with ONNX Runtime's lines
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HUB_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
K_CAP = 40

QUERY = "How do I keep reranking latency low in a RAG pipeline?"
DOCUMENTS = [
    "Cap the number of candidates per request and the sequence length of each passage.",
    "Bananas are a good source of potassium.",
    "Run the cross-encoder with ONNX Runtime and int8 weights on CPU pods.",
    "The Eiffel Tower was completed in 1889.",
    "Batch concurrent requests by a token budget and sort pairs by length to avoid padding.",
    "Scale replicas on the P95 latency the users feel, not on CPU usage.",
]


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def indented(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def shown(path: Path) -> str:
    """A path as the user would type it from the directory they ran the demo in."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    """One JSON request with the standard library (the demo needs no HTTP client package)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def hub_reachable() -> bool:
    """True only when the hub answers quickly: the demo must stay offline-safe."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        call("HEAD", f"https://huggingface.co/api/models/{HUB_MODEL}", timeout=3.0)
    except OSError:
        return False
    return True


def choose_model(out: Path) -> str:
    if hub_reachable():
        say(f"The Hugging Face hub answers: serving the real reranker {HUB_MODEL}")
        return HUB_MODEL
    model_dir = out / "test-model"
    print("\n" + "!" * 78)
    print("!! The Hugging Face hub is not reachable: serving a LOCALLY BUILT TEST MODEL.")
    print("!! Its weights are random, so its SCORES ARE MEANINGLESS; latency is real.")
    print("!" * 78, flush=True)
    if not (model_dir / "config.json").exists():
        say(f"reranker-server make-test-model --out {shown(model_dir)}")
        made = subprocess.run(
            [BIN / "reranker-server", "make-test-model", "--out", model_dir],
            check=True,
            capture_output=True,
            text=True,
        )
        print(indented(made.stdout.strip().splitlines()[0]))
    return str(model_dir)


def prepare_artefact(model: str, out: Path, log_level: str) -> Path:
    """What the operator's Job (or initContainer) runs: one verified artefact the server then reads."""
    artefact = out / "cache" / "artefacts" / "demo"
    say(f"reranker-server prepare --out {shown(artefact)} (fuse, canaries; reused when done)")
    env = {
        **os.environ,
        "RERANKER_MODEL": model,
        "RERANKER_CACHE_DIR": str(out / "cache"),
        "RERANKER_LOG_LEVEL": log_level,
    }
    done = subprocess.run(
        [BIN / "reranker-server", "prepare", "--out", artefact], env=env, capture_output=True, text=True
    )
    for line in done.stderr.splitlines():
        if " WARNING " in line or log_level == "debug":
            print(indented(line))
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip().splitlines()[-1])
    print(indented(done.stdout.strip()))
    return artefact


@contextlib.contextmanager
def running_server(
    model: str, artefact: Path, port: int, out: Path, verbose: bool
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "RERANKER_MODEL": model,
        "RERANKER_ARTEFACT": str(artefact),
        "RERANKER_PORT": str(port),
        "RERANKER_HOST": "127.0.0.1",
        "RERANKER_METRICS_PORT": "0",
        "RERANKER_CACHE_DIR": str(out / "cache"),
        "RERANKER_MAX_CANDIDATES": str(K_CAP),
        "RERANKER_MAX_LENGTH": "256",
        "RERANKER_LOG_LEVEL": "debug" if verbose else "info",
    }
    log_path = out / "server.log"
    with contextlib.ExitStack() as stack:
        log = None if verbose else stack.enter_context(log_path.open("wb"))
        if log is not None:
            print(f"    (its log: {shown(log_path)})")
        process = subprocess.Popen([BIN / "reranker-server", "serve"], env=env, stdout=log, stderr=log)
        try:
            yield process
        finally:
            say("Stopping the server (SIGTERM: /ready turns 503, in-flight requests drain)")
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            print(f"    exited with {process.returncode}")


def wait_until_ready(
    base: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 300.0
) -> None:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            code = process.returncode
            raise SystemExit(f"reranker-server exited with {code} before it was ready; see {shown(log)}")
        try:
            status, body = call("GET", f"{base}/ready", timeout=2.0)
        except OSError:
            time.sleep(0.2)
            continue
        line = f"GET /ready -> {status} {json.dumps(body)}"
        if line != last:
            print(f"    {line}", flush=True)
            last = line
        if status == 200:
            return
        time.sleep(0.2)
    raise SystemExit(f"reranker-server was not ready within {timeout_s:.0f} s")


def rerank(base: str) -> None:
    body = {"query": QUERY, "documents": DOCUMENTS, "top_n": 3, "return_documents": True}
    say(f"POST /v2/rerank (Cohere shape), k={len(DOCUMENTS)}, top_n=3")
    started = time.perf_counter()
    status, answer = call("POST", f"{base}/v2/rerank", body)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if status != 200:
        raise SystemExit(f"rerank failed: {status} {answer}")
    print(f"    query: {QUERY}")
    for rank, result in enumerate(answer["results"], start=1):
        score, text = result["relevance_score"], result["document"]["text"]
        print(f"    {rank}. [{score:.4f}] #{result['index']} {text}")
    print(f"    latency: {elapsed_ms:.1f} ms end to end over HTTP")
    say("GET /info")
    print(indented(json.dumps(call("GET", f"{base}/info")[1], indent=2)))


def over_the_k_cap(base: str, k_cap: int) -> None:
    say(f"POST /v2/rerank with {k_cap + 1} documents: one more than the k cap")
    status, answer = call(
        "POST", f"{base}/v2/rerank", {"query": QUERY, "documents": ["passage"] * (k_cap + 1)}
    )
    print(f"    -> {status}")
    print(indented(json.dumps(answer, indent=2)))


def target_of(target: dict[str, Any]) -> str:
    for key in ("value", "averageValue", "averageUtilization"):
        if key in target:
            return f"{key} {target[key]}"
    return target["type"]


def summary(obj: dict[str, Any]) -> str:
    """The fields `kubectl get` would show for each kind the operator renders, on one line."""
    spec, kind = obj.get("spec", {}), obj["kind"]
    if kind == "Deployment":
        container = spec["template"]["spec"]["containers"][0]
        requests = container.get("resources", {}).get("requests", {})
        return (
            f"image {container['image']}, requests cpu {requests.get('cpu')} memory {requests.get('memory')}"
        )
    if kind == "Service":
        return "ports " + ", ".join(f"{port['name']}:{port['port']}" for port in spec["ports"])
    if kind == "HorizontalPodAutoscaler":
        metrics = [m[m["type"][0].lower() + m["type"][1:]] for m in spec["metrics"]]
        targets = ", ".join(f"{m['metric']['name']} {target_of(m['target'])}" for m in metrics)
        return f"replicas {spec['minReplicas']}-{spec['maxReplicas']} on {targets}"
    if kind == "ScaledObject":
        return f"replicas {spec.get('minReplicaCount')}-{spec.get('maxReplicaCount')} on KEDA triggers"
    if kind == "PodDisruptionBudget":
        return (
            f"maxUnavailable {spec.get('maxUnavailable')}"
            if "maxUnavailable" in spec
            else f"minAvailable {spec.get('minAvailable')}"
        )
    if kind == "NetworkPolicy":
        ports = sorted(
            {str(port.get("port")) for rule in spec.get("ingress", []) for port in rule.get("ports", [])}
        )
        return f"ingress to ports {', '.join(ports) or 'none'}; egress {len(spec.get('egress', []))} rules"
    if kind == "Job":
        return "prepares the model artefact once: " + spec["template"]["spec"]["containers"][0]["image"]
    if kind == "PersistentVolumeClaim":
        return f"model cache, {spec['resources']['requests']['storage']} {', '.join(spec['accessModes'])}"
    return ""


def render_examples(manifests: Path) -> None:
    manifests.mkdir(parents=True, exist_ok=True)
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        written = shown(manifests / example.name)
        say(f"reranker-operator render -f {shown(example)} > {written}")
        rendered = subprocess.run(
            [BIN / "reranker-operator", "render", "-f", example], capture_output=True, text=True, check=False
        )
        if rendered.returncode != 0:
            raise SystemExit(rendered.stderr.strip())
        (manifests / example.name).write_text(rendered.stdout)
        objects = [obj for obj in yaml.safe_load_all(rendered.stdout) if obj]
        width = max(len(obj["kind"]) for obj in objects)
        print(f"    {'KIND':<{width}}  {'NAME':<28}  WHAT")
        for obj in objects:
            print(f"    {obj['kind']:<{width}}  {obj['metadata']['name']:<28}  {summary(obj)}")
        for line in rendered.stderr.splitlines():
            print(f"    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show the server's log, at debug level")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "build" / "demo", help="where models, logs and manifests go"
    )
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    model = choose_model(out)
    artefact = prepare_artefact(model, out, "debug" if args.verbose else "info")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    say(f"Starting reranker-server on {base}; /ready is 503 until the canaries and warm-up passed")
    with running_server(model, artefact, port, out, args.verbose) as process:
        wait_until_ready(base, process, out / "server.log")
        rerank(base)
        over_the_k_cap(base, K_CAP)
    render_examples(out / "manifests")
    say(f"Demo finished. The rendered objects are in {shown(out / 'manifests')}/")


if __name__ == "__main__":
    main()
