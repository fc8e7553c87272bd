"""A thin client of Prometheus' HTTP query API, and the two readings the SLO status needs.

Only `GET /api/v1/query` (an instant query) is used: the operator asks for the same P95 the
autoscaler and the alerts use, so status, scaling and alerting can never disagree. Failures
(network, HTTP status, a Prometheus error) raise PrometheusError with what went wrong; the
caller reports them in a condition instead of retrying in a loop.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from reranker_operator.resources import promql
from reranker_operator.resources.common import ChildRef

QUERY_PATH: Final = "/api/v1/query"
TIMEOUT_S: Final = 10.0


class PrometheusError(Exception):
    """Prometheus could not answer a query; the message says why."""


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class SLOReading:
    """What Prometheus says about one RerankerDeployment; None where it has no series."""

    p95_seconds: float | None
    kcap_latency_seconds: float | None


class PrometheusClient:
    """One HTTP session per operator process (created in the startup handler, closed at cleanup)."""

    def __init__(self, base_url: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))

    async def close(self) -> None:
        await self._session.close()

    async def query(self, expression: str) -> list[Sample]:
        """An instant query; a scalar result comes back as one unlabelled sample."""
        url = f"{self.base_url}{QUERY_PATH}"
        try:
            async with self._session.get(url, params={"query": expression}) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PrometheusError(f"cannot reach {url}: {exc or type(exc).__name__}") from exc
        return parse_response(status, text, url)

    async def read_slo(self, ref: ChildRef) -> SLOReading:
        p95, kcap = await asyncio.gather(
            self.query(promql.p95_seconds(ref.namespace, ref.cr_name)),
            self.query(promql.warmup_kcap_latency_seconds(ref.namespace, ref.cr_name)),
        )
        return SLOReading(p95_seconds=_single(p95), kcap_latency_seconds=_single(kcap))


def parse_response(status: int, text: str, url: str) -> list[Sample]:
    """The samples of a /api/v1/query answer, or PrometheusError naming the problem."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        raise PrometheusError(
            f"{url} answered {status} with a body that is not JSON: {text[:200]!r}"
        ) from None
    if not isinstance(body, dict):
        raise PrometheusError(f"{url} answered {status} with unexpected JSON: {text[:200]!r}")
    if status != 200 or body.get("status") != "success":
        detail = body.get("error") or text[:200]
        raise PrometheusError(f"{url} answered {status} ({body.get('errorType', 'error')}): {detail}")
    data = body.get("data") or {}
    result = data.get("result")
    try:
        if data.get("resultType") == "scalar":
            return [Sample(labels={}, value=float(result[1]))]
        if data.get("resultType") == "vector":
            return [Sample(labels=item["metric"], value=float(item["value"][1])) for item in result]
    except (KeyError, IndexError, TypeError, ValueError):
        pass
    raise PrometheusError(f"{url} answered a result that is neither a scalar nor a vector: {text[:200]!r}")


def _single(samples: list[Sample]) -> float | None:
    """The one value of an aggregated query; no sample (or NaN) means no data."""
    if not samples or math.isnan(samples[0].value):
        return None
    return samples[0].value
