"""The sensitivity table from the JSON documents benchmarks/sensitivity.sh wrote.

    python benchmarks/sensitivity.py DIR

One Markdown table per cluster size: a row per idle model × SIGTERM-save fraction,
per policy avg JCT (h), GPU-hours lost, p99 time-to-GPUs within guarantee (s) and
max ρ (finish-time fairness), then gpupool against the better Kueue baseline
(`borrow` or `kueue-fair`) and whether the bar holds: avg JCT ≤ 0.85× and lost
GPU-hours ≤ 0.5× the better baseline's, and no team's ρ above its ρ under `static`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

BASELINES = ("borrow", "kueue-fair")
POLICIES = ("static", "borrow", "kueue-fair", "gpupool")
JCT_BAR = 0.85
LOST_BAR = 0.5


def load(directory: Path) -> dict[tuple[int, str, float], dict[str, Any]]:
    runs: dict[tuple[int, str, float], dict[str, Any]] = {}
    static: dict[int, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        text = path.read_text().strip()
        if not text:
            continue
        data = json.loads(text)
        given = data["parameters"]
        gpus = int(given["gpus"])
        if list(data["policies"]) == ["static"]:
            static[gpus] = data["policies"]["static"]
            continue
        runs[gpus, given["idle_model"], float(given["sigterm_save"])] = dict(data["policies"])
    for (gpus, _, _), policies in runs.items():
        if gpus in static:
            policies["static"] = static[gpus]
    return runs


def verdict(policies: dict[str, Any]) -> tuple[float, float, str]:
    """gpupool's JCT and lost GPU-hours over the better baseline's, and the bar: "met",
    or the parts it misses."""
    mine = policies["gpupool"]
    best = min(
        (policies[name] for name in BASELINES if name in policies), key=lambda m: m["avg_jct_s"]
    )
    jct = mine["avg_jct_s"] / best["avg_jct_s"] if best["avg_jct_s"] else float("inf")
    lost_best = min(policies[name]["lost_gpu_hours"] for name in BASELINES if name in policies)
    lost = mine["lost_gpu_hours"] / lost_best if lost_best else float("inf")
    static = policies.get("static", {}).get("rho", {})
    fair = bool(static) and all(
        rho <= static.get(team, float("inf")) for team, rho in mine["rho"].items()
    )
    missed = [
        part
        for part, ok in (("JCT", jct <= JCT_BAR), ("lost", lost <= LOST_BAR), ("ρ", fair))
        if not ok
    ]
    return jct, lost, "met" if not missed else "misses " + ", ".join(missed)


def render(runs: dict[tuple[int, str, float], dict[str, Any]]) -> str:
    lines: list[str] = []
    for gpus in sorted({key[0] for key in runs}):
        lines.append(f"**{gpus} GPUs** — per policy: avg JCT h / lost GPU-h / p99 wait within")
        lines.append("guarantee s / max ρ; then gpupool ÷ the better baseline (JCT, lost), bar")
        lines.append("")
        head = " | ".join(p for p in POLICIES)
        lines.append(f"| idle, save | {head} | gpupool ÷ best | bar |")
        lines.append("|---|" + "---:|" * len(POLICIES) + "---:|:---:|")
        for key in sorted(k for k in runs if k[0] == gpus):
            policies = runs[key]
            cells = []
            for name in POLICIES:
                m = policies.get(name)
                cells.append(
                    "—"
                    if m is None
                    else f"{m['avg_jct_s'] / 3600:.1f} / {m['lost_gpu_hours']:,.0f} / "
                    f"{m['p99_guaranteed_wait_s']:,.0f} / {m['max_rho']:.2f}"
                )
            jct, lost, bar = verdict(policies) if "gpupool" in policies else (0.0, 0.0, "—")
            lines.append(
                f"| {key[1]}, {key[2]:g} | "
                + " | ".join(cells)
                + f" | {jct:.2f}× / {lost:.2f}× | {bar} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    print(render(load(Path(sys.argv[1]))))


if __name__ == "__main__":
    main()
