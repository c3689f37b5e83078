"""Runs one sweep: Optuna proposes, ASHA stops early, Tune runs RLlib trials.

The plan (plan.py) is checked before this starts Ray; `run_sweep` runs the
Tuner and returns the summary.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from typing import Any

from tune_rl import selection
from tune_rl.cluster import check_storage_is_shared, connect
from tune_rl.config import policy_observation_space
from tune_rl.estimate import trials_at_once
from tune_rl.plan import SweepPlan, resources_per_trial, tracking_state_file
from tune_rl.search import (
    SEED,
    FixedConfigs,
    SeededTrials,
    make_population,
    make_scheduler,
    make_searcher,
    make_stopper,
)
from tune_rl.spaces import space_summary
from tune_rl.spec import SweepSpec
from tune_rl.study import keep_finished_study, open_storage, study_location
from tune_rl.trainable import ENV_STEPS, ReplayBuffersEndWithTrial


def run_sweep(plan: SweepPlan, resume: bool = False, address: str | None = None,
              finish: Callable | None = None) -> dict[str, Any]:
    """Runs (or resumes) the sweep on local Ray and returns its summary.

    `finish(plan, results, tracking, concurrency)` turns Tune's results into
    the summary and records it (default: a sweep's, `finish_sweep`).

    An interrupted sweep (Ctrl-C) returns a summary with "interrupted": True;
    its MLflow runs are marked KILLED until `--resume` reopens them. An error
    marks them FAILED, with the traceback as the parent's `error.txt`.
    """
    # Tune's new output engine ignores progress_reporter; ours fits 100
    # columns (progress.py). RAY_AIR_NEW_OUTPUT=1 in the environment still
    # chooses Tune's engine.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from tune_rl.tracking import MLflowTracking, searched, sweep_tags

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
        parent_run_id=plan.parent_run_id,
    )
    try:
        if resume:
            tracking.reopen()
        else:
            tracking.start_sweep(json.dumps(space_summary(plan.space), indent=2))
        tracking.save_runs_view(list(searched(plan.configs[0] if plan.configs else plan.space)),
                                spec.select)
        tuner = (_restored_tuner(plan, trainable) if resume
                 else _new_tuner(plan, trainable, tracking, concurrency))
        return (finish or finish_sweep)(plan, tuner.fit(), tracking, concurrency)
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
                              resume_errored=True, param_space=_param_space(plan),
                              storage_filesystem=storage.fs)


def _new_tuner(plan: SweepPlan, trainable, tracking, concurrency: int):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    spec = plan.spec
    metric = selection.metric(spec.select, spec.search)
    stopper, target_saved = make_stopper(ENV_STEPS, spec.max_env_steps, metric,
                                         spec.target_score)
    scheduler = make_scheduler("none" if plan.configs else spec.early_stopping, ENV_STEPS,
                               spec.max_env_steps, spec.grace_env_steps, spec.reduction_factor)
    if plan.configs:
        searcher = ConcurrencyLimiter(FixedConfigs(plan.configs), max_concurrent=concurrency)
    elif plan.mutable:
        # PBT and PB2 refuse a search algorithm: Tune's own generator draws
        # the population from the space (seeds included), the scheduler runs it.
        # The whole population is created at once (no max_concurrent): the
        # scheduler pauses members in turn, and a member never created would
        # never be compared (a limited generator ran the population in waves).
        from ray.tune.search.basic_variant import BasicVariantGenerator

        searcher = BasicVariantGenerator(random_state=spec.seed)
        scheduler = make_population(spec.search, ENV_STEPS, spec.perturbation_env_steps,
                                    plan.mutable)
    else:
        # Outermost, so that Tune saves its count of seeds with the sweep.
        keep_finished_study(spec)  # a finished sweep run again: its study kept aside
        location = study_location(spec)
        optuna = make_searcher(spec.search, spec.seed, spec.trials, ENV_STEPS,
                               storage=location and open_storage(location),
                               study_name=spec.name)
        searcher = SeededTrials(ConcurrencyLimiter(optuna, max_concurrent=concurrency),
                                spec.seed)
    callbacks = [tracking, target_saved]
    # Not for PBT and PB2: a member that ended may still be a donor, restored
    # into another from any of its checkpoints, buffer included.
    if plan.preset.is_dqn and not plan.mutable:
        callbacks.append(ReplayBuffersEndWithTrial())
    return tune.Tuner(
        trainable,
        param_space=_param_space(plan),
        tune_config=tune.TuneConfig(
            # ASHA's rungs and Optuna compare the selected score (selection.py).
            metric=metric,
            mode="max",
            num_samples=len(plan.configs) if plan.configs else spec.trials,
            search_alg=searcher,
            scheduler=scheduler,
            trial_name_creator=partial(trial_name, plan.preset.name),
            trial_dirname_creator=partial(trial_name, plan.preset.name),
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=spec.storage.root,
            storage_filesystem=spec.storage.fs,
            stop=stopper,
            checkpoint_config=tune.CheckpointConfig(
                # PBT restores a donor from the checkpoint it saved at its last
                # perturbation, which a small num_to_keep may have deleted since
                # (seen with 1: "Could not recover from checkpoint as it does
                # not exist on storage anymore"): a population keeps them all.
                num_to_keep=None if plan.mutable else spec.keep_checkpoints,
                checkpoint_score_attribute=metric,
                checkpoint_score_order="max",
                checkpoint_frequency=spec.checkpoint_every,
                checkpoint_at_end=True,
            ),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            progress_reporter=progress_reporter(plan, scheduler),
            callbacks=callbacks,
            verbose=1,
        ),
    )


PROGRESS_EVERY_S = 30  # the same in a terminal and in a log (CI, a Ray job's)


def progress_reporter(plan: SweepPlan, scheduler):
    """The sweep's progress in 100 columns (progress.py)."""
    from ray.tune.schedulers import AsyncHyperBandScheduler

    from tune_rl.estimate import asha_env_steps
    from tune_rl.progress import SweepProgress

    spec = plan.spec
    trials = len(plan.configs) if plan.configs else spec.trials
    planned = (asha_env_steps(trials, spec.grace_env_steps, spec.max_env_steps,
                              spec.reduction_factor)
               if isinstance(scheduler, AsyncHyperBandScheduler) else None)
    params = list(plan.configs[0]) if plan.configs else list(plan.space)
    return SweepProgress(name=spec.name, algo=plan.preset.name,
                         params=[p for p in params if p != SEED],
                         trials=trials, max_env_steps=spec.max_env_steps,
                         planned_env_steps=planned,
                         max_report_frequency=PROGRESS_EVERY_S)


def _param_space(plan: SweepPlan) -> dict[str, Any]:
    # Fixed configs come whole from FixedConfigs; Tune would resolve a space too.
    if plan.configs:
        return {}
    if plan.mutable:  # each member of the population its own seed, drawn by Tune
        from ray import tune

        return {**plan.space, SEED: tune.randint(0, 2**31 - 1)}
    return plan.space


def summarize_run(plan: SweepPlan, results, tracking, concurrency: int) -> dict[str, Any]:
    """Tune's results as the run's summary, with its MLflow runs; an
    interrupted run's summary says so and its runs are marked KILLED. The
    start of every `finish`."""
    from tune_rl.report import summarize

    tracking.load_state()  # written by the callback Tune ran, perhaps a restored copy
    summary = summarize(plan, results, concurrency)
    summary["mlflow"]["parent_run_id"] = tracking.parent_run_id
    summary["mlflow"]["experiment_id"] = tracking.experiment_id
    summary["mlflow"]["view"] = tracking.view_key
    # A sweep the target score stopped ends with trials never started: not
    # an interruption.
    if not summary["target_reached"] and was_interrupted(plan.spec):
        tracking.mark_killed()
        summary["interrupted"] = True
    return summary


def finish_sweep(plan: SweepPlan, results, tracking, concurrency: int) -> dict[str, Any]:
    from tune_rl.report import optuna_figures, write_summary

    spec = plan.spec
    summary = summarize_run(plan, results, tracking, concurrency)
    if summary.get("interrupted"):
        return summary
    if summary["best"]:
        checkpoint = summary["best"]["checkpoint"]
        with spec.storage.local_copy(checkpoint) as folder:
            version = tracking.log_best_policy(summary["best"], folder,
                                               f"{spec.env}-{spec.algo}",
                                               policy_observation_space(plan.preset, plan.env))
        summary["best"]["model"] = version and f"models:/{spec.env}-{spec.algo}/{version}"
    if plan.mutable:  # a population's values change as it trains: its lineage, not Optuna's
        log_lineage(tracking, spec, summary["trials"])
    elif not plan.configs:  # Optuna's plots need a search
        tracking.log_plots(optuna_figures(plan.space, summary["trials"]))
    write_summary(summary, spec.storage, spec.name)
    tracking.end_sweep(summary, "FINISHED" if summary["succeeded"] else "FAILED")
    return summary


def log_lineage(tracking, spec: SweepSpec, trials: list[dict[str, Any]]) -> None:
    """The population's exploits, from PBT's own log (pbt_global.txt), as a
    table on the sweep's parent run."""
    from tune_rl.report import lineage_csv

    name = f"{spec.name}/pbt_global.txt"
    if spec.storage.exists(name):
        tracking.log_text(lineage_csv(spec.storage.read_text(name), trials), "lineage.csv")


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


def _concurrency(trainable, space: dict[str, Any]) -> int:
    import ray

    return trials_at_once(resources_per_trial(trainable, space), ray.cluster_resources())


def sweep_params(spec: SweepSpec) -> dict[str, Any]:
    keys = ("algo", "env", "profile", "trials", "max_env_steps", "min_env_steps_per_iteration",
            "grace_env_steps", "reduction_factor", "target_score", "max_concurrent", "seed",
            "select", "eval_episodes", "evaluation", "keep_checkpoints", "max_failures",
            "spec_file")
    params = {k: v for k, v in asdict(spec).items() if k in keys and v is not None}
    for k, v in spec.training.items():
        params[f"training.{k}"] = v
    for k, v in spec.env_config.items():
        params[f"env_config.{k}"] = v
    return params
