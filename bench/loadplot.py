"""The load sweep's chart: P95 and goodput against offered rate, one column per workload.

Top row: P95 of the accepted answers (log scale) with the SLO line; open markers are steps that
failed (P95 over the SLO or >= 1 % errors), an x at the client timeout a step where no answer was
accepted. Bottom row: goodput (answers within the SLO per second) with the ideal y = x; a star
marks each contender's capacity. Rates on a log scale: the contenders differ several-fold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STYLE: Final = {
    "st-fastapi": ("sentence-transformers + FastAPI --workers 2 (seed's recipe)", "tab:gray", "o"),
    "optimum-fastapi": ("optimum ORT export + FastAPI --workers 2", "tab:orange", "s"),
    "ours-fp32": ("kube-reranker fp32", "tab:blue", "^"),
    "ours-int8": ("kube-reranker int8", "tab:green", "D"),
    "ours-int8-strict": ("kube-reranker int8, deadline = SLO", "tab:olive", "v"),
}


def _p95_panel(ax: Any, workload: dict[str, Any]) -> None:
    slo_ms = workload["slo_ms"]
    timeout_ms = workload["client_timeout_s"] * 1000
    for key, (label, color, marker) in STYLE.items():
        sweep = workload["contenders"].get(key) or {}
        unanswered = [s["rate_rps"] for s in sweep.get("steps", []) if s["p95_s"] is None]
        ax.plot(unanswered, [timeout_ms] * len(unanswered), "x", color=color, markersize=9)
        steps = [s for s in sweep.get("steps", []) if s["p95_s"] is not None]
        if not steps:
            continue
        rates = [s["rate_rps"] for s in steps]
        ax.plot(rates, [s["p95_s"] * 1000 for s in steps], color=color, label=label)
        for step in steps:
            ax.plot(
                step["rate_rps"],
                step["p95_s"] * 1000,
                marker=marker,
                color=color,
                markerfacecolor=color if step["passed"] else "white",
            )
    ax.axhline(slo_ms, color="tab:red", linestyle="--", linewidth=1)
    ax.axhline(timeout_ms, color="black", linestyle=":", linewidth=0.8)
    ax.annotate(
        f"client timeout {timeout_ms:.0f} ms",
        (0.01, timeout_ms),
        xycoords=("axes fraction", "data"),
        fontsize=7,
        xytext=(0, 3),
        textcoords="offset points",
    )
    ax.annotate(
        f"SLO {slo_ms} ms",
        (0.01, slo_ms),
        xycoords=("axes fraction", "data"),
        color="tab:red",
        fontsize=8,
        xytext=(0, 3),
        textcoords="offset points",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("P95 of accepted answers, ms")
    ax.set_title(
        f"{workload['name']}: k={workload['k']}, {workload['kind']} passages, "
        f"max_length {workload['max_length']}, SLO {slo_ms} ms",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)


def _goodput_panel(ax: Any, workload: dict[str, Any]) -> None:
    top, low = 0.0, float("inf")
    for key, (label, color, marker) in STYLE.items():
        sweep = workload["contenders"].get(key)
        steps = (sweep or {}).get("steps", [])
        if not steps:
            continue
        rates = [s["rate_rps"] for s in steps]
        top, low = max(top, *rates), min(low, *rates)
        ax.plot(rates, [s["goodput_rps"] for s in steps], color=color, marker=marker, label=label)
        capacity = sweep["capacity"]
        if capacity["capacity_rps"] > 0:
            ax.plot(
                capacity["capacity_rps"],
                capacity["goodput_at_capacity_rps"],
                marker="*",
                markersize=14,
                color=color,
                markeredgecolor="black",
            )
    if top:
        ideal = [low * (top / low) ** (i / 50) for i in range(51)]
        ax.plot(ideal, ideal, color="black", linestyle=":", linewidth=1, label="goodput = offered")
    ax.set_xscale("log")
    ax.set_xlabel("offered rate, requests/s (Poisson, open loop)")
    ax.set_ylabel("goodput, answers within SLO per s")
    ax.grid(True, alpha=0.3)


def plot(results: dict[str, Any], path: Path) -> None:
    workloads = results["workloads"]
    figure, axes = plt.subplots(
        2, len(workloads), figsize=(max(11, 7.5 * len(workloads)), 10), squeeze=False, sharex="col"
    )
    for column, workload in enumerate(workloads):
        _p95_panel(axes[0][column], workload)
        _goodput_panel(axes[1][column], workload)
    handles, labels = axes[1][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=3, fontsize=9, bbox_to_anchor=(0.5, 0.945))
    machine = results["machine"]
    config = results["config"]
    figure.suptitle(
        "Capacity per pod at the SLO: open-loop Poisson load on loopback\n"
        f"{machine['model_name']}, {machine['cores']} cores, {config['threads']} threads per contender "
        f"(SGEMM {machine.get('measured_sgemm_gflops')} GFLOP/s measured), "
        f"{config['step_s']:.0f}-{config['max_step_s']:.0f} s per rate"
        + (f", SLOs x{config['slo_scale']}" if config.get("slo_scale", 1.0) != 1.0 else ""),
        y=0.995,
        fontsize=11,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.92))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
