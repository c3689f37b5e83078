"""Runs one sweep: Optuna proposes, ASHA stops early, Tune runs RLlib trials.

`plan_sweep` resolves and checks everything without starting Ray (that is
`--dry-run`); `run_sweep` starts Ray, runs the Tuner and returns the summary.
"""

from __future__ import annotations

import json
import os
import tempfile
import traceback
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tune_rl.cluster import check_before_connecting, check_storage_is_shared, connect
from tune_rl.config import (
    REPLAY_PARAMS,
    TrialSettings,
    describe_network,
    policy_observation_space,
)
from tune_rl.envs import EnvChoice, get_env
from tune_rl.errors import UsageError
from tune_rl.presets import PRESETS, Preset
from tune_rl.search import SCHEDULERS, SEARCHERS, make_scheduler, make_searcher, make_stopper
from tune_rl.spaces import check_space, load_space, space_summary
from tune_rl.spec import SweepSpec
from tune_rl.storage import StoredFile, check_reachable, is_uri
from tune_rl.trainable import ENV_STEPS, EVAL_SCORE, SCORE


@dataclass
class SweepPlan:
    spec: SweepSpec
    preset: Preset
    env: EnvChoice
    space: dict[str, Any]
    settings: TrialSettings

    def _schedules(self) -> dict[str, Any]:
        """The preset's env-step schedules as this sweep runs them (schedule_scale)."""
        if not self.preset.is_dqn:
            return {}
        from tune_rl.config import build_config

        config = build_config(self.preset, self.env, {}, self.settings)
        return {"schedule_scale": self.settings.schedule_scale, "epsilon": config.epsilon,
                "learning_starts": config.num_steps_sampled_before_learning_starts}

    def trainable(self):
        """The Tune trainable every trial of this sweep runs."""
        from tune_rl.trainable import make_trainable

        return make_trainable(self.preset, self.env, self.settings, self.spec.torch_threads)

    def resources_per_trial(self) -> dict[str, float]:
        return resources_per_trial(self.trainable(), self.space)

    def estimate_wall_time(self) -> dict[str, Any] | str:
        from tune_rl.estimate import estimate

        return estimate(self.spec, self.preset.rllib_algo, self.resources_per_trial())

    def describe(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "sweep": spec.name,
            "algorithm": f"{self.preset.name} (RLlib {self.preset.rllib_algo})",
            "preset": self.preset.training or "RLlib defaults",
            "preset_sources": self.preset.sources,
            "components": self.preset.components(),
            "schedules": self._schedules(),
            "network": describe_network(self.preset, self.env, settings=self.settings),
            "env": f"{self.env.name}: {self.env.description}",
            "space": space_summary(self.space),
            "search": f"{SEARCHERS[spec.search]}, seed {spec.seed}, {spec.trials} trials",
            "budget": f"{spec.max_env_steps} env steps per trial, a result every "
                      f">= {spec.min_env_steps_per_iteration} steps",
            "scheduler": (f"ASHA on env steps: grace {spec.grace_env_steps}, reduction factor "
                          f"{spec.reduction_factor}, max {spec.max_env_steps}"
                          if spec.early_stopping == "asha" else SCHEDULERS["none"]),
            "stop": (f"each trial at {spec.max_env_steps} env steps" +
                     (f"; the sweep once a trial's score reaches {spec.target_score:g}"
                      if spec.target_score is not None else "")),
            "concurrency": spec.max_concurrent or "as many trials as the CPUs and GPUs allow",
            "estimated_wall_time": self.estimate_wall_time(),
            "checkpoints": f"every {spec.checkpoint_every} iterations and at the end, "
                           f"keep {spec.keep_checkpoints} best per trial",
            "storage": spec.sweep_location,
            "mlflow": f"{spec.tracking_uri} experiment {spec.experiment!r}",
            "spec_file": spec.spec_file,
        }


SUMMARY = "summary.json"


def tracking_state_file(spec: SweepSpec) -> StoredFile:
    # Beside the sweep folder, not in it: at the end of a resumed run Tune
    # syncs its driver-side copy of the folder back over the original,
    # which would put back the copy of this file taken when the run resumed.
    return spec.storage.file(f".tune_rl/{spec.name}.mlflow_runs.json")


