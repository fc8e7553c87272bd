"""`helm test` check: a RerankerDeployment's endpoint is ready and ranks a request correctly.

Runs inside the reranker-server image with nothing but the standard library, so the check needs no
extra image. It waits for /ready (model download and warm-up may take minutes), then sends one
Cohere-shaped request to /v1/rerank and checks what any client relies on: one result per requested
top_n, valid indices, scores sorted from best to worst. Exit status 0 means the endpoint serves.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Final

QUERY: Final = "What is the capital of France?"
DOCUMENTS: Final = (
    "Paris is the capital and largest city of France.",
    "Bananas are rich in potassium.",
    "Berlin is the capital of Germany.",
)
TOP_N: Final = 2
POLL_INTERVAL_S: Final = 5.0
REQUEST_TIMEOUT_S: Final = 30.0


class EndpointError(Exception):
    """The endpoint answered, but not as a reranker must."""


def wait_ready(url: str, timeout_s: float) -> float:
    """Poll /ready until it answers 200; returns the seconds waited. /ready is 503 during warm-up."""
    started = time.monotonic()
    last = "no answer yet"
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=REQUEST_TIMEOUT_S) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read(500).decode('utf-8', 'replace')}"
        except (urllib.error.URLError, OSError) as exc:
            last = f"unreachable: {exc}"
        if time.monotonic() - started + POLL_INTERVAL_S > timeout_s:
            raise EndpointError(f"{url}/ready not 200 after {timeout_s:.0f} s; last answer: {last}")
        time.sleep(POLL_INTERVAL_S)


def first_key(path: str) -> str:
    """The first key of an API key file (one per line, # comments), as the server reads it."""
    with open(path, encoding="utf-8") as keys:
        for line in keys:
            if line.strip() and not line.strip().startswith("#"):
                return line.strip()
    raise EndpointError(f"the API key file {path} holds no key")


def rerank(url: str, api_key: str | None = None) -> dict[str, Any]:
    """Send one Cohere-shaped rerank request and return the decoded answer."""
    body = json.dumps({"query": QUERY, "documents": list(DOCUMENTS), "top_n": TOP_N}).encode()
    headers = {"Content-Type": "application/json"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(f"{url}/v1/rerank", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise EndpointError(f"POST {url}/v1/rerank: HTTP {exc.code}: {exc.read(500).decode()}") from exc


def check_ranking(answer: dict[str, Any]) -> list[tuple[int, float]]:
    """Return (index, score) pairs after checking the answer has the shape clients rely on."""
    results = answer.get("results")
    if not isinstance(results, list) or len(results) != TOP_N:
        raise EndpointError(f"expected {TOP_N} results (top_n), got: {json.dumps(answer)[:500]}")
    ranked = [(item.get("index"), item.get("relevance_score")) for item in results]
    for index, score in ranked:
        if not isinstance(index, int) or not 0 <= index < len(DOCUMENTS):
            raise EndpointError(f"result index {index!r} is not one of the {len(DOCUMENTS)} documents")
        if not isinstance(score, int | float):
            raise EndpointError(f"relevance_score {score!r} of document {index} is not a number")
    scores = [score for _, score in ranked]
    if scores != sorted(scores, reverse=True):
        raise EndpointError(f"results are not sorted by relevance_score: {scores}")
    return ranked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="base URL of the reranker Service")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="seconds to wait for /ready")
    parser.add_argument("--api-key-file", help="send the first key of this file as a Bearer token")
    parser.add_argument("--skip", metavar="REASON", help="there is nothing to test: say why and pass")
    args = parser.parse_args(argv)
    if args.skip:
        print(f"SKIPPED {args.skip}")
        return 0
    if not args.url:
        parser.error("--url is required unless --skip says why there is nothing to test")
    url = args.url.rstrip("/")
    try:
        api_key = first_key(args.api_key_file) if args.api_key_file else None
        waited = wait_ready(url, args.timeout_s)
        ranked = check_ranking(rerank(url, api_key))
    except EndpointError as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    print(f"OK {url} ready after {waited:.0f} s; ranking for {QUERY!r}:")
    for index, score in ranked:
        print(f"  {score:.4f}  {DOCUMENTS[index]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
