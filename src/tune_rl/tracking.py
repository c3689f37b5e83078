"""MLflow tracking of a sweep: a parent run per sweep, a nested run per trial.

Written against MLflow's client and Tune's Callback interface because Ray's
stock MLflowLoggerCallback falls short here: it logs ~320 params and ~350
metrics per trial as flat runs with no sweep parent, costs over a second per
result on SQLite, and uploads the trial's staging folder, so checkpoints go
missing (ray#46569). Here a trial's run holds only the searched parameters
and about a dozen metrics, logged in one batched call per result with step =
env steps; the best checkpoint is uploaded from the sweep's persistent
storage (redacted: see redaction.py) and its policy registered as a model.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from ray.tune import Callback

from tune_rl.cost import COST, TrialCost
from tune_rl.redaction import redact, redacted_copy, secret_values
from tune_rl.storage import StoredFile
from tune_rl.trainable import (
    COPIED_FROM,
    DIVERGED,
    ENV_STEPS,
    EVAL_SCORE,
    LEARNER_VALUES,
    REPLAY_BUFFER_FILE,
    SCORE,
    lookup,
)

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
EVALUATION_METRICS = {"env_steps": "eval_env_steps", "seconds": "eval_seconds",
                      "capped_games": "eval_capped_games"}
LOSSES = ("total_loss", "qf_loss", "policy_loss", "vf_loss", "pi_loss", "entropy", "mean_kl_loss")


def trial_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The few numbers worth comparing across trials, from one Tune result."""
    out: dict[str, float] = {}
    for path, name in METRICS.items():
        value = lookup(result, path)
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[name] = float(value)
    seconds = result.get("time_this_iter_s")
    steps = result.get("env_runners", {}).get("num_env_steps_sampled")
    if seconds and steps:
        out["env_steps_per_s"] = float(steps) / float(seconds)
    evaluation = result.get("evaluation") or {}
    if isinstance(evaluation.get("scores"), list):  # tune-rl's own (trainable.py)
        out.update({name: float(evaluation[key]) for key, name in EVALUATION_METRICS.items()})
    # The lr and loss settings the learner held: what PBT's changes became.
    for name, value in (result.get(LEARNER_VALUES) or {}).items():
        out[f"learner.{name}"] = float(value)
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


LOCAL_UI = "http://127.0.0.1:5000"  # `make mlflow-ui`


def runs_url(ui_url: str, experiment_id: str, view: str | None = None) -> str:
    """The MLflow UI's runs list of an experiment: MLflow 3 opens experiments
    on its GenAI overview (traces), where training runs are not listed. With
    `view`, the list as that saved view shows it (`save_runs_view`)."""
    url = f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs"
    return f"{url}?viewStateShareKey={view}" if view else url


# A view of the runs list saved in the experiment, as the UI's own "Views >
# Save as new view" saves one (MLflow 3.17; its Share button of earlier
# versions is gone): an experiment tag `mlflow.sharedViewState.<key>` holding
# {"name", "createdAt", "updatedAt", "state"}, the state being
# "deflate;" + base64 of the zlib-compressed JSON of the runs list's search
# and table settings. The UI opens it from `.../runs?viewStateShareKey=<key>`
# and lists it under Views. Read back from a view saved by hand in the UI:
#   {"searchFilter": "", "orderByKey": "metrics.`eval_score`", "orderByAsc": false,
#    "selectedColumns": ["metrics.`score`", "params.`lr`", ...], "columnOrder": [], ...}
# What it cannot hold: which parent runs are expanded (the UI drops
# runsExpanded, runsPinned and runsHidden on saving and on loading), so a
# sweep's view lists its trials by a search on their parent run instead; the
# UI then shows them as top-level rows (it does not fetch the parent back).
# Sort and search alone also travel as URL parameters (orderByKey=...), the
# columns only in a view.
VIEW_TAG = "mlflow.sharedViewState."
# The score a sweep selects by (selection.py), as its trials' MLflow metric.
SELECTED_METRIC = {"eval": "eval_score", "train": "score"}


def sweep_view_key(parent_run_id: str) -> str:
    return f"tune-rl-{parent_run_id}"


def runs_view(parent_run_id: str, params: list[str], select: str) -> dict[str, Any]:
    """A sweep's trials, best first by its selected score, with the columns
    worth comparing first: both scores, env steps, then the searched params."""
    first = SELECTED_METRIC[select]
    metrics = [first, *[m for m in ("eval_score", "score", "env_steps") if m != first]]
    columns = [f"metrics.`{m}`" for m in metrics] + [f"params.`{p}`" for p in params]
    return {"searchFilter": f"tags.mlflow.parentRunId = '{parent_run_id}'",
            "orderByKey": f"metrics.`{first}`", "orderByAsc": False,
            # selectedColumns shows them; columnOrder puts them first, in this order
            "selectedColumns": columns, "columnOrder": columns}


