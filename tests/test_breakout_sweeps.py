"""A tiny real sweep of every algorithm on the real ALE Breakout.

Each is two trials (IMPALA, APPO: one) of a few hundred env steps: enough for a random-ish policy
to finish an episode and report a game score, and for MLflow to record both
trials under the sweep's parent run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tune_rl.presets import PRESETS
from tune_rl.runner import plan_sweep, run_sweep
from tune_rl.spec import load_spec

# PPO samples a whole train batch per iteration: keep it inside the budget.
TINY_TRAINING = {"PPO": {"train_batch_size_per_learner": 256}}
# A trial of these takes both CPUs (sampler and learner actor): a second trial
# would only run after the first. Two trials under one parent are checked
# with the other eight.
ONE_TRIAL = {"IMPALA", "APPO"}


@pytest.mark.slow
@pytest.mark.parametrize("algo", list(PRESETS))
def test_tiny_breakout_sweep_reports_a_score(algo, local_ray, shared_store):
    spec = load_spec(
        algo, env="breakout", trials=1 if algo in ONE_TRIAL else 2, max_env_steps=500,
        min_env_steps_per_iteration=250, evaluation=False,
        training=TINY_TRAINING.get(algo, {}), name=f"tiny-{algo}", **shared_store,
    )
    summary = run_sweep(plan_sweep(spec))

    assert summary["succeeded"] == spec.trials and summary["failed"] == 0
    for trial in summary["trials"]:
        assert trial["env_steps"] >= 500
        assert trial["score"] is not None and trial["score"] >= 0
        assert set(trial["params"]) == set(plan_sweep(spec).space)
    best = summary["best"]
    sweep_dir = Path(spec.sweep_location)
    assert best["checkpoint"] and (sweep_dir / best["trial"]).is_dir()
    written = json.loads((sweep_dir / "summary.json").read_text())
    assert written["best"]["trial"] == best["trial"]

    client = MlflowClient(shared_store["tracking_uri"])
    experiment = client.get_experiment_by_name(f"breakout-{algo}")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == spec.trials
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)
    assert all(c.info.status == "FINISHED" and "score" in c.data.metrics for c in children)
