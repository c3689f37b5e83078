"""One rule chooses the winner: ASHA, Optuna, the checkpoints, the summary and
the registry all see the same fresh evaluation, and each trial has its own seed.

A real CartPole PPO sweep (3 trials, ASHA rungs at 2,000 and 4,000 env steps,
a checkpoint every 2 iterations) with `select: eval`, read back from Tune's
result files, the checkpoints' own records, Optuna's saved study and MLflow.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from ray.tune.schedulers import ASHAScheduler

from conftest import assert_study_holds, saved_study
from tune_rl import selection
from tune_rl.plan import plan_sweep
from tune_rl.runner import run_sweep
from tune_rl.search import startup_trials, trial_seed
from tune_rl.spec import load_spec
from tune_rl.trainable import CHECKPOINT_RECORD_FILE, ENV_STEPS, EVAL_SCORE

ITERATION, GRACE, MAX_STEPS = 1000, 2000, 6000


@pytest.mark.parametrize("grace, max_t, factor", [
    (5000, 20000, 2), (10000, 30000, 2), (1000, 8000, 3), (8000, 8000, 2), (4000, 10000, 2)])
def test_evaluation_milestones_are_ashas_rungs(grace, max_t, factor):
    asha = ASHAScheduler(time_attr="t", metric="m", mode="max", max_t=max_t,
                         grace_period=grace, reduction_factor=factor)
    rungs = sorted(milestone for milestone, _ in asha._brackets[0]._rungs)
    assert selection.asha_milestones(grace, max_t, factor) == rungs


def test_failed_diverged_and_uncheckpointed_trials_are_never_best():
    def trial(status, score, checkpoint="ckpt"):
        return {"trial": status, "status": status, "selected_score": score,
                "checkpoint": checkpoint}

    trials = [trial("FAILED", 100.0), trial("DIVERGED", 90.0),
              trial("FINISHED", 80.0, checkpoint=None), trial("FINISHED", None),
              trial("STOPPED_EARLY", 10.0)]
    assert selection.best(trials)["status"] == "STOPPED_EARLY"
    assert selection.best(trials[:4]) is None


@pytest.fixture(scope="module")
def eval_sweep(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("select")
    spec = load_spec("PPO", env="cartpole", trials=3, max_env_steps=MAX_STEPS,
                     grace_env_steps=GRACE, min_env_steps_per_iteration=ITERATION,
                     checkpoint_every=2, keep_checkpoints=2, evaluation=False, seed=7,
                     # One env: each iteration samples exactly its 1,000 steps.
                     envs_per_env_runner=1,
                     training={"train_batch_size_per_learner": ITERATION}, name="select",
                     storage_path=str(root / "ray_results"),
                     tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return spec, run_sweep(plan_sweep(spec))


def results_of(trial: dict) -> list[dict]:
    lines = (Path(trial["path"]) / "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.slow
def test_asha_and_optuna_compare_fresh_evaluations(eval_sweep):
    spec, summary = eval_sweep
    assert summary["select"] == "eval" and summary["succeeded"] == 3
    milestones = selection.asha_milestones(GRACE, MAX_STEPS, 2)
    for trial in summary["trials"]:
        results = results_of(trial)
        steps = [r[ENV_STEPS] for r in results]
        # Evaluation's games are not training's: the counters move by the
        # iteration's samples only.
        assert steps == [ITERATION * (i + 1) for i in range(len(steps))]
        evaluated = {r[ENV_STEPS]: r[EVAL_SCORE] for r in results
                     if not math.isnan(r[EVAL_SCORE])}
        # At each rung the trial reached, at every checkpoint (every 2
        # iterations) and at its end; nowhere else.
        expected = ({m for m in milestones if m <= steps[-1]}
                    | {s for i, s in enumerate(steps) if (i + 1) % 2 == 0} | {steps[-1]})
        assert set(evaluated) == expected, (trial["trial"], evaluated)
        last = results[-1]
        assert last["evaluation"]["env_steps"] > 0 and len(last["evaluation"]["scores"]) == 5
        # What the summary (and Optuna) hold is that last evaluation.
        assert trial["selected_score"] == trial["eval_score"] == pytest.approx(last[EVAL_SCORE])
    # Optuna was told each trial's evaluation at its last report.
    study = saved_study(Path(spec.sweep_location))
    assert_study_holds(study, summary["trials"])
    # TPE's random start sized to the sweep, not Optuna's 10.
    assert study.sampler._n_startup_trials == startup_trials(3) == 3
    stopped = [t for t in summary["trials"] if t["status"] == "STOPPED_EARLY"]
    assert stopped and all(t["env_steps"] in milestones for t in stopped)


@pytest.mark.slow
def test_checkpoints_carry_the_evaluation_they_were_saved_with(eval_sweep):
    spec, summary = eval_sweep
    for trial in summary["trials"]:
        by_steps = {r[ENV_STEPS]: r for r in results_of(trial)}
        checkpoints = sorted(Path(trial["path"]).glob("checkpoint_*"))
        assert checkpoints
        for checkpoint in checkpoints:
            record = json.loads((checkpoint / CHECKPOINT_RECORD_FILE).read_text())
            assert record[EVAL_SCORE] == pytest.approx(by_steps[record[ENV_STEPS]][EVAL_SCORE])
            assert record["seed"] == trial["seed"] and record["params"] == trial["params"]
        # The kept best is the best of them by evaluation.
        records = [json.loads((c / CHECKPOINT_RECORD_FILE).read_text()) for c in checkpoints]
        assert trial["checkpoint_score"] == pytest.approx(max(r[EVAL_SCORE] for r in records))


@pytest.mark.slow
def test_the_winner_and_its_registered_model_are_chosen_by_evaluation(eval_sweep):
    spec, summary = eval_sweep
    best = summary["best"]
    assert best["selected_score"] == max(t["selected_score"] for t in summary["trials"])
    client = MlflowClient(spec.tracking_uri)
    _, name, version = best["model"].split("/")
    tags = client.get_model_version(name, version).tags
    record = json.loads((Path(best["checkpoint"]) / CHECKPOINT_RECORD_FILE).read_text())
    assert float(tags["score"]) == pytest.approx(record[EVAL_SCORE])
    assert tags["selected_by"] == "eval" and tags["trial"] == best["trial"]


@pytest.mark.slow
def test_each_trial_has_its_own_seed_derived_from_the_sweeps(eval_sweep):
    spec, summary = eval_sweep
    seeds = [t["seed"] for t in summary["trials"]]
    assert sorted(seeds) == sorted(trial_seed(7, i) for i in range(3))
    client = MlflowClient(spec.tracking_uri)
    experiment = client.get_experiment_by_name(spec.experiment).experiment_id
    runs = client.search_runs([experiment], "tags.mlflow.parentRunId != ''")
    assert sorted(int(r.data.params["seed"]) for r in runs) == sorted(seeds)