def sweep_state(spec: SweepSpec) -> str:
    """'new', 'finished' (it wrote its summary) or 'unfinished' (killed, crashed)."""
    storage = spec.storage
    if not storage.exists(f"{spec.name}/tuner.pkl"):
        return "new"
    return "finished" if storage.exists(f"{spec.name}/{SUMMARY}") else "unfinished"


def resolve_plan(spec: SweepSpec) -> SweepPlan:
    """The spec resolved against its preset, env and search space, and checked.

    Touches no disk and no network: `tune-rl submit` checks a sweep with it
    on the submitting machine, whose storage and servers may not be the cluster's.
    """
    preset, env = PRESETS[spec.algo], get_env(spec.env)
    settings = TrialSettings(
        seed=spec.seed,
        env_runners=spec.env_runners,
        envs_per_env_runner=spec.envs_per_env_runner,
        cpus_per_env_runner=spec.cpus_per_env_runner,
        rollout_fragment_length=(spec.rollout_fragment_length if spec.rollout_fragment_length
                                 == "auto" else int(spec.rollout_fragment_length)),
        gpus_per_learner=spec.gpus_per_learner,
        min_env_steps_per_iteration=spec.min_env_steps_per_iteration,
        schedule_scale=spec.schedule_scale,
        max_env_steps=spec.max_env_steps,
        evaluation=spec.evaluation,
        env_config=dict(spec.env_config),
        training=dict(spec.training),
    )
    space = load_space(preset, env)
    _check_not_searched(spec, space)
    check_space(preset, env, space, settings)
    return SweepPlan(spec, preset, env, space, settings)


def _check_not_searched(spec: SweepSpec, space: dict[str, Any]) -> None:
    """A fixed `training:` value that the space also searches would be silently
    replaced by the searched one in every trial."""
    from tune_rl.spaces import space_module_name

    fixed = {name: (f"training.{name}", value) for name, value in spec.training.items()}
    buffer = spec.training.get("replay_buffer_config") or {}
    fixed.update({name: (f"training.replay_buffer_config.{key}", buffer[key])
                  for name, key in REPLAY_PARAMS.items() if key in buffer})
    for name, (where, value) in fixed.items():
        if name in space:
            raise UsageError(
                f"{where}={value!r} in {Path(spec.spec_file).name or 'the spec'} is also "
                f"searched by {space_module_name(spec.algo).replace('.', '/')}.py "
                f"({space_summary({name: space[name]})[name]}): set {name} in one place only")


def plan_sweep(spec: SweepSpec, resume: bool = False, address: str | None = None) -> SweepPlan:
    """Everything a sweep needs, checked here (storage, tracking, cluster); starts nothing.

    `address` is a Ray cluster to run on (host:port, ray://host:port or auto).
    """
    plan = resolve_plan(spec)
    if is_uri(spec.storage_path):
        check_reachable(spec.storage_path)
    else:
        _check_storage(Path(spec.storage_path))
    check_before_connecting(address, spec.tracking_uri)
    _check_tracking(spec.tracking_uri)
    state = sweep_state(spec)
    if resume and state != "unfinished":
        raise UsageError(f"--resume: sweep {spec.name!r} in {spec.storage_path} is {state}; "
                         "there is nothing to resume")
    if not resume and state == "unfinished":
        raise UsageError(f"sweep {spec.name!r} exists in {spec.storage_path} and did not "
                         "finish: add --resume to continue it, or pass a new --name")
    return plan


def _check_storage(path: Path, field: str = "storage_path") -> None:
    """Creates the folder and a file in it, then removes what was not there.

    As root, os.access says a folder is writable even where it cannot be
    created (under /proc, on a read-only mount): only trying tells.
    """
    target = path.resolve()
    created = []  # deepest first, so they can be removed in this order
    probe = target
    while not probe.exists() and probe != probe.parent:
        created.append(probe)
        probe = probe.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as err:
        raise UsageError(f"{field} {str(path)!r} cannot be written ({err.strerror}: "
                         f"{err.filename or target}); give a folder you can write to") from None
    finally:
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                break


def _check_tracking(uri: str) -> None:
    """A tracking server must answer before any trial starts."""
    import urllib.request

    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10)
        except OSError as err:
            raise UsageError(f"tracking_uri {uri!r} does not answer ({err}); start the "
                             "MLflow server or pass another --tracking-uri") from None
    elif uri.startswith("sqlite:///"):
        _check_storage(Path(uri.removeprefix("sqlite:///")).parent, "tracking_uri")
    else:
        raise UsageError(f"tracking_uri {uri!r} is not supported: use sqlite:///<file> "
                         "or http(s)://<mlflow server>")


