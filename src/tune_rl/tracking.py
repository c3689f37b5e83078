"""MLflow tracking of a sweep: a parent run per sweep, a nested run per trial.

Written against MLflow's client and Tune's Callback interface because Ray's
stock MLflowLoggerCallback logs ~320 params and ~350 metrics per trial as flat
runs with no sweep parent, and costs over a second per result on SQLite.
Here a trial's run holds only the searched parameters and about a dozen
metrics, logged in one batched call per result, with step = env steps.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from ray.tune import Callback

from tune_rl.trainable import ENV_STEPS, EVAL_SCORE, SCORE

# result path -> metric name in MLflow
METRICS = {
    (SCORE,): "score",
    (EVAL_SCORE,): "eval_score",
    ("env_runners", "episode_return_mean"): "episode_return_mean",
    ("env_runners", "episode_return_min"): "episode_return_min",
    ("env_runners", "episode_return_max"): "episode_return_max",
    ("env_runners", "episode_len_mean"): "episode_len_mean",
    (ENV_STEPS,): "env_steps",
    ("training_iteration",): "iteration",
}
LOSSES = ("total_loss", "qf_loss", "policy_loss", "vf_loss", "pi_loss", "entropy", "mean_kl_loss")


def trial_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The few numbers worth comparing across trials, from one Tune result."""
    out: dict[str, float] = {}
    for path, name in METRICS.items():
        value: Any = result
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[name] = float(value)
    seconds = result.get("time_this_iter_s")
    steps = result.get("env_runners", {}).get("num_env_steps_sampled")
    if seconds and steps:
        out["env_steps_per_s"] = float(steps) / float(seconds)
    learner = result.get("learners", {}).get("default_policy", {})
    for loss in LOSSES:
        value = learner.get(loss)
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[loss] = float(value)
    return out


def artifact_location(tracking_uri: str) -> str | None:
    """`./mlartifacts` beside an SQLite store; a server decides its own."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.resolve().parent / "mlartifacts").as_uri()
    return None


class MLflowTracking(Callback):
    """Tune callback that records the sweep in MLflow as it runs."""

    def __init__(self, tracking_uri: str, experiment: str, sweep_name: str,
                 sweep_params: dict[str, Any], tags: dict[str, str]):
        self.client = MlflowClient(tracking_uri)
        self.experiment = experiment
        self.sweep_name = sweep_name
        self.sweep_params = sweep_params
        self.tags = tags
        self.parent_run_id: str | None = None
        self.trial_runs: dict[str, str] = {}  # Tune trial id -> MLflow run id

    def start_sweep(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = (found.experiment_id if found else self.client.create_experiment(
            self.experiment, artifact_location=artifact_location(self.client.tracking_uri)))
        run = self.client.create_run(experiment_id, run_name=self.sweep_name, tags=self.tags)
        self.parent_run_id = run.info.run_id
        self.client.log_batch(self.parent_run_id, params=[
            Param(k, str(v)[:6000]) for k, v in self.sweep_params.items()])
        return self.parent_run_id

    def setup(self, **info) -> None:
        if self.parent_run_id is None:
            self.start_sweep()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if trial.trial_id in self.trial_runs:
            return
        run = self.client.create_run(
            self.client.get_run(self.parent_run_id).info.experiment_id,
            run_name=str(trial),
            tags={MLFLOW_PARENT_RUN_ID: self.parent_run_id, MLFLOW_RUN_NAME: str(trial),
                  "trial_id": trial.trial_id, **{k: self.tags[k] for k in ("algorithm", "env")
                                                 if k in self.tags}},
        )
        self.trial_runs[trial.trial_id] = run.info.run_id
        self.client.log_batch(run.info.run_id, params=[
            Param(k, str(v)) for k, v in trial.config.items()])

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        run_id = self.trial_runs.get(trial.trial_id)
        if run_id is None:
            return
        step = int(result.get(ENV_STEPS, 0))
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[
            Metric(k, v, now, step) for k, v in trial_metrics(result).items()])

    def _end_trial(self, trial, status: str, tags: dict[str, str] | None = None) -> None:
        run_id = self.trial_runs.get(trial.trial_id)
        if run_id is None:
            return
        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.set_terminated(run_id, status)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._end_trial(trial, "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._end_trial(trial, "FAILED", {"error": str(trial.error_file or "")[:5000]})

    def end_sweep(self, summary: dict[str, Any], status: str = "FINISHED") -> None:
        if self.parent_run_id is None:
            return
        best = summary.get("best") or {}
        metrics, params = [], []
        now = int(time.time() * 1000)
        if isinstance(best.get("score"), (int, float)) and math.isfinite(best["score"]):
            metrics.append(Metric("best_score", float(best["score"]), now, 0))
        params += [Param(f"best.{k}", str(v)) for k, v in (best.get("params") or {}).items()]
        if best.get("trial"):
            params.append(Param("best.trial", best["trial"]))
        self.client.log_batch(self.parent_run_id, metrics=metrics, params=params)
        self.client.set_terminated(self.parent_run_id, status)


def sweep_tags(spec) -> dict[str, str]:
    """Tags of the sweep's parent run: what ran, on which code and libraries."""
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    from tune_rl.spec import PROJECT_ROOT

    tags = {"algorithm": spec.algo, "env": spec.env, "profile": spec.profile,
            "sweep": spec.name}
    try:
        tags["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
            text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        tags["git_commit"] = "unknown"
    for package in ("ray", "optuna", "mlflow", "torch", "ale-py", "gymnasium"):
        try:
            tags[f"version.{package}"] = version(package)
        except PackageNotFoundError:
            pass
    return tags
