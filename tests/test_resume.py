"""Sweeps survive SIGKILL: resume continues them and loses little.

A real sweep process (PPO on CartPole, three trials one at a time,
checkpoints as often as the budget makes them: every tenth of a trial) is
killed once its first trial has finished and its second is part way, then
resumed with --resume; Tune's state, the trials' counters and the MLflow
runs carry over, the finished trial is not run again, the running one loses
at most one checkpoint interval, no MLflow metric history goes back in env
steps, and Optuna, asked for the third trial only after the resume, knows
the first. (Ctrl-C and resume: test_cloud_storage.py, on S3.) A DQN trial
restored from its checkpoint keeps its replay buffer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from conftest import assert_study_holds, saved_study
from tune_rl.search import trial_seed
from tune_rl.study import open_storage

SPEC = """\
algo: PPO
env: cartpole
seed: 0
evaluation: false
max_concurrent: 1
profiles:
  quick:
    trials: 3
    max_env_steps: 8000
    min_env_steps_per_iteration: 400
    grace_env_steps: 8000
    training: {train_batch_size_per_learner: 400}
"""
MAX_STEPS, ITERATION = 8000, 400
CHECKPOINT_INTERVAL = 800  # env steps: a tenth of the budget, as derived from it


def start(tmp: Path, *extra: str) -> subprocess.Popen:
    (tmp / "resume.yaml").write_text(SPEC)
    args = [sys.executable, "-m", "tune_rl.cli", "sweep", "--spec", str(tmp / "resume.yaml"),
            "--name", "interrupted", "--storage-path", str(tmp / "ray_results"),
            "--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}", *extra]
    log = open(tmp / f"log{len(list(tmp.glob('log*')))}.txt", "w")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True)


def env_steps(sweep: Path) -> dict[str, list[int]]:
    """Each trial's env steps, one per result line, as Tune wrote them."""
    steps = {}
    for path in sweep.glob("*/result.json"):
        lines = [line for line in path.read_text().splitlines() if line.endswith("}")]
        steps[path.parent.name] = [json.loads(line)["num_env_steps_sampled_lifetime"]
                                   for line in lines]
    return steps


def finished_trials(sweep: Path) -> set[str]:
    return {trial for trial, steps in env_steps(sweep).items()
            if steps and steps[-1] >= MAX_STEPS}


def running_trial_steps(client: MlflowClient) -> int:
    """How far the running trial got, by what MLflow shows of it: the results
    folder's copies of Tune's files are synced only at checkpoints."""
    experiment = client.get_experiment_by_name("cartpole-PPO").experiment_id
    runs = client.search_runs([experiment], "attributes.status = 'RUNNING' "
                                            "and tags.mlflow.parentRunId != ''")
    return max((int(r.data.metrics.get("env_steps", 0)) for r in runs), default=0)


def trials_in_snapshot(sweep: Path) -> int:
    """Trials in Tune's latest experiment state, the one --resume restores."""
    snapshots = sorted(sweep.glob("experiment_state-*.json"))
    try:
        return len(json.loads(snapshots[-1].read_text())["trial_data"]) if snapshots else 0
    except (json.JSONDecodeError, KeyError):
        return 0  # being written