def run_sweep(plan: SweepPlan, resume: bool = False, address: str | None = None
              ) -> dict[str, Any]:
    """Runs (or resumes) the sweep on local Ray and returns its summary.

    An interrupted sweep (Ctrl-C) returns a summary with "interrupted": True;
    its MLflow runs are marked KILLED until `--resume` reopens them. An error
    marks them FAILED, with the traceback as the parent's `error.txt`.
    """
    # Tune's new output engine ignores progress_reporter; ours shows only the
    # searched parameters, not the whole RLlib config.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from tune_rl.tracking import MLflowTracking, sweep_tags

    spec = plan.spec
    connect(address)
    check_storage_is_shared(spec.storage_path)
    plan.env.register()
    trainable = plan.trainable()
    concurrency = spec.max_concurrent or _concurrency(trainable, plan.space)

    tracking = MLflowTracking(
        spec.tracking_uri, spec.experiment, spec.name, sweep_params(spec), sweep_tags(spec),
        max_env_steps=spec.max_env_steps,
        resolve_config=partial(resolved_config, plan),
        state_file=tracking_state_file(spec),
    )
    try:
        if resume:
            tracking.reopen()
        else:
            tracking.start_sweep(json.dumps(space_summary(plan.space), indent=2))
        tuner = (_restored_tuner(plan, trainable) if resume
                 else _new_tuner(plan, trainable, tracking, concurrency))
        return _finish(plan, tuner.fit(), tracking, concurrency)
    except KeyboardInterrupt:
        tracking.mark_killed()
        raise
    except Exception:
        # Whatever fails past the checks: no MLflow run is left RUNNING.
        tracking.mark_failed(traceback.format_exc())
        raise


def _restored_tuner(plan: SweepPlan, trainable):
    """Tune restores the trials, the Optuna searcher's history and this
    sweep's callbacks from the sweep folder; finished trials stay done."""
    from ray import tune

    storage = plan.spec.storage
    return tune.Tuner.restore(storage.path(plan.spec.name), trainable, resume_unfinished=True,
                              resume_errored=True, param_space=plan.space,
                              storage_filesystem=storage.fs)


def _new_tuner(plan: SweepPlan, trainable, tracking, concurrency: int):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    spec = plan.spec
    searcher = make_searcher(spec.search, spec.seed)
    return tune.Tuner(
        trainable,
        param_space=plan.space,
        tune_config=tune.TuneConfig(
            metric=SCORE,
            mode="max",
            num_samples=spec.trials,
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=concurrency),
            scheduler=make_scheduler(spec.early_stopping, ENV_STEPS, spec.max_env_steps,
                                     spec.grace_env_steps, spec.reduction_factor),
            trial_name_creator=partial(trial_name, plan.preset.name),
            trial_dirname_creator=partial(trial_name, plan.preset.name),
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=spec.storage.root,
            storage_filesystem=spec.storage.fs,
            stop=make_stopper(ENV_STEPS, spec.max_env_steps, SCORE, spec.target_score),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=spec.keep_checkpoints,
                checkpoint_score_attribute=SCORE,
                checkpoint_score_order="max",
                checkpoint_frequency=spec.checkpoint_every,
                checkpoint_at_end=True,
            ),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            progress_reporter=tune.CLIReporter(
                parameter_columns=list(plan.space),
                metric_columns={SCORE: "score", EVAL_SCORE: "eval score",
                                ENV_STEPS: "env steps", "training_iteration": "iter"},
                max_report_frequency=30,
                sort_by_metric=True,
            ),
            callbacks=[tracking],
            verbose=1,
        ),
    )