def view_tag_value(name: str, state: dict[str, Any], now_ms: int) -> str:
    packed = base64.b64encode(zlib.compress(json.dumps(state).encode())).decode()
    return json.dumps({"name": name, "createdAt": now_ms, "updatedAt": now_ms,
                       "state": f"deflate;{packed}"})


def searched(config: dict[str, Any]) -> dict[str, Any]:
    """A trial config's searched values, its MLflow params: Tune's own keys
    (`__trial_index__`...) left out."""
    return {k: v for k, v in config.items() if not k.startswith("__")}


class MLflowTracking(Callback):
    """Tune callback that records the sweep in MLflow as it runs."""

    def __init__(self, tracking_uri: str, experiment: str, sweep_name: str,
                 sweep_params: dict[str, Any], tags: dict[str, str], *,
                 max_env_steps: int | None = None,
                 resolve_config: Callable[[dict], dict] | None = None,
                 state_file: StoredFile | None = None, parent_run_id: str | None = None):
        # With a server, MLflow prints two links at every run's end; the
        # sweep's summary says where its runs are, once.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self.client = MlflowClient(tracking_uri)
        self.experiment = experiment
        self.sweep_name = sweep_name
        self.sweep_params = sweep_params
        self.tags = tags
        self.max_env_steps = max_env_steps
        self.resolve_config = resolve_config
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.view_key: str | None = None  # the sweep's saved view (save_runs_view)
        self.trial_runs: dict[str, str] = {}  # Tune trial id -> MLflow run id
        self.ended: set[str] = set()
        # The last env step logged per trial run, read back from MLflow when
        # a trial (re)starts: a trial restored from its checkpoint repeats the
        # steps since, and its metric histories must not go back in steps.
        self.last_step: dict[str, int] = {}
        self.costs: dict[str, TrialCost] = {}  # Tune trial id -> its cost so far
        # Which MLflow runs belong to this sweep, on disk beside Tune's own
        # state, so that a resumed sweep appends to its runs rather than
        # duplicating them (Tune restores this callback from its pickle).
        self.state_file = state_file
        # The run this sweep's own parent run is nested under, if any (a
        # confirmation under the sweep it confirms).
        self.nest_under = parent_run_id

    def save_state(self) -> None:
        if self.state_file is None:
            return
        self.state_file.write_text(json.dumps({
            "experiment_id": self.experiment_id, "parent_run_id": self.parent_run_id,
            "trial_runs": self.trial_runs, "ended": sorted(self.ended)}))

    def load_state(self) -> bool:
        if self.state_file is None or not self.state_file.exists():
            return False
        state = json.loads(self.state_file.read_text())
        self.experiment_id = state["experiment_id"]
        self.parent_run_id = state["parent_run_id"]
        self.trial_runs = state["trial_runs"]
        self.ended = set(state["ended"])
        return True

    def _redact(self, text: str) -> str:
        return redact(text, secret_values(self.sweep_params))

    def reopen(self) -> None:
        """A resumed sweep: its parent run is running again."""
        self.load_state()
        self.client.update_run(self.parent_run_id, status="RUNNING")
        self.save_state()

    # -- the sweep's parent run -------------------------------------------
    def start_sweep(self, space_text: str = "") -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        self.experiment_id = (found.experiment_id if found else self.client.create_experiment(
            self.experiment, artifact_location=artifact_location(self.client.tracking_uri)))
        # MLflow 3's UI opens experiments in its GenAI view unless told this
        # one is model training, where runs, params and metrics are listed.
        self.client.set_experiment_tag(self.experiment_id, "mlflow.experimentKind",
                                       "custom_model_development")
        tags = {k: self._redact(v) for k, v in self.tags.items()}
        if self.nest_under:
            tags[MLFLOW_PARENT_RUN_ID] = self.nest_under
        run = self.client.create_run(self.experiment_id, run_name=self.sweep_name, tags=tags)
        self.parent_run_id = run.info.run_id
        self.save_state()
        self.client.log_batch(self.parent_run_id, params=[
            Param(k, self._redact(str(v))[:6000]) for k, v in self.sweep_params.items()])
        if space_text:
            self.client.log_text(self.parent_run_id, self._redact(space_text),
                                 "search_space.txt")
        return self.parent_run_id

    def save_runs_view(self, params: list[str], select: str) -> str:
        """The sweep's trials as the runs list opens on them (`runs_view`),
        saved in the experiment; returns its key for `runs_url`."""
        key = sweep_view_key(self.parent_run_id)
        self.client.set_experiment_tag(self.experiment_id, VIEW_TAG + key, view_tag_value(
            f"{self.sweep_name}: trials by {SELECTED_METRIC[select]}",
            runs_view(self.parent_run_id, params, select), int(time.time() * 1000)))
        self.view_key = key
        return key

    def end_sweep(self, summary: dict[str, Any], status: str = "FINISHED") -> None:
        """Best trial, results table, plots; closes runs a crash left open."""
        if self.parent_run_id is None:
            return
        for run_id in set(self.trial_runs.values()) - self.ended:
            self.client.set_terminated(run_id, "KILLED")
        best = summary.get("best") or {}
        now = int(time.time() * 1000)
        metrics = [Metric("best_score", float(best["selected_score"]), now, 0)] if best else []
        # The whole sweep's cost: its trials' (cost.py says what is counted).
        metrics += [Metric(k, float(sum(t.get(k) or 0.0 for t in summary["trials"])), now, 0)
                    for k in ("cpu_seconds", "gpu_seconds")]
        params = [Param(f"best.{k}", str(v)) for k, v in (best.get("params") or {}).items()]
        if best:
            params += [Param("best.trial", best["trial"]), Param("best.seed", str(best["seed"])),
                       Param("selected_by", summary["metric"])]
        self.client.log_batch(self.parent_run_id, metrics=metrics, params=params)
        self.client.log_text(self.parent_run_id, self._redact(trials_csv(summary["trials"])),
                             "trials.csv")
        self.client.set_terminated(self.parent_run_id, status)

    def mark_killed(self) -> None:
        """An interrupted sweep: its open runs are KILLED until resumed."""
        self._terminate_open_runs("KILLED")

    def mark_failed(self, error: str) -> None:
        """A sweep that crashed past its checks: its open runs are FAILED, and
        the parent run holds the error."""
        if self._terminate_open_runs("FAILED"):
            self.client.log_text(self.parent_run_id, self._redact(error), "error.txt")

    def _terminate_open_runs(self, status: str) -> bool:
        self.load_state()  # the runs the callback Tune ran (perhaps a restored copy) made
        if self.parent_run_id is None:
            return False
        for run_id in [*set(self.trial_runs.values()) - self.ended, self.parent_run_id]:
            self.client.set_terminated(run_id, status)
        return True

    def log_text(self, text: str, path: str) -> None:
        """A file of the sweep's own (a table), on its parent run."""
        self.client.log_text(self.parent_run_id, self._redact(text), path)

    def log_plots(self, figures: dict[str, Any]) -> None:
        for name, figure in figures.items():
            self.client.log_figure(self.parent_run_id, figure, f"plots/{name}.png")

    # -- one nested run per trial -------------------------------------------
    def setup(self, **info) -> None:
        # The runner started (or reopened) the sweep; a callback Tune restored
        # from its pickle picks up the trial runs recorded since.
        self.load_state()
        self.last_step = {}
        self.costs = {}

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if trial.trial_id in self.trial_runs:  # a retried or resumed trial keeps its run
            run_id = self.trial_runs[trial.trial_id]
            if run_id in self.ended:
                self.ended.discard(run_id)
                self.save_state()
            self.client.update_run(run_id, status="RUNNING")
            self.last_step.pop(trial.trial_id, None)
            return
        self._create_trial_run(trial)

    def _run_of(self, trial) -> str:
        """The trial's run. One this sweep has no record of (Tune reported a trial
        whose start this callback never saw) is created now, with a warning,
        rather than its results dropped."""
        run_id = self.trial_runs.get(trial.trial_id)
        if run_id is None:
            print(f"tune-rl: warning: MLflow had no run for trial {trial} (its start was "
                  "not recorded); recording it in a new run from here on",
                  file=sys.stderr, flush=True)
            run_id = self._create_trial_run(trial)
        return run_id

    def _create_trial_run(self, trial) -> str:
        name = str(trial)
        run = self.client.create_run(self.experiment_id, run_name=name, tags={
            MLFLOW_PARENT_RUN_ID: self.parent_run_id, MLFLOW_RUN_NAME: name,
            "trial_id": trial.trial_id,
            **{k: self.tags[k] for k in ("algorithm", "env", "sweep") if k in self.tags}})
        run_id = run.info.run_id
        self.trial_runs[trial.trial_id] = run_id
        self.save_state()
        values = searched(trial.config)
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in values.items()])
        if self.resolve_config:
            config = json.dumps(self.resolve_config(values), indent=1, default=str)
            self.client.log_text(run_id, self._redact(config), "rllib_config.json")
        return run_id

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        run_id = self._run_of(trial)
        step = int(result.get(ENV_STEPS, 0))
        if trial.trial_id not in self.last_step:
            logged = self.client.get_run(run_id).data.metrics
            self.last_step[trial.trial_id] = int(logged.get("env_steps", -1))
            # A resumed sweep's trial goes on from the cost MLflow holds (cost.py).
            self.costs.setdefault(trial.trial_id, TrialCost(logged.get("cpu_seconds", 0.0),
                                                            logged.get("gpu_seconds", 0.0)))
        cost = self.costs[trial.trial_id].add(result)  # redone steps cost again
        if step <= self.last_step[trial.trial_id]:
            return  # repeated after a restore: MLflow holds the first run of it
        self.last_step[trial.trial_id] = step
        now = int(time.time() * 1000)
        tags = [RunTag("copied_from", result[COPIED_FROM])] if result.get(COPIED_FROM) else []
        machine = result.get(COST) or {}
        tags += [RunTag(f"machine.{k}", str(machine[k])) for k in ("cpu", "gpu") if k in machine]
        self.client.log_batch(run_id, tags=tags, metrics=[
            Metric(k, v, now, step) for k, v in {**trial_metrics(result), **cost}.items()])

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        last = trial.last_result or {}
        steps = last.get(ENV_STEPS, 0)
        tags = {}
        if last.get(DIVERGED):
            tags["diverged"] = f"non-finite {last[DIVERGED]} at {int(steps)} env steps"
        elif self.max_env_steps and steps < self.max_env_steps:
            tags["early_stopped"] = f"ASHA at {int(steps)} env steps"
        self._end_trial(trial, "FINISHED", tags)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        run_id = self._run_of(trial)
        if trial.error_file and Path(trial.error_file).exists():
            error = Path(trial.error_file).read_text()
            self.client.log_text(run_id, self._redact(error), "error.txt")
        self._end_trial(trial, "FAILED", {"failed": "error.txt"})

    def _end_trial(self, trial, status: str, tags: dict[str, str]) -> None:
        run_id = self._run_of(trial)
        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.set_terminated(run_id, status)
        self.ended.add(run_id)
        self.save_state()

    # -- the best policy --------------------------------------------------------
    def log_best_policy(self, best: dict[str, Any], checkpoint: str | None, model_name: str,
                        obs_space, extra_tags: dict[str, str] | None = None) -> str | None:
        """Uploads the best trial's checkpoint (a local folder) and registers its
        policy; returns the model version."""
        run_id = self.trial_runs.get(best.get("trial_id", ""))
        if run_id is None or not checkpoint or not Path(checkpoint).is_dir():
            print(f"tune-rl: warning: best trial {best.get('trial')}: no MLflow run or no "
                  f"checkpoint folder ({checkpoint}); its policy is not registered",
                  file=sys.stderr, flush=True)
            return None
        # The DQN family's replay buffer (up to about 7.5 GB, trainable.py) serves
        # resuming the trial, not using its policy: it stays in the sweep's folder.
        with redacted_copy(checkpoint, secret_values(self.sweep_params),
                           leave_out=(REPLAY_BUFFER_FILE,)) as folder:
            self.client.log_artifacts(run_id, str(folder), "checkpoint")
            self._log_policy(run_id, folder, obs_space)
        if not self.client.search_registered_models(f"name = '{model_name}'"):
            self.client.create_registered_model(model_name)
        version = self.client.create_model_version(
            model_name, source=f"{self.client.get_run(run_id).info.artifact_uri}/policy",
            run_id=run_id, tags={**model_tags(best, self.sweep_name), **(extra_tags or {})})
        self.client.log_batch(self.parent_run_id, tags=[
            RunTag("best_model", f"models:/{model_name}/{version.version}")])
        return version.version

    def _log_policy(self, run_id: str, checkpoint: Path, obs_space) -> None:
        import mlflow.pyfunc
        import numpy as np
        from mlflow.models import infer_signature

        import tune_rl
        from tune_rl.policy import PolicyModel, module_path

        # save_model copies the module with a progress bar per file: noise here.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        with tempfile.TemporaryDirectory() as folder:
            example = np.zeros((1, *obs_space.shape), dtype=obs_space.dtype)
            # The example is checked against the signature by running the
            # policy on it. MLflow's logger still advises, at every save, to
            # log models as code rather than pickled objects: ours is a
            # tested class, so keep the terminal for the sweep's own output.
            with _quiet_logger("mlflow.pyfunc"):
                mlflow.pyfunc.save_model(
                    path=Path(folder, "policy"),
                    python_model=PolicyModel(),
                    artifacts={"rl_module": str(module_path(checkpoint))},
                    code_paths=[str(Path(tune_rl.__file__).parent)],
                    signature=infer_signature(example, np.zeros(1, dtype=np.int64)),
                    input_example=example,
                    pip_requirements=_requirements(),
                )
            secrets = secret_values(self.sweep_params)
            with redacted_copy(Path(folder, "policy"), secrets) as policy:
                self.client.log_artifacts(run_id, str(policy), "policy")


