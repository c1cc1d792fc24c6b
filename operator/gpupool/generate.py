"""`gpupool crds` (`make crds`): every file generated from a source in the package.

- crds/*.yaml and the Helm chart's copies, from the resource models;
- docs/api.md, the API reference, from the same schemas;
- the chart's copy of the workload helper (helm/gpupool/files/workload.py), which the
  chart ships as a ConfigMap: Helm reads files only from inside the chart.

Tests fail when a committed copy drifts from its source.
"""

from __future__ import annotations

from pathlib import Path

from gpupool.api.crdgen import write_crds
from gpupool.api.reference import write_reference

WORKLOAD_SOURCE = Path(__file__).resolve().parent / "workload.py"


def write_workload_copy(path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(WORKLOAD_SOURCE.read_bytes())
    return target


def write_generated(
    crds: str | Path,
    chart_crds: str | Path | None,
    reference: str | Path | None,
    chart_workload: str | Path | None,
) -> list[Path]:
    written = write_crds(crds, chart_crds)
    if reference:
        written.append(write_reference(reference))
    if chart_workload:
        written.append(write_workload_copy(chart_workload))
    return written
