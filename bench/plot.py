"""The chart: latency vs candidate count per contender, with the 300 ms budget line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

BUDGET_MS: Final = 300
STYLE: Final = {
    "A": ("sentence-transformers (PyTorch fp32)", "tab:gray", "o"),
    "B": ("optimum ORT fp32, one call", "tab:orange", "s"),
    "C": ("kube-reranker fp32 (HTTP)", "tab:blue", "^"),
    "D": ("kube-reranker int8 (HTTP)", "tab:green", "D"),
}


def _latency_panel(ax: Any, cells: list[dict[str, Any]], title: str) -> None:
    for key, (label, color, marker) in STYLE.items():
        points = sorted((c["k"], c["contenders"][key]) for c in cells if key in c["contenders"])
        if not points:
            continue
        ks = [k for k, _ in points]
        medians = [s["median_s"] * 1000 for _, s in points]
        p95 = [s["p95_s"] * 1000 - s["median_s"] * 1000 for _, s in points]
        ax.errorbar(
            ks, medians, yerr=[[0] * len(p95), p95], label=label, color=color, marker=marker, capsize=3
        )
    ax.axhline(BUDGET_MS, color="tab:red", linestyle="--", linewidth=1)
    ax.text(
        ax.get_xlim()[0] if ax.has_data() else 0,
        BUDGET_MS * 1.08,
        " 300 ms budget",
        color="tab:red",
        fontsize=8,
    )
    ax.set_yscale("log")
    ax.set_xlabel("candidates per request (k)")
    ax.set_ylabel("latency, median (bar to P95), ms")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)


def _concurrency_panel(ax: Any, levels: list[dict[str, Any]]) -> None:
    for workload, line in (("mixed", "-"), ("short", ":")):
        for key in ("C", "D"):
            rows = sorted(
                (lv["clients"], lv)
                for lv in levels
                if lv.get("server") == key and lv.get("workload") == workload and "pairs_per_s" in lv
            )
            if not rows:
                continue
            _, color, marker = STYLE[key]
            ax.plot(
                [n for n, _ in rows],
                [lv["pairs_per_s"] for _, lv in rows],
                line,
                label=f"{key}, {workload} passages",
                color=color,
                marker=marker,
            )
            for n, lv in rows:
                ax.annotate(
                    f"P95 {lv['p95_s'] * 1000:.0f} ms",
                    (n, lv["pairs_per_s"]),
                    fontsize=6,
                    textcoords="offset points",
                    xytext=(4, 4),
                )
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 4, 16], ["1", "4", "16"])
    ax.set_yscale("log")
    ax.set_xlabel("concurrent clients (each k=10)")
    ax.set_ylabel("throughput, pairs/s")
    ax.set_title("E: concurrent clients (MiniLM, L=512)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.has_data():
        ax.legend(fontsize=7)


def _shapes_panel(ax: Any, cells: list[dict[str, Any]]) -> None:
    labels = []
    for index, cell in enumerate(cells):
        labels.append(
            f"{cell['model'].split('-h')[0]}\n{cell['workload']} k={cell['k']} L={cell['max_length']}"
        )
        for slot, key in enumerate(STYLE):
            if key in cell["contenders"]:
                _, color, _ = STYLE[key]
                ax.bar(
                    index + slot * 0.2 - 0.3,
                    cell["contenders"][key]["median_s"] * 1000,
                    width=0.2,
                    color=color,
                )
    ax.axhline(BUDGET_MS, color="tab:red", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("latency, median, ms")
    ax.set_title("bigger shapes (BERT-base, XLM-R-large)", fontsize=10)
    ax.grid(True, axis="y", which="both", alpha=0.3)


def plot(results: dict[str, Any], path: Path) -> None:
    cells = results["cells"]
    minilm = [c for c in cells if c["model"] == "minilm-l6-h384"]
    panels = [
        (w, length)
        for w in ("equal", "mixed")
        for length in (256, 512)
        if any(c["workload"] == w and c["max_length"] == length for c in minilm)
    ]
    figure, axes = plt.subplots(2, 3, figsize=(17, 10))
    flat = axes.flatten()
    for ax, (workload, length) in zip(flat, panels, strict=False):
        _latency_panel(
            ax,
            [c for c in minilm if c["workload"] == workload and c["max_length"] == length],
            f"MiniLM-L6, {workload}-length passages, max_length {length}",
        )
    for ax in flat[len(panels) : 4]:
        ax.axis("off")
    _concurrency_panel(flat[4], results.get("concurrency") or [])
    _shapes_panel(flat[5], [c for c in cells if c["model"] != "minilm-l6-h384"])
    handles, labels = flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=4, fontsize=9, bbox_to_anchor=(0.5, 0.965))
    machine = results["machine"]
    figure.suptitle(
        f"kube-reranker vs the usual CPU recipes: {machine['model_name']}, "
        f"{results['config']['threads']} threads "
        f"(fp32 peak {machine['fp32_peak_gflops']} GFLOP/s nominal, "
        f"SGEMM {machine.get('measured_sgemm_gflops')} GFLOP/s measured)",
        y=0.995,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