@contextlib.contextmanager
def _quiet_logger(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(pkg)}" for name, pkg in (
        ("ray[rllib]", "ray"), ("torch", "torch"), ("mlflow", "mlflow"),
        ("gymnasium", "gymnasium"), ("numpy", "numpy"))]


def model_tags(best: dict[str, Any], sweep: str) -> dict[str, str]:
    """A registered checkpoint's tags: the score it was saved with, by which rule."""
    return {"sweep": sweep, "trial": best["trial"], "seed": str(best["seed"]),
            "score": str(best["checkpoint_score"]), "env_steps": str(best["checkpoint_env_steps"]),
            "selected_by": best.get("selected_by", "")}


def trials_csv(trials: list[dict[str, Any]]) -> str:
    params = sorted({k for t in trials for k in t["params"]})
    out = io.StringIO()
    writer = csv.writer(out)
    cost = ["cpu_seconds", "gpu_seconds", "cpu", "gpu"]
    writer.writerow(["trial", "status", "selected_score", "eval_score", "score", "env_steps",
                     *cost, "seed", *params, "checkpoint", "checkpoint_score", "error"])
    for t in trials:
        writer.writerow([t["trial"], t["status"], t["selected_score"], t["eval_score"],
                         t["score"], t["env_steps"], *[t.get(k) for k in cost], t["seed"],
                         *[t["params"].get(p) for p in params], t["checkpoint"],
                         t["checkpoint_score"], t["error"]])
    return out.getvalue()


