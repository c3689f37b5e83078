"""What a person sees while a sweep runs, and what each trial cost.

A real CartPole PPO sweep from the command line (2 trials of 3,000 env steps,
each with one remote env runner, so the trials take turns on 2 CPUs): every
line it prints while running fits 100 columns and holds the trials' columns
and the env steps against the budget; each trial's CPU seconds, counted over
its process and its env runner's, are in MLflow, summary.json and the printed
summary. Rainbow's space, the widest, is checked on the table alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from tune_rl import runner
from tune_rl.cli import main
from tune_rl.cost import TrialCost, cpu_model
from tune_rl.envs import get_env
from tune_rl.presets import PRESETS
from tune_rl.progress import WIDTH, SweepProgress, short
from tune_rl.spaces import load_space

TRIALS, MAX_STEPS = 2, 3000
SWEEP = f"""
algo: PPO
env: cartpole
seed: 3
profiles:
  quick:
    trials: {TRIALS}
    max_env_steps: {MAX_STEPS}
    min_env_steps_per_iteration: 1000
    grace_env_steps: 2000
    env_runners: 1
    envs_per_env_runner: 1
    evaluation: false
    eval_episodes: 2
    training:
      train_batch_size_per_learner: 1000
"""
COLUMNS = ("trial", "status", "score", "eval", "env", "steps/s")


@pytest.fixture(scope="module")
def sweep(local_ray, tmp_path_factory):
    """The sweep's printed output, its summary and its MLflow store; Tune
    reports every second rather than every 30 (the budget bounds the run)."""
    root = tmp_path_factory.mktemp("progress")
    (root / "pc.yaml").write_text(SWEEP)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    out = io.StringIO()
    started = time.time()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setattr(runner, "PROGRESS_EVERY_S", 1)
        code = main(["sweep", "--spec", str(root / "pc.yaml"), "--name", "pc",
                     "--storage-path", str(root / "rr"), "--tracking-uri", tracking_uri])
    wall = time.time() - started
    assert code == 0, out.getvalue()[-3000:]
    summary = json.loads((root / "rr" / "pc" / "summary.json").read_text())
    return SimpleNamespace(out=out.getvalue(), summary=summary, wall=wall,
                           client=MlflowClient(tracking_uri))


def reports(text: str) -> list[list[str]]:
    """The progress reports, each as its lines: from one "== pc: ..." heading
    to the next, the last up to the summary."""
    progress = text.split("\nSweep pc: PPO on cartpole")[0]
    return [("== pc:" + block).splitlines() for block in progress.split("== pc:")[1:]]


@pytest.mark.slow
def test_progress_fits_100_columns_with_the_trials_and_the_budget(sweep):
    found = reports(sweep.out)
    assert len(found) >= 2, sweep.out[-3000:]  # the first, and the last when done
    for lines in found:
        assert all(len(line) <= WIDTH for line in lines), max(lines, key=len)
        header = next(i for i, line in enumerate(lines) if line.startswith("trial "))
        assert all(word in " ".join(lines[header - 1:header + 1]) for word in COLUMNS)
        rule = lines[header + 1]
        assert set(rule) <= {"-", " "}
        assert any(line.startswith("Env steps: ") and
                   f"of {TRIALS * MAX_STEPS:,}" in line and
                   f"{TRIALS} trials x {MAX_STEPS:,} (max_env_steps)" in line for line in lines)
    # While it ran: a trial running, and the time left from the sweep's rate.
    assert any(any(" RUNNING " in line for line in r) and
               any(line.startswith("Time left: about ") for line in r) for r in found)
    # When done: every trial's env steps in its row, and their total against the budget.
    last = found[-1]
    total = 0
    for trial in sweep.summary["trials"]:
        (row,) = [line for line in last if line.startswith(trial["trial_id"])]
        assert f" {trial['env_steps']} " in row
        total += trial["env_steps"]
    assert f"Env steps: {total:,} of {TRIALS * MAX_STEPS:,}" in "\n".join(last)
    # Every searched value, once, short: the table shows what fits.
    progress = [line for r in found for line in r]
    for trial in sweep.summary["trials"]:
        assert len(trial["params"]) >= 8  # the CartPole space less what the sweep file fixes
        assert values_of(progress, trial["trial"]) == {
            name: short(value) for name, value in trial["params"].items()}


def values_of(lines: list[str], trial: str) -> dict[str, str]:
    """The values printed for `trial` when it first appeared ("<trial>: k=v
    k=v", wrapped onto lines indented by two); refuses a trial listed twice."""
    (start,) = [i for i, line in enumerate(lines) if line.startswith(f"{trial}: ")]
    words = lines[start].split()[1:]
    for line in lines[start + 1:]:
        if not line.startswith("  ") or "=" not in line:  # the table's header comes next
            break
        words += line.split()
    return dict(word.split("=", 1) for word in words)


@pytest.mark.slow
def test_each_trial_cost_is_counted_in_mlflow_and_the_summary(sweep):
    cpus = os.cpu_count()
    trials = sweep.summary["trials"]
    assert len(trials) == TRIALS
    runs = {r.data.tags.get("trial_id"): r for r in sweep.client.search_runs(
        [sweep.summary["mlflow"]["experiment_id"]])}
    # Every process counted ran within the sweep, on this machine's CPUs.
    assert sum(t["cpu_seconds"] for t in trials) <= sweep.wall * cpus
    for trial in trials:
        run = runs[trial["trial_id"]]
        assert trial["cpu_seconds"] > 0
        assert run.data.metrics["cpu_seconds"] == pytest.approx(trial["cpu_seconds"], abs=0.05)
        # No GPU here: none was assigned, so nothing is counted.
        assert trial["gpu_seconds"] == 0 == run.data.metrics["gpu_seconds"]
        assert trial["cpu"] == cpu_model() == run.data.tags["machine.cpu"]
        assert trial["gpu"] == "none" == run.data.tags["machine.gpu"]
        # The env runner's process is counted beside the trial's own.
        last = json.loads(Path(trial["path"], "result.json").read_text().splitlines()[-1])
        cost = last["cost"]
        assert cost["env_runners"] == 1 and cost["env_runner_cpu_seconds"] > 0
        assert cost["cpu_seconds"] == pytest.approx(
            cost["trial_process_cpu_seconds"] + cost["env_runner_cpu_seconds"])
    parent = sweep.client.get_run(sweep.summary["mlflow"]["parent_run_id"])
    assert parent.data.metrics["cpu_seconds"] == pytest.approx(
        sum(t["cpu_seconds"] for t in trials), abs=0.1)
    # The printed summary: a column each, the machine once.
    printed = sweep.out.split("\nSweep pc: PPO on cartpole")[1]
    assert re.search(r"env steps\s+cpu s\s+gpu s", printed)
    for trial in trials:
        (row,) = [line for line in printed.splitlines() if line.startswith(trial["trial"])]
        assert f" {trial['cpu_seconds']:.0f} " in row
    assert f"Machine: {cpu_model()}, GPU none" in printed


def test_rainbows_space_fits_100_columns_with_every_value_once():
    space = load_space(PRESETS["Rainbow_DQN"], get_env("breakout"))

    class Trial(SimpleNamespace):
        def __str__(self) -> str:
            return f"Rainbow_DQN_{self.trial_id}"

    statuses = ["RUNNING"] * 2 + ["PENDING"] * 2 + ["TERMINATED"] * 11 + ["ERROR"]
    trials = [Trial(trial_id=f"{i:08x}", status=status,
                    config={k: d.sample(random_state=i) for k, d in space.items()},
                    last_result={} if status == "PENDING" else {
                        "score": 1.0 + i / 7, "last_eval_score": math.nan if i % 2 else i / 3,
                        "num_env_steps_sampled_lifetime": 20_000 * (1 + i % 4),
                        "time_this_iter_s": 7.3,
                        "env_runners": {"num_env_steps_sampled": 1000}})
              for i, status in enumerate(statuses)]
    progress = SweepProgress(name="rainbow", algo="Rainbow_DQN", params=list(space),
                             trials=16, max_env_steps=80_000, planned_env_steps=300_000)
    progress.setup(start_time=time.time(), total_samples=16, metric="eval_score", mode="max")
    scheduler = ("Using AsyncHyperBand: num_stopped=11\nBracket: Iter 80000.000: None | "
                 "Iter 40000.000: 1.2 | Iter 20000.000: 1.3")
    lines = progress.lines(trials, False, scheduler, "Logical resource usage: 2.0/2 CPUs")
    assert max(map(len, lines)) <= WIDTH
    text = "\n".join(lines)
    for trial in trials:
        assert values_of(lines, str(trial)) == {k: short(v) for k, v in trial.config.items()}
    steps = sum(t.last_result.get("num_env_steps_sampled_lifetime", 0) for t in trials)
    assert f"Env steps: {steps:,} of 1,280,000 ({steps / 1_280_000:.0%})" in text
    assert "ASHA, cutting trials at its rungs as planned, allows about 300,000" in text
    # Printed once: a second report lists no trial's values again.
    assert not any(f"{t}: " in "\n".join(progress.lines(trials, False)) for t in trials)


def test_a_trial_restarted_on_a_new_actor_adds_each_actors_last_count():
    def result(started: float, cpu: float) -> dict:
        return {"node_ip": "10.0.0.1", "cost": {"cpu_seconds": cpu, "gpu_seconds": cpu / 2,
                                                "actor_started": started}}

    cost = TrialCost()
    for r in [result(1.0, 5.0), result(1.0, 9.0), result(2.0, 3.0), result(2.0, 4.0)]:
        totals = cost.add(r)
    assert totals == {"cpu_seconds": 13.0, "gpu_seconds": 6.5}
    # A resumed sweep's driver goes on from what MLflow holds.
    assert TrialCost(13.0, 6.5).add(result(3.0, 2.0)) == {"cpu_seconds": 15.0,
                                                          "gpu_seconds": 7.5}
