"""The operator's own Prometheus metrics: how often it reconciles, how long that takes, what it changes.

Served in the Prometheus text format on RERANKER_OPERATOR_METRICS_PORT (the chart's
ServiceMonitor scrapes it). A few counters do not justify a client library in the operator
image, so the exposition is written here; the instance lives in kopf's memo, not in a global.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Final

from aiohttp import web

PREFIX: Final = "reranker_operator"
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


class OperatorMetrics:
    def __init__(self) -> None:
        self._reconciliations: defaultdict[str, int] = defaultdict(int)
        self._duration_sum = 0.0
        self._duration_count = 0
        self._changes: defaultdict[tuple[str, str], int] = defaultdict(int)

    def reconciled(self, result: str, seconds: float) -> None:
        """One reconcile ended: result is success, invalid_spec, rejected or retrying."""
        self._reconciliations[result] += 1
        self._duration_sum += seconds
        self._duration_count += 1

    def changed(self, action: str, kind: str) -> None:
        """The operator created, updated or deleted a child object."""
        self._changes[action, kind] += 1

    def render(self) -> str:
        lines = [
            f"# HELP {PREFIX}_reconciliations_total Reconciles of RerankerDeployments by result.",
            f"# TYPE {PREFIX}_reconciliations_total counter",
            *(
                f'{PREFIX}_reconciliations_total{{result="{result}"}} {count}'
                for result, count in sorted(self._reconciliations.items())
            ),
            f"# HELP {PREFIX}_reconcile_duration_seconds Time spent reconciling, API calls included.",
            f"# TYPE {PREFIX}_reconcile_duration_seconds summary",
            f"{PREFIX}_reconcile_duration_seconds_sum {self._duration_sum}",
            f"{PREFIX}_reconcile_duration_seconds_count {self._duration_count}",
            f"# HELP {PREFIX}_child_changes_total Child objects created, updated or deleted, by kind.",
            f"# TYPE {PREFIX}_child_changes_total counter",
            *(
                f'{PREFIX}_child_changes_total{{action="{action}",kind="{kind}"}} {count}'
                for (action, kind), count in sorted(self._changes.items())
            ),
        ]
        return "\n".join(lines) + "\n"


async def serve(metrics: OperatorMetrics, port: int) -> web.AppRunner:
    """Start the /metrics listener; the caller cleans the runner up on shutdown."""

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host="0.0.0.0", port=port).start()
    return runner
