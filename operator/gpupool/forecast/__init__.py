"""Forecasts from the live cluster: when each pending job should start.

Pure like the planner it runs (no kopf, kubernetes or network imports; time injected):
the operator, the CLI, the benchmarks and the tests call it the same way.
"""

from gpupool.forecast.durations import Duration, History, Run, Source, parse_duration
from gpupool.forecast.forward import Confidence, Estimate, Forecast, ForecastSettings, forecast

__all__ = [
    "Confidence",
    "Duration",
    "Estimate",
    "Forecast",
    "ForecastSettings",
    "History",
    "Run",
    "Source",
    "forecast",
    "parse_duration",
]
