"""Sweeps survive SIGKILL: resume continues them and loses nothing.

A real sweep process (PPO on CartPole, a checkpoint every iteration) is
killed once its first trial has finished, then resumed with --resume; Tune's
state, the trials' counters and the MLflow runs carry over, and the finished
trial is not run again. (Ctrl-C and resume: test_cloud_storage.py, on S3.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

SPEC = """\
algo: PPO
env: cartpole
seed: 0
evaluation: false
max_concurrent: 1
profiles:
  quick:
    trials: 2
    max_env_steps: 4000
    min_env_steps_per_iteration: 1000
    grace_env_steps: 4000
    checkpoint_every: 1
    training: {train_batch_size_per_learner: 1000}
"""


def start(tmp: Path, *extra: str) -> subprocess.Popen:
    (tmp / "resume.yaml").write_text(SPEC)
    args = [sys.executable, "-m", "tune_rl.cli", "sweep", "--spec", str(tmp / "resume.yaml"),
            "--name", "interrupted", "--storage-path", str(tmp / "ray_results"),
            "--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}", *extra]
    log = open(tmp / f"log{len(list(tmp.glob('log*')))}.txt", "w")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True)


def wait_for_checkpoint(process: subprocess.Popen, sweep: Path, index: int = 1) -> None:
    """Until a trial has written checkpoint `index` (or the sweep ends)."""
    for _ in range(1800):
        if list(sweep.glob(f"PPO_*/checkpoint_{index:06d}")) or process.poll() is not None:
            return
        time.sleep(0.1)


def result_lines(sweep: Path) -> dict[str, int]:
    return {p.parent.name: len(p.read_text().splitlines()) for p in sweep.glob("*/result.json")}


def finished_trials(sweep: Path) -> set[str]:
    done = set()
    for path in sweep.glob("*/result.json"):
        lines = path.read_text().splitlines()
        if lines and json.loads(lines[-1])["num_env_steps_sampled_lifetime"] >= 4000:
            done.add(path.parent.name)
    return done


def trials_in_snapshot(sweep: Path) -> int:
    """Trials in Tune's latest experiment state, the one --resume restores."""
    snapshots = sorted(sweep.glob("experiment_state-*.json"))
    try:
        return len(json.loads(snapshots[-1].read_text())["trial_data"]) if snapshots else 0
    except (json.JSONDecodeError, KeyError):
        return 0  # being written


def check_resumed(tmp: Path) -> None:
    sweep = tmp / "ray_results" / "interrupted"
    summary = json.loads((sweep / "summary.json").read_text())
    assert [t["status"] for t in summary["trials"]] == ["FINISHED", "FINISHED"]
    # Optuna kept its history: the trial proposed after the resume is new.
    first, second = (t["params"] for t in summary["trials"])
    assert first != second
    # Checkpoints stay bounded by keep_checkpoints (1), resume or not.
    for trial in summary["trials"]:
        assert len(list(Path(trial["path"]).glob("checkpoint_*"))) == 1
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cartpole-PPO").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    for child in children:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "env_steps")]
        # Counters continue from the checkpoint; a restart (ray#43266) would
        # show env steps falling back to 1000.
        assert steps == sorted(steps) and steps[-1] >= 4000, steps


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_keeps_finished_trials(tmp_path):
    sweep = tmp_path / "ray_results" / "interrupted"
    process = start(tmp_path)
    # Past the first trial's end: the second trial has checkpointed, and Tune's
    # periodic experiment snapshot knows it (a trial started after the last
    # snapshot is lost to a SIGKILL, and the resumed search proposes a new one).
    for _ in range(3000):
        if (finished_trials(sweep) and len(list(sweep.glob("PPO_*/checkpoint_*"))) >= 2
                and trials_in_snapshot(sweep) == 2):
            break
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    process.wait(timeout=60)
    done_before = finished_trials(sweep)
    lines_before = result_lines(sweep)
    assert len(done_before) == 1

    resumed = start(tmp_path, "--resume")
    assert resumed.wait(timeout=600) == 0, (tmp_path / "log1.txt").read_text()[-3000:]
    lines_after = result_lines(sweep)
    for trial in done_before:  # not re-run
        assert lines_after[trial] == lines_before[trial]
    assert len(lines_after) == 2
    check_resumed(tmp_path)
