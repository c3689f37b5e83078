"""What a trial costs: CPU seconds, GPU seconds and the machine it ran on.

Counted in the trial's actor at every result (`actor_cost`) and added up
over the actors that ran the trial (`TrialCost`), so that a report can plot
score against cost.

- CPU seconds: user plus system CPU time (`time.process_time`, all threads)
  of the trial's actor process, which samples and learns when it has no env
  runners and always runs the evaluation games, and of each of its remote env
  runners' processes, each since its process started (imports and setup
  included). Not counted: Tune's driver (the MLflow logging, the search),
  Ray's own daemons, and an env runner's count before RLlib restarted it.
  tune-rl's trials keep their learner in the trial's process (RLlib's
  `num_learners` is 0), so no learner actor is left out.
- GPU seconds: the GPUs Ray reserved for the trial (its resource request,
  fractions included: `gpus_per_learner: 0.25` is 0.25) times the seconds
  since its actor started: time with a GPU assigned, not time the GPU was
  busy (which would need NVML per process). A trial without a GPU is 0.
- The machine: the CPU model (/proc/cpuinfo's "model name") and the name of
  the GPU the trial was given ("none" without one), from the trial's node.

A trial run by several actors one after another (a retry after a crash,
`--resume`, a PBT exploit) has each actor's counters from its own start; the
trial's total is the sum of each actor's last count, so work redone after a
restore is counted again: it was paid for.
"""

from __future__ import annotations

import functools
import math
import platform
import time
from collections.abc import Iterable
from typing import Any

COST = "cost"  # in each result: the counters of the trial's current actors


def _process_cpu_seconds(_runner=None) -> float:
    return time.process_time()


@functools.cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.cache
def gpu_name(gpus: float) -> str:
    if gpus <= 0:
        return "none"
    import torch

    if not torch.cuda.is_available():
        return "unknown"
    return torch.cuda.get_device_name(torch.cuda.current_device())


def actor_cost(algo, started: float, gpus: float) -> dict[str, Any]:
    """In the trial's actor: the counters of its process and its remote env
    runners since they started; `started` is when the actor began, `gpus`
    what Ray reserved for the trial."""
    own = _process_cpu_seconds()
    group = getattr(algo, "env_runner_group", None)
    runners = (group.foreach_env_runner(_process_cpu_seconds, local_env_runner=False)
               if group is not None and group.num_remote_env_runners() else [])
    return {"cpu_seconds": own + sum(runners), "trial_process_cpu_seconds": own,
            "env_runner_cpu_seconds": float(sum(runners)), "env_runners": len(runners),
            "gpus": gpus, "gpu_seconds": gpus * (time.time() - started),
            "actor_started": started, "cpu": cpu_model(), "gpu": gpu_name(gpus)}


class TrialCost:
    """A trial's cost over every actor that ran it: each actor's last count,
    added up. `cpu_seconds`/`gpu_seconds` start from what was already counted
    (the values MLflow holds when a resumed sweep's driver starts again)."""

    def __init__(self, cpu_seconds: float = 0.0, gpu_seconds: float = 0.0):
        self._done = [cpu_seconds, gpu_seconds]  # actors that have ended
        self._actor: tuple | None = None
        self._current = [0.0, 0.0]
        self.cpu = self.gpu = None  # the machine of the latest result

    def add(self, result: dict[str, Any]) -> dict[str, float]:
        """Counts one result; returns the trial's totals so far."""
        cost = _cost_of(result)
        if cost:
            actor = (result.get("node_ip"), cost.get("actor_started"))
            if actor != self._actor:
                self._done = [d + c for d, c in zip(self._done, self._current, strict=True)]
                self._actor = actor
            self._current = [float(cost["cpu_seconds"]), float(cost["gpu_seconds"])]
            self.cpu, self.gpu = cost.get("cpu"), cost.get("gpu")
        return self.totals()

    def totals(self) -> dict[str, float]:
        cpu, gpu = (d + c for d, c in zip(self._done, self._current, strict=True))
        return {"cpu_seconds": cpu, "gpu_seconds": gpu}


def _cost_of(result: dict[str, Any]) -> dict[str, Any] | None:
    """The result's counters, nested (a result) or flattened with "/" (a row
    of Tune's metrics_dataframe); None for a result without them."""
    cost = result.get(COST)
    if not isinstance(cost, dict):
        prefix = f"{COST}/"
        cost = {k[len(prefix):]: v for k, v in result.items() if k.startswith(prefix)}
    cpu = cost.get("cpu_seconds")
    return cost if isinstance(cpu, (int, float)) and math.isfinite(cpu) else None


def history_cost(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A trial's totals and machine from its whole history of results."""
    total = TrialCost()
    for result in results:
        total.add(result)
    return {**total.totals(), "cpu": total.cpu, "gpu": total.gpu}
