"""`make bench`: the speed figures the README quotes, measured on this machine.

Writes benchmarks/results.json. Each figure is a rate over a fixed amount of
work, so tests never need to assert on speed.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).with_name("results.json")


def breakout_steps_per_s(steps: int = 3000) -> float:
    from tune_rl.envs import make_breakout

    env = make_breakout({})
    env.reset(seed=0)
    env.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


class BenchTrial:
    """The parts of a Tune trial that the tracking callback reads."""

    trial_id = "bench0001"
    config = {"lr": 1e-4, "conv_filters": "nature", "target_network_update_freq": 500}
    error_file = None
    last_result: dict = {}

    def __str__(self) -> str:
        return "DQN_bench0001"


def mlflow_ms_per_result(results: int = 200) -> float:
    """Our tracking callback's cost per trial result on the embedded SQLite store."""
    from tune_rl.tracking import MLflowTracking

    with tempfile.TemporaryDirectory() as folder:
        tracking = MLflowTracking(f"sqlite:///{folder}/mlflow.db", "bench", "bench-sweep",
                                  {"algo": "DQN"}, {"algorithm": "DQN", "env": "breakout"})
        tracking.start_sweep()
        trial = BenchTrial()
        tracking.on_trial_start(0, [], trial)
        result = {"score": 1.0, "num_env_steps_sampled_lifetime": 0, "training_iteration": 0,
                  "time_this_iter_s": 1.0,
                  "env_runners": {"episode_return_mean": 1.0, "episode_return_min": 0.0,
                                  "episode_return_max": 3.0, "episode_len_mean": 200.0,
                                  "num_env_steps_sampled": 1000},
                  "learners": {"default_policy": {"total_loss": 0.5, "qf_loss": 0.4}}}
        start = time.perf_counter()
        for i in range(results):
            result["num_env_steps_sampled_lifetime"] = 1000 * i
            result["training_iteration"] = i
            tracking.on_trial_result(i, [], trial, result)
        return 1000 * (time.perf_counter() - start) / results


def main() -> None:
    figures = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "breakout_env_steps_per_s": round(breakout_steps_per_s(), 1),
        "mlflow_ms_per_trial_result_sqlite": round(mlflow_ms_per_result(), 2),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
