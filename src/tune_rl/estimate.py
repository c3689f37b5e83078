"""How long a sweep will take on this machine, from `make bench`'s figures.

A sweep's cost is its trials' env steps: ASHA lets every trial reach the
grace period, then keeps 1/reduction_factor of them at each rung. Divided by
the per-trial rate `make bench` measured under `tune-rl sweep` (Tune, MLflow
and checkpoints included), times the trials that run at once.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from tune_rl.spec import PROJECT_ROOT, SweepSpec

BENCH_FILE = PROJECT_ROOT / "benchmarks" / "results" / "latest.json"
# The measured trial each algorithm's rate is read from. The other DQN
# presets are lighter than Rainbow, so its rate bounds their time from above.
RATE_FIGURES = {"PPO": "ppo_sweep_trial_env_steps_per_s",
                "DQN": "rainbow_dqn_sweep_trial_env_steps_per_s"}


def asha_env_steps(trials: int, grace: int, max_t: int, reduction_factor: int,
                   early_stopping: str = "asha") -> float:
    """Env steps of all trials together, when ASHA stops as planned.

    >>> asha_env_steps(4, 3000, 6000, 2)  # 4 trials to 3,000, 2 on to 6,000
    18000.0
    """
    if early_stopping == "none":
        return float(trials * max_t)
    total, reached, continuing = 0.0, 0, float(trials)
    rung = grace
    while rung < max_t:
        total += continuing * (rung - reached)
        reached, rung = rung, rung * reduction_factor
        continuing = max(1.0, continuing / reduction_factor)
    return total + continuing * (max_t - reached)


def estimate(spec: SweepSpec, rllib_algo: str, cpus_per_trial: float,
             bench_file=BENCH_FILE) -> dict[str, Any] | str:
    """The sweep's wall time on this machine, or why it cannot be estimated."""
    if not bench_file.exists():
        return "no estimate: run `make bench-quick` on this machine first"
    figures = json.loads(bench_file.read_text())
    rate = figures["figures"].get(RATE_FIGURES.get(rllib_algo, ""), {}).get("value")
    if not rate:
        return f"no estimate: `make bench` measures no {rllib_algo} trial"
    from tune_rl.runner import trials_at_once

    cpus = os.cpu_count() or 1
    at_once = spec.max_concurrent or trials_at_once({"CPU": cpus_per_trial}, {"CPU": cpus})
    at_once = min(at_once, spec.trials)
    steps = asha_env_steps(spec.trials, spec.grace_env_steps, spec.max_env_steps,
                           spec.reduction_factor, spec.early_stopping)
    # Trials sharing the cores run slower each: the bench's 1-vs-2 figure.
    one = figures["figures"].get("rainbow_1_concurrent_total_env_steps_per_s", {}).get("value")
    two = figures["figures"].get("rainbow_2_concurrent_total_env_steps_per_s", {}).get("value")
    sharing = min(1.0, two / (2 * one)) if (one and two and at_once > 1) else 1.0
    startup = figures["figures"].get("ppo_sweep_startup_to_first_result_s", {}).get("value", 0)
    seconds = steps / (rate * at_once * sharing) + startup * math.ceil(spec.trials / at_once)
    note = "" if figures["machine"]["cpus"] == cpus else \
        f" (measured on {figures['machine']['cpus']} CPUs, this machine has {cpus})"
    return {"minutes": round(seconds / 60, 1), "env_steps": int(steps),
            "trials_at_once": at_once,
            "from": f"{bench_file} of {figures['measured_at']}: "
                    f"{rate} env steps/s per trial{note}"}
