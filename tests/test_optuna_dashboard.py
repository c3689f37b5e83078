"""The sweep's Optuna study opens in Optuna Dashboard.

A real CartPole PPO sweep (3 trials, an evaluation at every iteration) keeps
its study in a journal beside its folder; Optuna reads every trial back,
with its params, its evaluations by env steps and its final value, and
`tune-rl optuna-dashboard` (what `make optuna-dashboard` runs) serves them
on 127.0.0.1. A resumed study neither keeps a trial the kill orphaned nor
writes to one it finished; PBT and PB2 have no study and say so.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import optuna
import pytest

from conftest import free_port, wait_until_answers
from tune_rl.cli import main
from tune_rl.errors import UsageError
from tune_rl.plan import plan_sweep, resolve_plan
from tune_rl.search import SEED, make_searcher
from tune_rl.spec import load_spec
from tune_rl.study import NO_STUDY, open_storage
from tune_rl.trainable import ENV_STEPS, EVAL_SCORE

ITERATION, MAX_STEPS = 1000, 3000


def spec_of(root: Path, **extra):
    settings = dict(env="cartpole", trials=3, max_env_steps=MAX_STEPS, grace_env_steps=2000,
                    min_env_steps_per_iteration=ITERATION, checkpoint_every=1,
                    keep_checkpoints=1, evaluation=False, eval_episodes=2, seed=3,
                    envs_per_env_runner=1, training={"train_batch_size_per_learner": ITERATION},
                    name="dash", storage_path=str(root / "ray_results"),
                    tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return load_spec("PPO", **{**settings, **extra})


@pytest.fixture(scope="module")
def sweep(local_ray, tmp_path_factory):
    from tune_rl.runner import run_sweep

    root = tmp_path_factory.mktemp("dashboard")
    spec = spec_of(root)
    return root, spec, run_sweep(plan_sweep(spec))


def evaluations(trial: dict) -> dict[int, float]:
    """A trial's evaluations by env steps, from Tune's result file."""
    lines = (Path(trial["path"]) / "result.json").read_text().splitlines()
    results = [json.loads(line) for line in lines if line.strip()]
    return {r[ENV_STEPS]: r[EVAL_SCORE] for r in results if not math.isnan(r[EVAL_SCORE])}


@pytest.mark.slow
def test_the_study_beside_the_sweep_holds_every_trial_by_env_steps(sweep):
    root, spec, summary = sweep
    journal = root / "ray_results" / "dash.optuna.journal"
    assert journal.is_file()
    study = optuna.load_study(study_name="dash", storage=open_storage(str(journal)))
    trials = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    assert len(trials) == len(summary["trials"]) == 3
    for trial in summary["trials"]:
        studied = trials[trial["trial"].removeprefix("PPO_")]
        assert studied.state == optuna.trial.TrialState.COMPLETE
        assert studied.params == pytest.approx(
            {k: v for k, v in trial["params"].items() if k != SEED})
        # Each evaluation at its env steps, and nothing between them.
        assert studied.intermediate_values == pytest.approx(evaluations(trial))
        assert set(studied.intermediate_values) >= {ITERATION, 2 * ITERATION}
        assert studied.value == pytest.approx(trial["selected_score"])


@pytest.mark.slow
def test_optuna_dashboard_serves_the_sweeps_trials(sweep):
    root, spec, summary = sweep
    port = free_port()
    log = root / "dashboard.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "tune_rl.cli", "optuna-dashboard", "dash", "--port",
             str(port), "--storage-path", str(root / "ray_results")],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/api/studies", server, log)
        studies = json.load(urllib.request.urlopen(f"{url}/api/studies", timeout=10))
        (study_id,) = [s["study_id"] for s in studies["study_summaries"]
                       if s["study_name"] == "dash"]
        study = json.load(urllib.request.urlopen(f"{url}/api/studies/{study_id}", timeout=30))
        shown = {t["number"]: t for t in study["trials"]}
        assert len(shown) == 3 and {t["state"] for t in shown.values()} == {"Complete"}
        for trial in shown.values():
            steps = [v["step"] for v in trial["intermediate_values"]]
            assert steps[:2] == [ITERATION, 2 * ITERATION]
            assert {p["name"] for p in trial["params"]} == set(summary["trials"][0]["params"]
                                                                ) - {SEED}
        page = urllib.request.urlopen(f"{url}/dashboard", timeout=10)
        assert page.status == 200 and b"<html" in page.read().lower()
        # What a person sees: the study's trial list in a browser, each trial
        # with its value and its intermediate values by env steps.
        from playwright.sync_api import sync_playwright

        from test_mlflow_ui import CHROMIUM, CHROMIUM_ARGS

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            view = browser.new_page(viewport={"width": 1400, "height": 900})
            view.goto(f"{url}/dashboard/studies/{study_id}/trials")
            view.get_by_text("3 Trials", exact=True).wait_for(timeout=60_000)
            for number in shown:
                view.get_by_text(f"Trial {number}", exact=True).first.wait_for(timeout=30_000)
            assert "Intermediate Values" in view.inner_text("body")
            view.screenshot(path=root / "dashboard.png")
            browser.close()
    finally:
        # optuna-dashboard runs gunicorn workers: end the whole group.
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert f"Optuna Dashboard of {root / 'ray_results' / 'dash.optuna.journal'}" in (
        log.read_text())


@pytest.mark.slow
def test_a_new_sweep_under_a_used_name_is_refused_before_it_starts(sweep):
    root, spec, summary = sweep
    with pytest.raises(UsageError, match="already holds an Optuna study named 'dash'"):
        plan_sweep(spec_of(root, storage_path=str(root / "elsewhere"),
                           optuna_storage=str(root / "ray_results" / "dash.optuna.journal")))


@pytest.mark.parametrize("storage", ["s.journal", "sqlite:///{tmp}/s.db"])
def test_a_resumed_study_drops_orphans_and_leaves_finished_trials_alone(storage, tmp_path):
    """What Tune does on --resume: a new searcher restored from the state it
    saved. Trial b was proposed after that save (its Tune trial died with the
    process), trial a finished after it (Tune runs it again from its last
    checkpoint and reports again). In a journal and in an RDB (--optuna-storage)."""
    from ray import tune

    location = (storage.format(tmp=tmp_path) if "://" in storage else str(tmp_path / storage))

    def searcher():
        return make_searcher("random", 0, 3, "steps", storage=open_storage(location),
                             study_name="s")

    first = searcher()
    first.set_search_properties("score", "max", {"lr": tune.loguniform(1e-4, 1e-2)})
    first.suggest("a")
    first.on_trial_result("a", {"score": 1.0, "steps": 100})
    first.on_trial_result("a", {"score": math.nan, "steps": 200})  # not evaluated: no report
    first.save(str(tmp_path / "state.pkl"))
    first.on_trial_complete("a", {"score": 2.0, "steps": 300})  # Tune's way: the last result
    first.suggest("b")

    resumed = searcher()
    resumed.restore(str(tmp_path / "state.pkl"))
    resumed.on_trial_result("a", {"score": 5.0, "steps": 300})  # no UpdateFinishedTrialError
    resumed.on_trial_complete("a", {"score": 5.0, "steps": 300})
    resumed.suggest("c")
    resumed.on_trial_complete("c", {"score": 3.0, "steps": 300})

    study = optuna.load_study(study_name="s", storage=open_storage(location))
    states = {t.user_attrs["tune_trial_id"]: (t.state.name, t.value) for t in study.trials}
    assert states == {"a": ("COMPLETE", 2.0), "b": ("FAIL", None), "c": ("COMPLETE", 3.0)}
    assert study.trials[0].intermediate_values == {100: 1.0, 300: 2.0}


def test_pbt_and_pb2_sweeps_say_they_have_no_study(tmp_path, capsys):
    for method in ("pbt", "pb2"):
        plan = resolve_plan(spec_of(tmp_path, search=method))
        assert plan.describe()["optuna_study"] == NO_STUDY
    assert "study 'dash' in " in resolve_plan(spec_of(tmp_path)).describe()["optuna_study"]
    # Serving one: refused, with the reason, before any server starts.
    assert main(["optuna-dashboard", "dash", "--storage-path", str(tmp_path)]) == 2
    assert "PBT and PB2 sweeps" in capsys.readouterr().err
