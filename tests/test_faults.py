"""A trial that keeps crashing is retried, then FAILED; the sweep goes on.

The env here is CartPole that raises after 300 steps in one trial of the two
(the first trial to start claims the role), so Tune's retry from the last
checkpoint fails again and the trial ends FAILED in Tune and in MLflow, while
the other finishes. The same sweep runs with a secret in the environment and
in its env_config, which must not reach MLflow in any uploaded byte. A sweep
that fails past its checks leaves its MLflow runs FAILED, not RUNNING.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import ray.cloudpickle
from mlflow.tracking import MlflowClient

from tune_rl.envs import ENVS, EnvChoice
from tune_rl.plan import plan_sweep
from tune_rl.report import format_summary
from tune_rl.runner import run_sweep
from tune_rl.spec import load_spec

# Ray workers cannot import this test module; ship its functions by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

SECRET = "s3cr3t-7f9a2b"


class CrashingCartPole(gym.Wrapper):
    def __init__(self, env, crash: bool, crash_log: Path):
        super().__init__(env)
        self.crash, self.steps, self.crash_log = crash, 0, crash_log

    def step(self, action):
        self.steps += 1
        if self.crash and self.steps > 300:
            with open(self.crash_log, "a") as f:  # one line per attempt of the trial
                f.write(f"{Path.cwd().name}\n")
            raise RuntimeError("simulated env crash after 300 steps")
        return self.env.step(action)


def make_crashing_cartpole(env_config) -> gym.Env:
    # Tune runs each trial in its own folder: the first trial to start claims
    # the crashing role, and keeps it through its retries.
    claim = Path(env_config["claim_file"])
    trial = Path.cwd().name
    try:
        with open(claim, "x") as f:
            f.write(trial)
    except FileExistsError:
        pass
    return CrashingCartPole(gym.make("CartPole-v1"), claim.read_text() == trial,
                            claim.with_name("crashes"))


class NanRewardCartPole(gym.Wrapper):
    """CartPole whose rewards are NaN: the learner's losses turn NaN at once."""

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        return obs, math.nan, terminated, truncated, info


def make_nan_reward_cartpole(env_config) -> gym.Env:
    return NanRewardCartPole(gym.make("CartPole-v1"))


def is_text(value) -> bool:
    return isinstance(value, str)


@pytest.fixture(scope="module")
def crashing_env():
    """An env of the test's own, offered by name like breakout and cartpole."""
    env = EnvChoice("crashing-cartpole", make_crashing_cartpole, False,
                    "CartPole that crashes in one trial", (4,),
                    options={"claim_file": (is_text, "a path"),
                             "service_token": (is_text, "a string")})
    ENVS[env.name] = env
    yield env.name
    del ENVS[env.name]


