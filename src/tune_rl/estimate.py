"""How long a sweep will take on this machine, from `make bench`'s figures.

A sweep's cost is its trials' env steps: ASHA lets every trial reach the
grace period, then keeps 1/reduction_factor of them at each rung. Divided by
the per-trial rate `make bench` measured under `tune-rl sweep` (Tune, MLflow
and checkpoints included), times the trials that run at once. Trials that ask
for a GPU are estimated from `make bench-gpu`'s figures instead.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from tune_rl.errors import UsageError
from tune_rl.spec import PROJECT_ROOT, SweepSpec

BENCH_FILE = PROJECT_ROOT / "benchmarks" / "results" / "latest.json"
GPU_BENCH_FILE = BENCH_FILE.with_name("gpu.json")
# The measured trial each algorithm's rate is read from. The other DQN
# presets are lighter than Rainbow, so its rate bounds their time from above.
RATE_FIGURES = {"PPO": "ppo_sweep_trial_env_steps_per_s",
                "DQN": "rainbow_dqn_sweep_trial_env_steps_per_s"}
# On a GPU: (one trial alone, each of several sharing the GPU), full profiles.
GPU_RATE_FIGURES = {"PPO": ("ppo_full_profile_env_steps_per_s",) * 2,
                    "DQN": ("rainbow_full_profile_alone_env_steps_per_s",
                            "rainbow_full_profile_at_once_per_trial_env_steps_per_s")}


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


def estimate(spec: SweepSpec, rllib_algo: str, per_trial: dict[str, float],
             bench_file=None, machine: dict[str, float] | None = None) -> dict[str, Any] | str:
    """The sweep's wall time on this machine, or why it cannot be estimated.
    `per_trial` is what one trial asks Ray for; `machine` this machine's CPUs
    and GPUs (default: what the OS and torch see)."""
    uses_gpu = per_trial.get("GPU", 0) > 0
    bench_file = bench_file or (GPU_BENCH_FILE if uses_gpu else BENCH_FILE)
    if not bench_file.exists():
        return (f"no estimate: run `make {'bench-gpu' if uses_gpu else 'bench-quick'}` "
                "on this machine first")
    report = json.loads(bench_file.read_text())
    figures = report["figures"]
    machine = machine or {"CPU": os.cpu_count() or 1, "GPU": _gpus() if uses_gpu else 0}
    cpus = machine["CPU"]
    if uses_gpu and not machine.get("GPU"):
        return ("no estimate: the trials ask for a GPU (gpus_per_learner) and this "
                    "machine has none")
    at_once = min(spec.max_concurrent or trials_at_once(per_trial, machine), spec.trials)
    steps = asha_env_steps(spec.trials, spec.grace_env_steps, spec.max_env_steps,
                           spec.reduction_factor, spec.early_stopping)
    if uses_gpu:
        # The bench ran as many trials as fit on the GPU: its per-trial rate
        # has the sharing in it.
        alone, shared = GPU_RATE_FIGURES.get(rllib_algo, ("", ""))
        rate = figures.get(shared if at_once > 1 else alone, {}).get("value")
        sharing, startup = 1.0, 0.0
    else:
        rate = figures.get(RATE_FIGURES.get(rllib_algo, ""), {}).get("value")
        # Trials sharing the cores run slower each: the bench's 1-vs-2 figure.
        one = figures.get("rainbow_1_concurrent_total_env_steps_per_s", {}).get("value")
        two = figures.get("rainbow_2_concurrent_total_env_steps_per_s", {}).get("value")
        sharing = min(1.0, two / (2 * one)) if (one and two and at_once > 1) else 1.0
        startup = figures.get("ppo_sweep_startup_to_first_result_s", {}).get("value", 0)
    if not rate:
        return f"no estimate: {bench_file.name} measures no {rllib_algo} trial"
    seconds = steps / (rate * at_once * sharing) + startup * math.ceil(spec.trials / at_once)
    note = "" if report["machine"]["cpus"] == cpus else \
        f" (measured on {report['machine']['cpus']} CPUs, this machine has {cpus})"
    return {"minutes": round(seconds / 60, 1), "env_steps": int(steps),
            "trials_at_once": at_once,
            "from": f"{bench_file} of {report['measured_at']}: "
                    f"{rate} env steps/s per trial{note}"}


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


def trials_at_once(per_trial: dict[str, float], cluster: dict[str, float]) -> int:
    """How many trials the cluster runs at once: its CPUs over a trial's, and
    its GPUs over a trial's share of one (gpus_per_learner 0.25 puts four
    trials on each GPU, which one trial leaves idle most of the time).

    >>> trials_at_once({"CPU": 3, "GPU": 0.25}, {"CPU": 16, "GPU": 1})
    4
    >>> trials_at_once({"CPU": 1, "GPU": 0}, {"CPU": 2})
    2
    """
    if per_trial.get("GPU", 0) > 0 and not cluster.get("GPU"):
        raise UsageError(f"gpus_per_learner is {per_trial['GPU']:g}, but the Ray cluster has "
                         "no GPU: set gpus_per_learner: 0, or run on a machine with a GPU")
    # The small epsilon keeps 1.0 / 0.1 at 10 (float division gives 9.999...).
    return max(1, min(int(cluster.get(name, 0.0) / need + 1e-9)
                      for name, need in per_trial.items() if need > 0))
