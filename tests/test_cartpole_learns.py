"""The whole loop learns: a PPO sweep on CartPole beats random play by far.

CartPole is the cheap proxy for "learning and tuning really work"; random
play scores about 22. The budget is env steps, never wall-clock time.
"""

from __future__ import annotations

import pytest

from tune_rl.plan import plan_sweep
from tune_rl.runner import run_sweep
from tune_rl.spec import load_spec


@pytest.mark.slow
def test_ppo_sweep_on_cartpole_learns(local_ray, sweep_dirs):
    spec = load_spec("PPO", env="cartpole", trials=3, max_env_steps=40000, seed=0,
                     evaluation=False, name="cartpole-learns", **sweep_dirs)
    summary = run_sweep(plan_sweep(spec))

    assert summary["succeeded"] == 3
    assert summary["best"]["selected_score"] >= 150, summary["trials"]


def test_a_sweep_stops_once_a_trial_reaches_the_target_score(local_ray, sweep_dirs):
    # Random play scores about 22 on CartPole: PPO passes 30 within a few
    # thousand steps, long before the first trial's 20,000 and the four
    # trials' 80,000 without a target.
    spec = load_spec("PPO", env="cartpole", trials=4, max_env_steps=20000, seed=0,
                     max_concurrent=1, evaluation=False, target_score=30,
                     min_env_steps_per_iteration=1000,
                     training={"train_batch_size_per_learner": 1000},
                     name="cartpole-target", **sweep_dirs)
    summary = run_sweep(plan_sweep(spec))

    assert summary["target_reached"] is True
    assert not summary.get("interrupted")  # a finished sweep: summary and MLflow closed
    assert "model" in summary["best"]
    reached = [t for t in summary["trials"] if t["status"] == "REACHED_TARGET"]
    assert len(reached) == 1 and reached[0]["selected_score"] >= 30
    # Stopped only once the trial that reached it had saved: it is the best,
    # with a checkpoint and a registered policy.
    assert summary["best"]["trial"] == reached[0]["trial"] and summary["best"]["model"]
    assert reached[0]["env_steps"] < 20000
    assert len(summary["trials"]) < 4 or all(
        t["env_steps"] < 20000 for t in summary["trials"])