def _finish(plan: SweepPlan, results, tracking, concurrency: int) -> dict[str, Any]:
    from tune_rl.report import optuna_figures, summarize, write_summary

    spec = plan.spec
    tracking.load_state()  # written by the callback Tune ran, perhaps a restored copy
    summary = summarize(plan, results, concurrency)
    summary["mlflow"]["parent_run_id"] = tracking.parent_run_id
    summary["mlflow"]["experiment_id"] = tracking.experiment_id
    # A sweep the target score stopped ends with trials never started: not
    # an interruption.
    if not summary["target_reached"] and was_interrupted(spec):
        tracking.mark_killed()
        summary["interrupted"] = True
        return summary
    if summary["best"]:
        checkpoint = summary["best"]["checkpoint"]
        with spec.storage.local_copy(checkpoint) as folder:
            version = tracking.log_best_policy(summary["best"], folder,
                                               f"{spec.env}-{spec.algo}",
                                               policy_observation_space(plan.preset, plan.env))
        summary["best"]["model"] = version and f"models:/{spec.env}-{spec.algo}/{version}"
    tracking.log_plots(optuna_figures(plan.space, summary["trials"]))
    write_summary(summary, spec.storage, spec.name)
    tracking.end_sweep(summary, "FINISHED" if summary["succeeded"] else "FAILED")
    return summary


def was_interrupted(spec: SweepSpec) -> bool:
    """Whether Tune stopped early on Ctrl-C: its saved state has unfinished trials."""
    from ray.tune import ExperimentAnalysis

    storage = spec.storage
    trials = ExperimentAnalysis(storage.path(spec.name), storage_filesystem=storage.fs).trials
    return len(trials) < spec.trials or any(
        t.status not in ("TERMINATED", "ERROR") for t in trials)


def resolved_config(plan: SweepPlan, params: dict[str, Any]) -> dict[str, Any]:
    """The full RLlib config of one trial, for its MLflow run."""
    from tune_rl.config import build_config

    return build_config(plan.preset, plan.env, params, plan.settings).to_dict()


def trial_name(algo: str, trial) -> str:
    # "Rainbow_DQN_3f2a1b0c": Tune's default appends every searched value,
    # which makes unreadable names and folders.
    return f"{algo}_{trial.trial_id}"


def representative_params(space: dict[str, Any]) -> dict[str, Any]:
    """One trial's values: each parameter's first choice or lower bound."""
    from tune_rl.spaces import candidate_values

    return {name: candidate_values(name, d)[0] for name, d in space.items()}


def resources_per_trial(trainable, space: dict[str, Any]) -> dict[str, float]:
    """What one trial asks Ray for: CPUs (at least one) and GPUs."""
    request = trainable.default_resource_request(representative_params(space))
    resources = request.required_resources
    return {"CPU": max(1.0, resources.get("CPU", 1.0)), "GPU": resources.get("GPU", 0.0)}


def trials_at_once(per_trial: dict[str, float], cluster: dict[str, float]) -> int:
    """How many trials the cluster runs at once: its CPUs over a trial's, and
    its GPUs over a trial's share of one (gpus_per_learner 0.25 puts four
    trials on each GPU, which one trial leaves idle most of the time).

    >>> trials_at_once({"CPU": 3, "GPU": 0.25}, {"CPU": 16, "GPU": 1})
    4
    >>> trials_at_once({"CPU": 1, "GPU": 0}, {"CPU": 2})
    2
    """
    if per_trial.get("GPU", 0) > 0 and not cluster.get("GPU"):
        raise UsageError(f"gpus_per_learner is {per_trial['GPU']:g}, but the Ray cluster has "
                         "no GPU: set gpus_per_learner: 0, or run on a machine with a GPU")
    # The small epsilon keeps 1.0 / 0.1 at 10 (float division gives 9.999...).
    return max(1, min(int(cluster.get(name, 0.0) / need + 1e-9)
                      for name, need in per_trial.items() if need > 0))


def _concurrency(trainable, space: dict[str, Any]) -> int:
    import ray

    return trials_at_once(resources_per_trial(trainable, space), ray.cluster_resources())


def sweep_params(spec: SweepSpec) -> dict[str, Any]:
    keys = ("algo", "env", "profile", "trials", "max_env_steps", "min_env_steps_per_iteration",
            "grace_env_steps", "reduction_factor", "target_score", "max_concurrent", "seed",
            "evaluation", "keep_checkpoints", "max_failures", "spec_file")
    params = {k: v for k, v in asdict(spec).items() if k in keys and v is not None}
    for k, v in spec.training.items():
        params[f"training.{k}"] = v
    for k, v in spec.env_config.items():
        params[f"env_config.{k}"] = v
    return params
