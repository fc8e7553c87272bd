"""The peak benchmark's chart: fraction of peak per graph recipe, and where each int8 graph's time goes.

Left: useful GFLOP/s of one k=100 x 256 request over the machine's peak (int8 peak for int8, fp32
for fp32), the goal line at 40 %. Right: the int8 graphs' time per operator type, stacked, from
ONNX Runtime's profiler: the fusions the server no longer makes show up as their own bars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

INT8_GOAL: Final = 0.40
#: The old recipe pale, the server's full: fp32 blue, int8 green.
COLORS: Final = {
    "all-fusions/fp32": "lightsteelblue",
    "all-fusions/int8": "palegreen",
    "server/fp32": "tab:blue",
    "server/int8": "tab:green",
}
#: Operator types drawn apart; the rest are summed as "other".
OPS: Final = (
    "QAttention",
    "Attention",
    "DynamicQuantizeMatMul",
    "MatMul",
    "SkipLayerNormalization",
    "LayerNormalization",
    "BiasGelu",
    "Gelu",
    "Add",
)


def plot(results: dict[str, Any], path: Path) -> None:
    summary = results["summary"]
    keys = [key for key in summary if "/" in key and not key.startswith("speedup")]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    fractions = [summary[key]["fraction_of_peak"] for key in keys]
    bars = left.bar(keys, fractions, color=[COLORS[key] for key in keys])
    for bar, key in zip(bars, keys, strict=True):
        left.annotate(
            f"{summary[key]['useful_gflops']:.0f} GFLOP/s\n{summary[key]['median_ms']:.0f} ms",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    left.axhline(INT8_GOAL, color="tab:green", linestyle=":", label="int8 goal: 40 % of the int8 peak")
    left.set_ylabel("fraction of peak (int8 peak for int8, fp32 for fp32)")
    left.set_ylim(0, 1.1)
    left.legend(loc="upper left", fontsize=8)
    left.tick_params(axis="x", labelsize=8)
    peaks = results["peaks"]
    left.set_title(
        f"k={results['request']['k']} x {results['request']['max_length']} tokens; peaks: int8 "
        f"{max(peaks['int8'].values()):.0f}, fp32 {max(peaks['fp32'].values()):.0f} GFLOP/s",
        fontsize=9,
    )

    int8 = [key for key in results["profile_ms"] if key.endswith("int8")]
    bottoms = [0.0] * len(int8)
    for op in (*OPS, "other"):
        heights = []
        for key in int8:
            times = results["profile_ms"][key]
            heights.append(
                sum(v for o, v in times.items() if o not in OPS) if op == "other" else times.get(op, 0.0)
            )
        if any(heights):
            right.bar(int8, heights, bottom=bottoms, label=op)
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    right.set_ylabel("ms per request, ONNX Runtime kernel time")
    right.set_title("int8: where the time goes", fontsize=9)
    right.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    machine = results["machine"]
    figure.suptitle(
        f"{machine['model_name']} ({machine['cores']} cores, {machine['int8']['reason']})", fontsize=9
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
