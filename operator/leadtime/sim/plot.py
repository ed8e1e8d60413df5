"""One PNG per simulation: demand, replicas (ready and starting) and p95 latency per policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_runs(scenario, results: list, path: str | Path) -> None:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results:
        return
    tick_s = results[0].timeline.tick_s
    step = max(1, int(round(60.0 / tick_s)))  # minute resolution keeps multi-day plots readable
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    demand = results[0].timeline.arrivals
    n = len(demand) // step * step
    minutes = np.arange(n // step) * step * tick_s / 3600.0
    axes[0].plot(minutes, demand[:n].reshape(-1, step).mean(axis=1), color="black", lw=0.8)
    axes[0].set_ylabel("arrivals (req/s)")
    for result in results:
        label = result.policy + ("" if not result.params else " " + ",".join(f"{v}" for v in result.params.values()))
        ready = result.timeline.ready[:n].reshape(-1, step).mean(axis=1)
        starting = result.timeline.starting[:n].reshape(-1, step).mean(axis=1)
        (line,) = axes[1].plot(minutes, ready, lw=1.0, label=label)
        axes[1].plot(minutes, ready + starting, lw=0.6, ls=":", color=line.get_color())
        metrics = result.metrics
        if metrics.window_p95_s is not None and len(metrics.window_p95_s):
            axes[2].plot(metrics.window_start_s / 3600.0, metrics.window_p95_s, lw=0.8, color=line.get_color())
    axes[1].set_ylabel("replicas (ready; dotted +starting)")
    axes[2].axhline(scenario.config.slo_p95_s, color="red", lw=0.8, ls="--")
    axes[2].set_yscale("log")
    axes[2].set_ylabel(f"p95 {scenario.config.slo_metric} per minute (s)")
    axes[2].set_xlabel("hours")
    axes[1].legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