# Set by `tune-rl submit` for the job's driver: Ray ships the project to the
# cluster without .git, so git cannot tell there which commit is running.
GIT_COMMIT_ENV = "TUNE_RL_GIT_COMMIT"


def git_commit() -> str:
    """The commit of the code that runs: the one `tune-rl submit` passed along,
    else the checkout's HEAD, else "unknown" (not a git checkout)."""
    from tune_rl.spec import PROJECT_ROOT

    if os.environ.get(GIT_COMMIT_ENV):
        return os.environ[GIT_COMMIT_ENV]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def sweep_tags(spec) -> dict[str, str]:
    """Tags of the sweep's parent run: what ran, on which code and libraries."""
    from importlib.metadata import PackageNotFoundError, version

    tags = {"algorithm": spec.algo, "env": spec.env, "profile": spec.profile,
            "sweep": spec.name, "git_commit": git_commit()}
    for package in ("ray", "optuna", "mlflow", "torch", "ale-py", "gymnasium"):
        try:
            tags[f"version.{package}"] = version(package)
        except PackageNotFoundError:
            pass
    return tags


def experiment_links(tracking_uri: str, ui_url: str = LOCAL_UI) -> dict[str, str]:
    """Each experiment with runs in the store, by name: its runs list in the
    UI, opened on its latest sweep's trials (`save_runs_view`) where there is one."""
    if tracking_uri.startswith("sqlite:///") and not Path(
            tracking_uri.removeprefix("sqlite:///")).exists():
        return {}  # nothing recorded yet; reading would create the store
    client = MlflowClient(tracking_uri)
    return {e.name: runs_url(ui_url, e.experiment_id, latest_sweep_view(e.tags))
            for e in client.search_experiments()
            if client.search_runs([e.experiment_id], max_results=1)}


def latest_sweep_view(experiment_tags: dict[str, str]) -> str | None:
    """The key of the view tune-rl saved last in an experiment (its latest
    sweep's trials), not one a person saved in the UI."""
    prefix = VIEW_TAG + sweep_view_key("")
    views = {}
    for tag, value in experiment_tags.items():
        if tag.startswith(prefix):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                views[tag.removeprefix(VIEW_TAG)] = json.loads(value)["updatedAt"]
    return max(views, key=views.get) if views else None
