"""`make demo`: the main job end to end on one machine, offline.

It prepares a model (the hub's ms-marco MiniLM reranker when the hub answers, otherwise a
locally built test model, said loudly), serves it with `reranker-server`, shows readiness
waiting for warm-up, reranks with a Cohere-shaped request, renders the Kubernetes manifests
for every example, and stops the server it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HUB_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
BUILD = ROOT / "build" / "demo"
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hub_reachable() -> bool:
    """True only when the hub answers quickly: the demo must stay offline-safe."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        httpx.head(f"https://huggingface.co/api/models/{HUB_MODEL}", timeout=3.0)
    except httpx.HTTPError:
        return False
    return True


def choose_model() -> str:
    if hub_reachable():
        say(f"The Hugging Face hub answers: serving the real reranker {HUB_MODEL}")
        return HUB_MODEL
    model_dir = BUILD / "test-model"
    print("\n" + "!" * 78)
    print("!! The Hugging Face hub is not reachable: serving a LOCALLY BUILT TEST MODEL.")
    print("!! Its weights are random, so its SCORES ARE MEANINGLESS; latency is real.")
    print("!" * 78, flush=True)
    if not (model_dir / "config.json").exists():
        subprocess.run([BIN / "reranker-server", "make-test-model", "--out", model_dir], check=True)
    return str(model_dir)


def prepare_artefact(model: str) -> Path:
    """What the operator's Job (or initContainer) runs: one verified artefact the server then reads."""
    artefact = BUILD / "cache" / "artefacts" / "demo"
    say(f"reranker-server prepare --out {artefact} (download, export, fuse, canaries; reused when done)")
    env = {**os.environ, "RERANKER_MODEL": model, "RERANKER_CACHE_DIR": str(BUILD / "cache")}
    done = subprocess.run(
        [BIN / "reranker-server", "prepare", "--out", artefact], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip().splitlines()[-1])
    print(f"    {done.stdout.strip()}")
    return artefact


@contextlib.contextmanager
def running_server(model: str, artefact: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "RERANKER_MODEL": model,
        "RERANKER_ARTEFACT": str(artefact),
        "RERANKER_PORT": str(port),
        "RERANKER_HOST": "127.0.0.1",
        "RERANKER_METRICS_PORT": "0",
        "RERANKER_CACHE_DIR": str(BUILD / "cache"),
        "RERANKER_MAX_CANDIDATES": str(K_CAP),
        "RERANKER_MAX_LENGTH": "256",
    }
    process = subprocess.Popen([BIN / "reranker-server", "serve"], env=env)
    try:
        yield process
    finally:
        say("Stopping the server (SIGTERM: /ready turns 503, in-flight requests drain)")
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until_ready(base: str, process: subprocess.Popen[bytes], timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"reranker-server exited with {process.returncode} before it was ready")
        try:
            response = httpx.get(f"{base}/ready", timeout=2.0)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        line = f"GET /ready -> {response.status_code} {response.text}"
        if line != last:
            print(f"    {line}", flush=True)
            last = line
        if response.status_code == 200:
            return
        time.sleep(0.2)
    raise SystemExit(f"reranker-server was not ready within {timeout_s:.0f} s")


def rerank(base: str) -> None:
    body = {"query": QUERY, "documents": DOCUMENTS, "top_n": 3, "return_documents": True}
    say(f"POST /v2/rerank (Cohere shape), k={len(DOCUMENTS)}, top_n=3")
    started = time.perf_counter()
    response = httpx.post(f"{base}/v2/rerank", json=body, timeout=30.0)
    elapsed_ms = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    print(f"    query: {QUERY}")
    for rank, result in enumerate(response.json()["results"], start=1):
        score, text = result["relevance_score"], result["document"]["text"]
        print(f"    {rank}. [{score:.4f}] #{result['index']} {text}")
    print(f"    latency: {elapsed_ms:.1f} ms end to end over HTTP")
    info = httpx.get(f"{base}/info", timeout=5.0).json()
    print(f"    /info: {info}")


def over_the_k_cap(base: str, k_cap: int) -> None:
    say(f"POST /v2/rerank with {k_cap + 1} documents: one more than the k cap")
    body = {"query": QUERY, "documents": [f"passage {i}" for i in range(k_cap + 1)]}
    response = httpx.post(f"{base}/v2/rerank", json=body, timeout=30.0)
    print(f"    -> {response.status_code} {response.text}")


def render_examples() -> None:
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        say(f"reranker-operator render -f {example.relative_to(ROOT)}")
        rendered = subprocess.run(
            [BIN / "reranker-operator", "render", "-f", example], check=True, capture_output=True, text=True
        ).stdout
        kinds = [line.split(":", 1)[1].strip() for line in rendered.splitlines() if line.startswith("kind:")]
        print(f"    {len(kinds)} objects: {', '.join(kinds)}")


def main() -> None:
    BUILD.mkdir(parents=True, exist_ok=True)
    model = choose_model()
    artefact = prepare_artefact(model)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    say(f"Starting reranker-server on {base}; /ready is 503 until the canaries and warm-up passed")
    with running_server(model, artefact, port) as process:
        wait_until_ready(base, process)
        rerank(base)
        over_the_k_cap(base, K_CAP)
    render_examples()
    say("Demo finished")


if __name__ == "__main__":
    main()
