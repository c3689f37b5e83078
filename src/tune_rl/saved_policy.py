"""A trained policy found where tune-rl saved it, and what it was trained on.

Three places, as `tune-rl evaluate` takes them:
- a checkpoint folder a trial wrote (`.../<sweep>/<trial>/checkpoint_000010`);
- a registered model, `models:/<name>/<version>` (or `/latest`), the policy
  the sweep registered in MLflow;
- a sweep's best (`--sweep NAME`): the confirmed winner's best checkpoint when
  the sweep has a confirmation, else the best trial's (as `tune-rl best`).

Evaluating a policy needs its algorithm (the DQN family takes uint8 frames
stacked by the env, the others float frames stacked as RLlib's connector
does), its env and its env_config (sticky actions, no-ops, the frame cap). A
checkpoint carries them in `tune_rl_checkpoint.json`; one written before they
were recorded there gets them from its sweep's summary.json (a checkpoint
folder) or from its MLflow run's tags and its sweep's params (a model).

`find_policy` checks all of that before anything loads (bad input exits 2
before any work); `SavedPolicy.load_module` then loads the RLModule.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tune_rl.errors import UsageError, unknown
from tune_rl.policy import module_path
from tune_rl.trainable import CHECKPOINT_RECORD_FILE

MODEL_URI = re.compile(r"^models:/(?P<name>[^/]+)/(?P<version>[^/]+)$")
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


@dataclass
class SavedPolicy:
    """A policy to evaluate: where it is, what trained it, where to record."""

    source: str  # as the user named it
    algo: str
    env: str
    env_config: dict[str, Any]
    checkpoint: Path | None = None  # a local checkpoint folder, or
    model_uri: str | None = None  # a registered model
    tracking_uri: str | None = None
    run_id: str | None = None  # the MLflow run that holds the policy, if any
    about: dict[str, Any] = field(default_factory=dict)  # what its checkpoint record says

    def __post_init__(self) -> None:
        from tune_rl.envs import get_env
        from tune_rl.presets import PRESETS

        if self.algo not in PRESETS:
            raise unknown(f"algorithm (trained {self.source}):", self.algo, PRESETS)
        get_env(self.env)

    def load_module(self):
        """The trained RLModule, in eval mode."""
        if self.model_uri:
            import mlflow.pyfunc

            # The registered pyfunc model itself (policy.PolicyModel). MLflow
            # 3.17 puts its code copy (`code/`) first on sys.path for good;
            # tune_rl is imported by then, so its modules still come from here.
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            mlflow.set_tracking_uri(self.tracking_uri)
            module = mlflow.pyfunc.load_model(self.model_uri).unwrap_python_model().module
        else:
            from ray.rllib.core.rl_module.rl_module import RLModule

            module = RLModule.from_checkpoint(str(module_path(self.checkpoint)))
        module.eval()
        return module

    def log_evaluation(self, record: dict[str, Any], gif: Path | None) -> str | None:
        """The scores (a JSON file and metrics) and the GIF on the policy's MLflow
        run, under `evaluate/<time>/`; returns that folder, or None without a run."""
        if not self.run_id:
            return None
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.tracking_uri)
        folder = f"evaluate/{time.strftime('%Y%m%d-%H%M%S')}"
        client.log_dict(self.run_id, record, f"{folder}/scores.json")
        if gif is not None:
            client.log_artifact(self.run_id, str(gif), folder)
        now = int(time.time() * 1000)
        # Steps are game numbers: the run's own metrics use env steps, so the
        # evaluation's have names of their own.
        metrics = [Metric("evaluate_game_score", float(score), now, game)
                   for game, score in enumerate(record["scores"])]
        metrics.append(Metric("evaluate_mean", float(record["mean"]), now, 0))
        client.log_batch(self.run_id, metrics=metrics)
        return folder


@contextlib.contextmanager
def find_policy(source: str | None, sweep: str | None, storage_path: str = "ray_results",
                tracking_uri: str | None = None) -> Iterator[SavedPolicy]:
    """The policy `source` (a checkpoint folder or `models:/name/version`) or
    the best of `sweep` names; UsageError for anything that is not one."""
    if (source is None) == (sweep is None):
        raise UsageError("evaluate takes one policy: a checkpoint folder, "
                         "models:/<name>/<version>, or --sweep NAME")
    if sweep is not None:
        with _sweep_best(sweep, storage_path, tracking_uri) as policy:
            yield policy
        return
    match = MODEL_URI.match(source)
    if match:
        yield _registered(source, match["name"], match["version"],
                          tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                          or DEFAULT_TRACKING_URI)
    elif source.startswith("models:"):
        raise UsageError(f"model URI {source!r} is not models:/<name>/<version>")
    else:
        yield _checkpoint(Path(source))


def _checkpoint(folder: Path, summary: dict[str, Any] | None = None) -> SavedPolicy:
    if not folder.exists():
        raise UsageError(f"checkpoint folder {str(folder)!r} does not exist")
    if not module_path(folder).is_dir():
        inside = sorted(p.name for p in folder.glob("checkpoint_*") if p.is_dir())
        hint = (f"; it is a trial folder, its checkpoints: {', '.join(inside)}" if inside
                else f" (no {module_path('.')} in it)")
        raise UsageError(f"{str(folder)!r} is not a checkpoint of a tune-rl trial{hint}")
    record = _read_json(folder / CHECKPOINT_RECORD_FILE)
    if "algo" not in record:  # written before checkpoints recorded it: ask the sweep
        summary = summary or _read_json(folder.parent.parent / "summary.json")
        spec = summary.get("spec")
        if not spec:
            raise UsageError(
                f"cannot tell which algorithm and env trained {str(folder)!r}: its "
                f"{CHECKPOINT_RECORD_FILE} does not say, and its sweep folder "
                f"{str(folder.parent.parent)!r} has no summary.json")
        record = {**record, "algo": spec["algo"], "env": spec["env"],
                  "env_config": spec.get("env_config") or {}}
    return SavedPolicy(str(folder), record["algo"], record["env"], record["env_config"] or {},
                       checkpoint=folder, about=record)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _registered(uri: str, name: str, version: str, tracking_uri: str) -> SavedPolicy:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///") and not Path(
            tracking_uri.removeprefix("sqlite:///")).is_file():
        # Opening it would create an empty store.
        raise UsageError(f"no MLflow store at {tracking_uri} (pass --tracking-uri)")
    client = MlflowClient(tracking_uri)
    try:
        if not client.search_registered_models(f"name = '{name}'"):
            names = [m.name for m in client.search_registered_models()]
            raise unknown(f"registered model in {tracking_uri}:", name, names)
        versions = sorted(int(v.version) for v in
                          client.search_model_versions(f"name = '{name}'"))
        number = versions[-1] if version == "latest" and versions else version
        if str(number) not in map(str, versions):
            raise UsageError(f"model {name!r} has no version {version!r}: it has "
                             f"{', '.join(map(str, versions)) or 'none'}")
        run_id = client.get_model_version(name, str(number)).run_id
    except MlflowException as err:
        raise UsageError(f"MLflow at {tracking_uri}: {err.message}") from None
    algo, env, env_config, about = _trained_on(client, run_id)
    return SavedPolicy(uri, algo, env, env_config, model_uri=f"models:/{name}/{number}",
                       tracking_uri=tracking_uri, run_id=run_id, about=about)


def _trained_on(client, run_id: str) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """The algorithm, env and env_config of the policy a run registered: its
    uploaded checkpoint's record, else the run's tags and its sweep's params."""
    import tempfile

    import yaml
    from mlflow.exceptions import MlflowException

    record: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, f"checkpoint/{CHECKPOINT_RECORD_FILE}",
                                             folder)
            record = _read_json(Path(path))
        except (MlflowException, OSError):
            pass
    if "algo" in record:
        return record["algo"], record["env"], record.get("env_config") or {}, record
    run = client.get_run(run_id)
    tags = run.data.tags
    if "algorithm" not in tags or "env" not in tags:
        raise UsageError(f"cannot tell which algorithm and env trained the policy of run "
                         f"{run_id}: no checkpoint record and no algorithm/env tags")
    parent = tags.get("mlflow.parentRunId")
    params = client.get_run(parent).data.params if parent else {}
    # The sweep's params hold env_config as `env_config.<key>` strings.
    env_config = {k.removeprefix("env_config."): yaml.safe_load(v)
                  for k, v in params.items() if k.startswith("env_config.")}
    return tags["algorithm"], tags["env"], env_config, record


