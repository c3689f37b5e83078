"""Population Based Training and PB2: a population that copies the best
trials' weights and perturbs their values, and the values really reach the
learner (ray#62173's trap: RLlib restores the optimizer's lr with the
checkpoint, so an exploited trial would train with its donor's).

Real CartPole PPO populations of 2 and 3, perturbed every 1,000 env steps, read
back from Tune's result files, PBT's own log and MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tune_rl.plan import plan_sweep
from tune_rl.runner import run_sweep
from tune_rl.spec import load_spec
from tune_rl.trainable import COPIED_FROM, ENV_STEPS, LEARNER_VALUES


def population(method: str, root: Path, steps: int = 6000, members: int = 2) -> tuple:
    # One CPU per member: on 2 CPUs a population of 3 takes turns.
    spec = load_spec("PPO", env="cartpole", search=method, trials=members,
                     max_env_steps=steps,
                     min_env_steps_per_iteration=1000, perturbation_env_steps=1000,
                     envs_per_env_runner=4, evaluation=False, seed=1,
                     training={"train_batch_size_per_learner": 1000}, name=method,
                     storage_path=str(root / "ray_results"),
                     tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return spec, run_sweep(plan_sweep(spec))


def results_of(trial: dict) -> list[dict]:
    lines = (Path(trial["path"]) / "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def pbt(local_ray, tmp_path_factory):
    return population("pbt", tmp_path_factory.mktemp("pbt"))


@pytest.mark.slow
def test_an_exploited_trial_trains_with_its_new_lr_not_its_donors(pbt):
    spec, summary = pbt
    assert summary["failed"] == 0
    exploits = [json.loads(line) for line in
                (Path(spec.sweep_location) / "pbt_global.txt").read_text().splitlines()]
    assert exploits, "no trial was exploited"
    checked = 0
    for trial in summary["trials"]:
        results = results_of(trial)
        for before, after in zip(results, results[1:], strict=False):
            if not after.get(COPIED_FROM):
                continue
            # The first iteration after the exploit: the learner's optimizer
            # holds the new config's lr (read before the update), and the
            # loss settings are the new ones too.
            new = after["config"]
            held = after[LEARNER_VALUES]
            assert held["lr"] == pytest.approx(new["lr"])
            assert held["entropy_coeff"] == pytest.approx(new["entropy_coeff"])
            assert held["clip_param"] == pytest.approx(new["clip_param"])
            assert after[ENV_STEPS] > before[ENV_STEPS]  # it went on, from the donor's steps
            checked += 1
    assert checked >= 1
    # Perturbed values stay inside the space's ranges.
    for exploit in exploits:
        new = exploit[5]
        assert 1e-4 <= new["lr"] <= 3e-3 and 0.1 <= new["clip_param"] <= 0.4


@pytest.mark.slow
def test_mlflow_shows_the_values_over_env_steps_and_the_lineage(pbt):
    spec, summary = pbt
    client = MlflowClient(spec.tracking_uri)
    parent = summary["mlflow"]["parent_run_id"]
    lineage = Path(client.download_artifacts(parent, "lineage.csv")).read_text().splitlines()
    assert lineage[0].startswith("trial,copied_from") and len(lineage) >= 2
    exploited = {line.split(",")[0] for line in lineage[1:]}
    experiment = client.get_run(parent).info.experiment_id
    runs = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'")
    tagged = {r.info.run_name for r in runs if "copied_from" in r.data.tags}
    assert tagged and tagged <= exploited
    for run in runs:
        if run.info.run_name in tagged:
            history = client.get_metric_history(run.info.run_id, "learner.lr")
            assert len({m.value for m in history}) >= 2  # its lr changed as it trained


@pytest.mark.slow
def test_pb2_runs_a_population_larger_than_fits_at_once(local_ray, tmp_path):
    # 3 members on 2 CPUs: they take turns and all meet at each perturbation
    # point (synchronous), so the bottom member copies the top one at the
    # first point already, 1,000 env steps in.
    spec, summary = population("pb2", tmp_path, steps=3000, members=3)
    assert summary["failed"] == 0 and summary["best"] is not None
    exploits = [json.loads(line) for line in
                (Path(spec.sweep_location) / "pbt_global.txt").read_text().splitlines()]
    assert len(exploits) >= 2  # one at each of the points at 1,000 and 2,000 env steps
    for trial in summary["trials"]:
        steps = [r[ENV_STEPS] for r in results_of(trial)]
        assert steps[-1] >= 3000


def test_pbt_with_nothing_to_change_is_refused():
    from tune_rl.errors import UsageError

    with pytest.raises(UsageError, match="search: pbt has nothing to change"):
        plan_sweep(load_spec("PPO", env="cartpole", search="pbt",
                             training={"lr": 1e-3, "entropy_coeff": 0.0, "clip_param": 0.2}))
