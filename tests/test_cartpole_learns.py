"""The whole loop learns: a PPO sweep on CartPole beats random play by far.

CartPole is the cheap proxy for "learning and tuning really work"; random
play scores about 22. The budget is env steps, never wall-clock time.
"""

from __future__ import annotations

import pytest

from tune_rl.runner import plan_sweep, run_sweep
from tune_rl.spec import load_spec


@pytest.mark.slow
def test_ppo_sweep_on_cartpole_learns(local_ray, sweep_dirs):
    spec = load_spec("PPO", env="cartpole", trials=3, max_env_steps=40000, seed=0,
                     evaluation=False, name="cartpole-learns", **sweep_dirs)
    summary = run_sweep(plan_sweep(spec))

    assert summary["succeeded"] == 3
    assert summary["best"]["score"] >= 150, summary["trials"]