@contextlib.contextmanager
def _sweep_best(name: str, storage_path: str, tracking_uri: str | None
                ) -> Iterator[SavedPolicy]:
    from tune_rl.confirm import CONFIRMATION, load_sweep
    from tune_rl.storage import Storage

    summary = load_sweep(name, storage_path)
    storage = Storage(storage_path)
    best, model = summary.get("best"), (summary.get("best") or {}).get("model")
    if storage.exists(f"{name}/{CONFIRMATION}"):
        table = json.loads(storage.read_text(f"{name}/{CONFIRMATION}"))
        row = next((r for r in table["rows"] if r.get("confirmed_rank") == 1), None)
        if row and row.get("best_run"):
            best, model = row["best_run"], table.get("model")
    if not best or not best.get("checkpoint"):
        raise UsageError(f"sweep {name!r} has no best trial with a checkpoint: nothing to "
                         "evaluate")
    with storage.local_copy(best["checkpoint"]) as folder:
        policy = _checkpoint(Path(folder), summary)
        policy.source = f"sweep {name}'s best, {best['trial']}: {best['checkpoint']}"
        uri = tracking_uri or summary["mlflow"].get("tracking_uri")
        match = MODEL_URI.match(model or "")
        if match and uri:
            from mlflow.tracking import MlflowClient

            version = MlflowClient(uri).get_model_version(match["name"], match["version"])
            policy.tracking_uri, policy.run_id = uri, version.run_id
        yield policy