def check_resumed(tmp: Path) -> None:
    sweep = tmp / "ray_results" / "interrupted"
    summary = json.loads((sweep / "summary.json").read_text())
    assert [t["status"] for t in summary["trials"]] == ["FINISHED"] * 3
    # Optuna kept its history: the study Tune saved last, whose searcher
    # proposed the third trial after the resume, holds the first trial,
    # finished before the kill, with its score.
    assert_study_holds(saved_study(sweep), summary["trials"])
    # The study Optuna Dashboard opens, the journal beside the sweep, is that
    # one, each trial once (none orphaned by the kill), with a curve at every
    # evaluation (checkpoints, every 800 env steps) that ends at its value.
    journal = optuna.load_study(study_name="interrupted", storage=open_storage(
        str(sweep.parent / "interrupted.optuna.journal")))
    assert_study_holds(journal, summary["trials"])
    assert len(journal.trials) == 3
    for trial in journal.trials:
        assert sorted(trial.intermediate_values) == list(
            range(CHECKPOINT_INTERVAL, MAX_STEPS + 1, CHECKPOINT_INTERVAL))
        assert trial.intermediate_values[MAX_STEPS] == pytest.approx(trial.value)
    # Each trial its own seed: the third, proposed after the resume, the next
    # of the sweep's seeds (Tune restored the count with the searcher).
    assert sorted(t["seed"] for t in summary["trials"]) == sorted(
        trial_seed(0, i) for i in range(3))
    # Checkpoints stay bounded by keep_checkpoints (1), resume or not: the best
    # by evaluation, and the latest while it is not the best (Tune never
    # deletes the latest: _CheckpointManager, ray/train/_internal).
    for trial in summary["trials"]:
        assert 1 <= len(list(Path(trial["path"]).glob("checkpoint_*"))) <= 2
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cartpole-PPO").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 3 and all(c.info.status == "FINISHED" for c in children)
    for child in children:
        for metric in ("env_steps", "score", "episode_return_mean"):
            steps = [m.step for m in client.get_metric_history(child.info.run_id, metric)]
            # Counters continue from the checkpoint (a restart, ray#43266, would
            # fall back to 400), and steps repeated after the restore are not
            # logged twice.
            assert steps == sorted(set(steps)), (metric, steps)
        assert steps[-1] >= MAX_STEPS


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_keeps_finished_trials(tmp_path):
    sweep = tmp_path / "ray_results" / "interrupted"
    process = start(tmp_path)
    # Past the first trial's end, a third into the second and one iteration
    # past its last checkpoint (so that the resumed trial repeats steps), and
    # Tune's experiment snapshot knows it (a trial started after the last
    # snapshot is lost to a SIGKILL, and the resumed search proposes a new one).
    client = None
    for _ in range(3000):
        if process.poll() is not None:
            break
        if finished_trials(sweep) and trials_in_snapshot(sweep) == 2:
            client = client or MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
            steps = running_trial_steps(client)
            if steps >= MAX_STEPS // 3 and steps % CHECKPOINT_INTERVAL == ITERATION:
                break
        time.sleep(0.1)
    process.kill()
    process.wait(timeout=60)
    assert trials_in_snapshot(sweep) == 2  # what --resume restores: no third trial yet
    done_before = finished_trials(sweep)
    steps_before = env_steps(sweep)
    assert len(done_before) == 1 and client is not None
    (running,) = set(steps_before) - done_before
    killed_at = running_trial_steps(client)
    assert killed_at < MAX_STEPS

    resumed = start(tmp_path, "--resume")
    assert resumed.wait(timeout=600) == 0, (tmp_path / "log1.txt").read_text()[-3000:]
    steps_after = env_steps(sweep)
    for trial in done_before:  # not re-run
        assert steps_after[trial] == steps_before[trial]
    assert len(steps_after) == 3  # the third proposed after the resume
    # The killed trial went on from its last checkpoint: it repeated the steps
    # since (check_resumed: MLflow did not log them twice), at most one interval.
    restarted_from = steps_after[running][len(steps_before[running])] - ITERATION
    assert 0 < killed_at - restarted_from <= CHECKPOINT_INTERVAL, (killed_at, restarted_from)
    check_resumed(tmp_path)


# Learning after 100 env steps, one result per 100 (25 updates of 32 each).
DQN_SETTINGS = dict(rollout_fragment_length=4, min_env_steps_per_iteration=100,
                    schedule_scale=0.005, max_env_steps=1000)


def learner_weights(trial) -> dict:
    import torch

    state = trial.learner_group.get_weights(["default_policy"])["default_policy"]
    return {name: torch.as_tensor(value).clone() for name, value in state.items()}


def trained(result: dict) -> float:
    return result["learners"]["default_policy"]["num_module_steps_trained"]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["DQN", "DQN_PER"])
def test_dqn_trial_restored_after_learning_started_keeps_its_replay_buffer(
        algo, local_ray, tmp_path):
    """What Tune does on --resume or a retry: a new trial restored from the
    checkpoint. It goes on learning from the transitions it had, not from the
    few sampled since the restore (RLlib's new stack checkpoints no buffer)."""
    import torch

    from tune_rl.config import TrialSettings
    from tune_rl.envs import ENVS
    from tune_rl.presets import PRESETS
    from tune_rl.trainable import make_trainable

    settings = TrialSettings(**DQN_SETTINGS)
    trial_class = make_trainable(PRESETS[algo], ENVS["breakout"], settings, torch_threads=1)
    trial = trial_class(config={})
    assert trial.config.num_steps_sampled_before_learning_starts == 100
    for _ in range(2):
        result = trial.train()
    assert trained(result) > 0  # learning has started
    buffer = trial.local_replay_buffer
    stored, sampled = len(buffer), buffer.get_sampled_timesteps()
    assert stored == result["num_env_steps_sampled_lifetime"] == 200
    beta = getattr(buffer, "beta", None)
    saved = trial.save(str(tmp_path / "checkpoint"))
    weights = learner_weights(trial)
    trial.stop()

    restored = trial_class(config={})
    restored.restore(saved)
    buffer = restored.local_replay_buffer
    assert len(buffer) == stored and buffer.get_sampled_timesteps() == sampled
    assert getattr(buffer, "beta", None) == beta  # PER: beta's annealing goes on
    assert buffer.frames  # the frames came back with it (replay.py), games still going
    after_restore = learner_weights(restored)
    assert all(torch.equal(after_restore[k], weights[k]) for k in weights)

    result = restored.train()
    assert result["num_env_steps_sampled_lifetime"] == 300
    assert len(restored.local_replay_buffer) == stored + 100  # added to, not refilled
    assert trained(result) > 0
    changed = learner_weights(restored)
    assert any(not torch.equal(changed[k], weights[k]) for k in weights)
    restored.stop()
