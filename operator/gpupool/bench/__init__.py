"""`gpupool bench ...`: benchmarks run on demand (`make bench`), never in tests."""

from __future__ import annotations

import typer

from gpupool.bench.agent import agent_bench
from gpupool.bench.e2e import e2e_bench
from gpupool.bench.forecast import forecast_bench
from gpupool.bench.forecast_accuracy import forecast_accuracy
from gpupool.bench.planner import planner as planner_bench

bench_app = typer.Typer(help="Benchmarks: print figures, run on demand.", no_args_is_help=True)
bench_app.command("agent")(agent_bench)
bench_app.command("e2e")(e2e_bench)
bench_app.command("forecast")(forecast_bench)
bench_app.command("forecast-accuracy")(forecast_accuracy)
bench_app.command("planner")(planner_bench)
