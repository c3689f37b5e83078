"""What a person finds in MLflow after a sweep, over HTTP and in SQLite.

A tiny real DQN sweep on Breakout, tracked once by a real `mlflow server`
on 127.0.0.1 and once by the embedded SQLite store; then MlflowClient
checks the runs, metrics, artifacts and the registered policy.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from tune_rl.envs import make_breakout
from tune_rl.plan import plan_sweep
from tune_rl.runner import run_sweep
from tune_rl.spec import PROJECT_ROOT, load_spec
from tune_rl.trainable import CHECKPOINT_RECORD_FILE, ENV_STEPS, REPLAY_BUFFER_FILE


def tiny_sweep(tracking_uri: str, storage: str, name: str) -> dict:
    # Games capped at 200 frames: DQN's 8 envs get 62 steps each, less than a game.
    spec = load_spec("DQN", env="breakout", trials=2, max_env_steps=500,
                     min_env_steps_per_iteration=250, evaluation=False, name=name,
                     env_config={"max_frames_per_episode": 200},
                     tracking_uri=tracking_uri, storage_path=storage)
    return run_sweep(plan_sweep(spec))


@pytest.fixture(scope="module", params=["server", "sqlite"])
def tracked(request, local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    uri = (request.getfixturevalue("mlflow_server") if request.param == "server"
           else f"sqlite:///{root / 'mlflow.db'}")
    summary = tiny_sweep(uri, str(root / "ray_results"), "tracked")
    return uri, summary, root


def runs_of(client: MlflowClient, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


@pytest.mark.slow
def test_one_parent_run_and_a_child_per_trial(tracked):
    uri, summary, _ = tracked
    client = MlflowClient(uri)
    parents, children = runs_of(client, "breakout-DQN")
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.run_id == summary["mlflow"]["parent_run_id"]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["algo"] == "DQN" and parent.data.params["trials"] == "2"
    for tag in ("version.ray", "version.optuna", "version.mlflow", "version.torch",
                "version.ale-py"):
        assert parent.data.tags[tag]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert parent.data.tags["git_commit"] == head
    assert "best_score" in parent.data.metrics
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"search_space.txt", "trials.csv", "plots"} <= names
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/optimization_history.png" in plots


@pytest.mark.slow
def test_child_runs_hold_the_searched_params_and_env_step_histories(tracked):
    uri, summary, _ = tracked
    client = MlflowClient(uri)
    parents, children = runs_of(client, "breakout-DQN")
    space_keys = set(summary["trials"][0]["params"])
    assert space_keys == {"lr", "target_network_update_freq", "grad_clip", "conv_filters"}
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert set(child.data.params) == space_keys | {"seed"}  # each trial's own
        assert child.data.params["conv_filters"] in {"nature", "small", "wide"}
        assert child.info.status == "FINISHED"
        assert len(child.data.metrics) <= 20
        history = client.get_metric_history(child.info.run_id, "env_steps")
        assert [m.step for m in history] == [int(m.value) for m in history]
        assert history[-1].step >= 500
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert "rllib_config.json" in artifacts


@pytest.mark.slow
def test_best_checkpoint_downloads_and_the_registered_policy_plays(tracked, tmp_path):
    uri, summary, _ = tracked
    client = MlflowClient(uri)
    best = summary["best"]
    run_id = next(r.info.run_id for r in runs_of(client, "breakout-DQN")[1]
                  if r.data.tags["trial_id"] == best["trial_id"])
    folder = client.download_artifacts(run_id, "checkpoint", str(tmp_path))
    assert (tmp_path / "checkpoint" / "algorithm_state.pkl").is_file(), folder
    # The replay buffer served resuming the trial: gone from its checkpoints
    # once it ended (they keep the weights); never uploaded.
    checkpoints = sorted(Path(best["checkpoint"]).parent.glob("checkpoint_*"))
    assert checkpoints and not [c for c in checkpoints if (c / REPLAY_BUFFER_FILE).exists()]
    assert not (tmp_path / "checkpoint" / REPLAY_BUFFER_FILE).exists()

    assert best["model"].startswith("models:/breakout-DQN/")
    # Registered with the evaluation score that checkpoint was saved with.
    record = json.loads((Path(best["checkpoint"]) / CHECKPOINT_RECORD_FILE).read_text())
    _, name, version = best["model"].split("/")
    tags = client.get_model_version(name, version).tags
    assert float(tags["score"]) == pytest.approx(record["eval_score"])
    assert tags["selected_by"] == "eval" and int(tags["env_steps"]) == record[ENV_STEPS]
    assert record["eval_score"] == pytest.approx(best["checkpoint_score"])
    mlflow.set_tracking_uri(uri)
    policy = mlflow.pyfunc.load_model(best["model"])
    env = make_breakout({"stack_frames_in_env": True})
    obs, _ = env.reset(seed=0)
    actions = policy.predict(np.stack([obs, obs]))
    assert actions.shape == (2,) and all(env.action_space.contains(int(a)) for a in actions)
    # The same greedy actions as the trained module acting on the env's frames.
    from ray.rllib.core.rl_module.rl_module import RLModule

    from tune_rl.policy import module_path

    module = RLModule.from_checkpoint(module_path(tmp_path / "checkpoint"))
    direct = module.forward_inference({"obs": torch.as_tensor(np.stack([obs, obs]))})["actions"]
    assert actions.tolist() == direct.tolist()


@pytest.mark.slow
def test_rerunning_a_finished_sweep_name_adds_a_parent_and_keeps_the_old(tracked):
    uri, summary, root = tracked
    client = MlflowClient(uri)
    before, before_children = runs_of(client, "breakout-DQN")
    again = tiny_sweep(uri, str(root / "ray_results"), "tracked")
    after, after_children = runs_of(client, "breakout-DQN")
    assert len(after) == len(before) + 1 and len(after_children) == len(before_children) + 2
    old = client.get_run(before[0].info.run_id)
    assert old.info.status == "FINISHED" and old.data.metrics == before[0].data.metrics
    assert again["mlflow"]["parent_run_id"] != summary["mlflow"]["parent_run_id"]
    # Its Optuna study too: the old journal kept beside the new run's.
    import optuna

    from tune_rl.study import open_storage

    (kept,) = (root / "ray_results").glob("tracked.optuna-*.journal")
    for journal in (kept, root / "ray_results" / "tracked.optuna.journal"):
        study = optuna.load_study(study_name="tracked", storage=open_storage(str(journal)))
        assert len(study.trials) == 2


def test_a_trial_without_a_recorded_run_is_recorded_not_dropped(tmp_path, capsys):
    """Tune reports a trial whose start the callback never saw (its record of
    the sweep's runs lost): the results land in a new run, with a warning."""
    from tune_rl.tracking import MLflowTracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = MLflowTracking(uri, "unrecorded", "sweep", {}, {"sweep": "sweep"})
    parent = tracking.start_sweep()
    trial = type("Trial", (), {"trial_id": "t1", "config": {"lr": 0.001},
                               "last_result": {"num_env_steps_sampled_lifetime": 500},
                               "__str__": lambda self: "PPO_t1"})()
    tracking.on_trial_result(0, [], trial, {"score": 3.0, "num_env_steps_sampled_lifetime": 500})
    tracking.on_trial_complete(0, [], trial)
    assert "MLflow had no run for trial PPO_t1" in capsys.readouterr().err
    client = MlflowClient(uri)
    (run,) = client.search_runs([tracking.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.001"}
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "score")] == [
        (500, 3.0)]
