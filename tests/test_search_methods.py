"""Every search method runs a tiny real sweep on the real ALE Breakout (the
CartPole runs are in test_population.py, test_cartpole_learns.py and
test_bench.py): random search without early stopping, and populations of PBT
and PB2 that really exploit and perturb on Breakout's PPO space.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tune_rl.plan import plan_sweep
from tune_rl.runner import run_sweep
from tune_rl.spec import load_spec
from tune_rl.trainable import ENV_STEPS

# Games capped at 200 frames so that they end within a 250-step iteration.
TINY = dict(env="breakout", trials=2, max_env_steps=750, min_env_steps_per_iteration=250,
            evaluation=False, training={"train_batch_size_per_learner": 256},
            env_config={"max_frames_per_episode": 200})


def tiny_sweep(method: str, tmp_path: Path, **extra):
    spec = load_spec("PPO", search=method, name=f"breakout-{method}",
                     storage_path=str(tmp_path / "ray_results"),
                     tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", **TINY, **extra)
    return spec, run_sweep(plan_sweep(spec))


@pytest.mark.slow
def test_random_search_runs_every_trial_to_its_budget(local_ray, tmp_path):
    spec, summary = tiny_sweep("random", tmp_path, early_stopping="none")
    assert summary["succeeded"] == 2 and summary["best"] is not None
    assert all(t["env_steps"] >= 750 for t in summary["trials"])
    assert len({json.dumps(t["params"], sort_keys=True) for t in summary["trials"]}) == 2


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pbt", "pb2"])
def test_a_population_exploits_and_perturbs_on_breakout(method, local_ray, tmp_path):
    spec, summary = tiny_sweep(method, tmp_path, perturbation_env_steps=250)
    assert summary["failed"] == 0 and summary["best"] is not None
    exploits = [json.loads(line) for line in
                (Path(spec.sweep_location) / "pbt_global.txt").read_text().splitlines()]
    # Synchronous: the bottom member copies the top one at each point before
    # the budget (250 and 500 env steps).
    assert len(exploits) >= 2
    for exploit in exploits:
        new = exploit[5]  # the exploited member's new values, inside the space
        assert 1e-5 <= new["lr"] <= 1e-3 and 0.05 <= new["clip_param"] <= 0.3, new
    for trial in summary["trials"]:
        lines = (Path(trial["path"]) / "result.json").read_text().splitlines()
        assert json.loads(lines[-1])[ENV_STEPS] >= 750