def env_config_changes(pairs: list[str]) -> dict[str, Any]:
    """`["noop_max=30"]` as `{"noop_max": 30}` (values read as YAML)."""
    import yaml

    changes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env-config {pair!r}: expected KEY=VALUE, e.g. noop_max=30")
        changes[key] = yaml.safe_load(value)
    return changes


def evaluate_saved(policy: SavedPolicy, *, episodes: int, seed: int, watch=None):
    """`episodes` greedy games of the policy with the project's evaluation
    (evaluation.evaluate) under the env_config it trained with; its EvalResult."""
    import torch

    from tune_rl.envs import get_env
    from tune_rl.evaluation import MAX_FRAMES_PER_GAME, evaluate
    from tune_rl.presets import PRESETS

    # One thread: on this 2-core machine, busy with other runs, torch's
    # default 2 threads took 57.6 s for one 850-step Breakout game that one
    # thread played in 1.1 s (PPO, batch of 1; the threads wait on each other).
    torch.set_num_threads(1)
    preset, env = PRESETS[policy.algo], get_env(policy.env)
    cap = policy.env_config.get("max_frames_per_episode", MAX_FRAMES_PER_GAME)
    return evaluate(policy.load_module(), preset, env, episodes=episodes, seed=seed,
                    max_frames_per_game=cap, env_config=policy.env_config, watch=watch)


def evaluation_record(policy: SavedPolicy, result) -> dict[str, Any]:
    """What an evaluation found, as logged to MLflow (scores.json)."""
    low, high = result.interval
    return {"policy": policy.source, "model": policy.model_uri,
            "checkpoint": policy.checkpoint and str(policy.checkpoint), "algo": policy.algo,
            "env": policy.env, "env_config": policy.env_config, "seed": result.seed,
            "episodes": result.episodes, "scores": list(result.scores),
            "lengths": list(result.lengths), "mean": result.mean, "interval": [low, high],
            "capped": result.capped, "cap": f"{result.cap} {result.cap_unit}",
            "env_steps": result.env_steps, "seconds": result.seconds}
