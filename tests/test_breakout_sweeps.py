"""A tiny real sweep of every algorithm on the real ALE Breakout.

Each is two trials (IMPALA, APPO: one) of a few hundred env steps: enough for
a random-ish policy to finish games and report a game score, and for MLflow
to record both trials under the sweep's parent run. What a user relies on
afterwards: every trial scored, the summary and MLflow agree on the best,
and every trial's checkpoint holds a network that plays Breakout.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tune_rl.config import policy_observation_space
from tune_rl.envs import ENVS, make_breakout
from tune_rl.plan import plan_sweep
from tune_rl.policy import PolicyModel, module_path
from tune_rl.presets import PRESETS
from tune_rl.runner import run_sweep
from tune_rl.spec import load_spec

# PPO samples a whole train batch per iteration: keep it inside the budget.
TINY_TRAINING = {"PPO": {"train_batch_size_per_learner": 256}}
# The DQN sweep files step 8 envs at once: 62 steps each in 500, less than a
# game lasts. Games capped at 200 frames (50 agent steps) end within the budget.
TINY_GAMES = {"max_frames_per_episode": 200}
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
        training=TINY_TRAINING.get(algo, {}), env_config=TINY_GAMES, name=f"tiny-{algo}",
        **shared_store,
    )
    summary = run_sweep(plan_sweep(spec))

    assert summary["succeeded"] == spec.trials and summary["failed"] == 0
    for trial in summary["trials"]:
        assert trial["env_steps"] >= 500
        assert set(trial["params"]) == set(plan_sweep(spec).space)
        # Scored training games, and an evaluation at its end (what chooses).
        assert trial["score"] is not None and trial["selected_score"] is not None, trial
        assert trial["selected_score"] == trial["eval_score"]
    best = summary["best"]
    written = json.loads((Path(spec.sweep_location) / "summary.json").read_text())
    assert written["best"]["trial"] == best["trial"]

    client = MlflowClient(shared_store["tracking_uri"])
    experiment = client.get_experiment_by_name(f"breakout-{algo}")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags["trial_id"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert len(parents) == 1 and len(children) == spec.trials
    parent = parents[0]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id
               for c in children.values())
    for trial in summary["trials"]:
        # MLflow holds the trial's scores as of its last report, and its seed.
        run = children[trial["trial_id"]]
        assert run.info.status == "FINISHED"
        for metric in ("score", "eval_score"):
            history = client.get_metric_history(run.info.run_id, metric)
            assert trial[metric] == pytest.approx(history[-1].value)
        assert run.data.params["seed"] == str(trial["seed"])
    # The best trial is the same in the summary and in MLflow.
    assert best["selected_score"] == max(t["selected_score"] for t in summary["trials"])
    assert parent.data.metrics["best_score"] == pytest.approx(best["selected_score"])
    assert parent.data.params["best.trial"] == best["trial"]

    # Each trial's checkpoint restores a network that acts on real frames.
    frames = breakout_frames(algo)
    for trial in summary["trials"]:
        checkpoint = Path(trial["checkpoint"])
        assert checkpoint.is_dir() and checkpoint.is_relative_to(trial["path"])
        actions = restored_policy(checkpoint).predict(None, frames)
        assert actions.shape == (len(frames),) and set(actions) <= {0, 1, 2, 3}


def breakout_frames(algo: str) -> np.ndarray:
    """A few real Breakout observations, as the algorithm's network takes them."""
    env = make_breakout({"stack_frames_in_env": True})  # uint8 (84, 84, 4)
    frames = [env.reset(seed=0)[0]]
    for action in (1, 2, 3):
        frames.append(env.step(action)[0])
    env.close()
    space = policy_observation_space(PRESETS[algo], ENVS["breakout"])
    frames = np.stack(frames)
    return frames if space.dtype == np.uint8 else (frames / 255.0).astype(space.dtype)


def restored_policy(checkpoint: Path) -> PolicyModel:
    """The checkpoint's RLModule, loaded as the MLflow policy model loads it."""
    policy = PolicyModel()
    policy.load_context(SimpleNamespace(artifacts={"rl_module": str(module_path(checkpoint))}))
    return policy