@pytest.fixture(scope="module")
def crashed_sweep(local_ray, crashing_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    os.environ["TUNE_RL_TEST_SERVICE_TOKEN"] = SECRET
    try:
        spec = load_spec(
            "PPO", env=crashing_env, trials=2, max_env_steps=2000, max_concurrent=1,
            min_env_steps_per_iteration=500, checkpoint_every=1, max_failures=1,
            evaluation=False, name="crashing", training={"train_batch_size_per_learner": 500},
            env_config={"claim_file": str(root / "claim"), "service_token": SECRET},
            storage_path=str(root / "ray_results"), tracking_uri=f"sqlite:///{root / 'm.db'}")
        summary = run_sweep(plan_sweep(spec))
    finally:
        del os.environ["TUNE_RL_TEST_SERVICE_TOKEN"]
    return summary, spec, root


@pytest.mark.slow
def test_crashing_trial_is_retried_then_failed_while_the_other_finishes(crashed_sweep):
    summary, spec, root = crashed_sweep
    statuses = sorted(t["status"] for t in summary["trials"])
    assert statuses == ["FAILED", "FINISHED"]
    assert summary["succeeded"] == 1 and summary["failed"] == 1
    assert "simulated env crash" in summary["failures"][0]["error"]

    client = MlflowClient(spec.tracking_uri)
    experiment = client.get_experiment_by_name(spec.experiment).experiment_id
    children = client.search_runs([experiment], "tags.mlflow.parentRunId != ''")
    assert sorted(c.info.status for c in children) == ["FAILED", "FINISHED"]
    failed = next(c for c in children if c.info.status == "FAILED")
    error = Path(client.download_artifacts(failed.info.run_id, "error.txt")).read_text()
    assert "simulated env crash" in error
    # Retried once (max_failures=1) before giving up: two attempts, each
    # crashed once (the env's own count), and Tune recorded two failures.
    trial = next(t for t in summary["trials"] if t["status"] == "FAILED")
    crashes = (root / "crashes").read_text().splitlines()
    assert crashes == [trial["trial"]] * (spec.max_failures + 1) == [trial["trial"]] * 2
    tune_errors = (Path(trial["path"]) / "error.txt").read_text()
    assert tune_errors.count("Failure # ") == 2, tune_errors[-2000:]


@pytest.mark.slow
def test_no_secret_reaches_mlflow(crashed_sweep, tmp_path):
    summary, spec, root = crashed_sweep
    # The secret is in the sweep's own checkpoints (RLlib pickles the config)...
    checkpoint = Path(summary["best"]["checkpoint"])
    assert any(SECRET.encode() in p.read_bytes() for p in checkpoint.rglob("*.pkl"))
    client = MlflowClient(spec.tracking_uri)
    experiment = client.get_experiment_by_name(spec.experiment).experiment_id
    runs = client.search_runs([experiment])
    assert len(runs) == 3
    scanned = set()
    for run in runs:
        assert SECRET not in str(run.data.params) + str(run.data.tags) + str(run.data.metrics)
        target = tmp_path / run.info.run_id
        target.mkdir()
        folder = Path(client.download_artifacts(run.info.run_id, "", str(target)))
        for path in folder.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
                scanned.add(path.relative_to(folder).as_posix())
    # ...and what was uploaded of them holds every file, each scanned above.
    uploaded = {f"checkpoint/{p.relative_to(checkpoint).as_posix()}"
                for p in checkpoint.rglob("*") if p.is_file()}
    assert uploaded <= scanned
    assert any(name.startswith("policy/") for name in scanned)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.params["env_config.service_token"] == "***"


@pytest.mark.slow
def test_a_sweep_that_fails_past_its_checks_leaves_no_run_running(local_ray, tmp_path):
    spec = load_spec("PPO", env="cartpole", trials=1, max_env_steps=500,
                     min_env_steps_per_iteration=500, evaluation=False, name="blocked",
                     storage_path=str(tmp_path / "ray_results"),
                     tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    plan = plan_sweep(spec)
    # After the checks, something takes the sweep's folder: Tune cannot write it.
    (tmp_path / "ray_results").mkdir()
    (tmp_path / "ray_results" / "blocked").write_text("not a folder")
    with pytest.raises(Exception):  # noqa: B017  (Tune's own error, whichever it is)
        run_sweep(plan)
    client = MlflowClient(spec.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(spec.experiment).experiment_id])
    assert runs and all(r.info.status == "FAILED" for r in runs)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    error = Path(client.download_artifacts(parent.info.run_id, "error.txt", str(tmp_path)))
    assert "Traceback" in error.read_text()


@pytest.mark.slow
def test_a_diverging_trial_is_stopped_and_shown_as_diverged(local_ray, tmp_path):
    env = EnvChoice("nan-reward-cartpole", make_nan_reward_cartpole, False,
                    "CartPole with NaN rewards", (4,))
    ENVS[env.name] = env
    try:
        spec = load_spec(
            "PPO", env=env.name, trials=1, max_env_steps=2000, min_env_steps_per_iteration=500,
            evaluation=False, name="diverging", training={"train_batch_size_per_learner": 500},
            storage_path=str(tmp_path / "ray_results"),
            tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
        summary = run_sweep(plan_sweep(spec))
    finally:
        del ENVS[env.name]
    (trial,) = summary["trials"]
    # Stopped after its first iteration, and not taken for one ASHA stopped.
    assert trial["status"] == "DIVERGED" and trial["env_steps"] == 500, trial
    assert trial["diverged"]
    assert f"DIVERGED {trial['trial']}: non-finite {trial['diverged']}" in format_summary(summary)
    client = MlflowClient(spec.tracking_uri)
    experiment = client.get_experiment_by_name(spec.experiment).experiment_id
    (run,) = client.search_runs([experiment], "tags.mlflow.parentRunId != ''")
    assert run.data.tags["diverged"] == f"non-finite {trial['diverged']} at 500 env steps"
    assert "early_stopped" not in run.data.tags
