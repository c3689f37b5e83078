"""Results on S3: a sweep writes, is interrupted, resumes and finishes there.

The S3 is a real S3 API server on 127.0.0.1 (moto's), reached through
pyarrow exactly as a bucket on AWS would be, with the endpoint given in the
storage URI. The sweep runs as a real `tune-rl sweep` process with its own
local Ray, whose workers inherit the (fake) credentials from its environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from mlflow.tracking import MlflowClient

from conftest import assert_study_holds, free_port, saved_study, wait_until_answers

SPEC = """\
algo: PPO
env: cartpole
seed: 0
evaluation: false
max_concurrent: 1
profiles:
  quick:
    trials: 3
    max_env_steps: 3000
    min_env_steps_per_iteration: 1000
    grace_env_steps: 3000
    checkpoint_every: 1
    training: {train_batch_size_per_learner: 1000}
"""
MAX_STEPS = 3000
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on loopback, with a bucket `sweeps`."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("s3") / "moto.log"
    log = open(log_path, "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/", server, log_path)
        fs = pafs.S3FileSystem(access_key="testing", secret_key="testing", scheme="http",
                               endpoint_override=f"127.0.0.1:{port}", region="us-east-1",
                               allow_bucket_creation=True)
        fs.create_dir("sweeps")
        yield {"fs": fs, "uri": f"s3://sweeps/results?endpoint_override=127.0.0.1:{port}"
                                f"&scheme=http&region=us-east-1"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def sweep(tmp: Path, storage: str, *extra: str) -> subprocess.Popen:
    (tmp / "cloud.yaml").write_text(SPEC)
    args = [sys.executable, "-m", "tune_rl.cli", "sweep", "--spec", str(tmp / "cloud.yaml"),
            "--name", "on-s3", "--storage-path", storage,
            "--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}", *extra]
    log = open(tmp / f"log{len(list(tmp.glob('log*')))}.txt", "w")
    # Run from an empty folder: nothing of the sweep may land on the local disk.
    (tmp / "cwd").mkdir(exist_ok=True)
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True,
                            cwd=tmp / "cwd", env={**os.environ, **CREDENTIALS})


def files(fs: pafs.FileSystem, folder: str) -> list[str]:
    return [info.path for info in fs.get_file_info(pafs.FileSelector(folder, recursive=True,
                                                                     allow_not_found=True))]


def trials_with_checkpoints(fs: pafs.FileSystem, folder: str) -> set[str]:
    return {path.split("/checkpoint_")[0].rsplit("/", 1)[1] for path in files(fs, folder)
            if "/checkpoint_" in path}


def trials_in_snapshot(fs: pafs.FileSystem, folder: str) -> int:
    """Trials in Tune's latest experiment state on S3, the one a resume restores."""
    snapshots = sorted(p for p in files(fs, folder) if "/experiment_state-" in p)
    with fs.open_input_stream(snapshots[-1]) as f:
        return len(json.loads(f.read())["trial_data"])


def downloaded(fs: pafs.FileSystem, folder: str, pattern: str, to: Path) -> Path:
    """The files of `folder` whose name contains `pattern`, copied into `to`."""
    to.mkdir()
    for path in files(fs, folder):
        if pattern in path.rsplit("/", 1)[1]:
            with fs.open_input_stream(path) as f:
                (to / path.rsplit("/", 1)[1]).write_bytes(f.read())
    return to


def log(tmp: Path, index: int) -> str:
    return (tmp / f"log{index}.txt").read_text()


@pytest.mark.slow
def test_ctrl_c_then_resume_on_s3_loses_nothing(s3, tmp_path):
    """Ctrl-C is a clean stop, and the sweep resumes from S3: Tune's state,
    Optuna's history, the trials' counters and the MLflow runs carry over.
    Three trials one at a time; Ctrl-C during the second, so that Optuna
    proposes the third after the resume, knowing the first.
    (A local folder is resumed after SIGKILL in test_resume.py.)"""
    fs, folder = s3["fs"], "sweeps/results/on-s3"
    first = sweep(tmp_path, s3["uri"])
    for _ in range(3000):  # until the second trial has checkpointed to S3
        if len(trials_with_checkpoints(fs, folder)) == 2 or first.poll() is not None:
            break
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=300) == 130, log(tmp_path, 0)[-3000:]
    assert "interrupted; its state is saved" in log(tmp_path, 0) and "--resume" in log(tmp_path, 0)
    assert trials_in_snapshot(fs, folder) == 2  # the third is proposed after the resume
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("cartpole-PPO").experiment_id
    runs = client.search_runs([experiment])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED", "KILLED"]

    again = sweep(tmp_path, s3["uri"])  # same name, no --resume: refused, nothing changed
    assert again.wait(timeout=300) == 2
    assert "add --resume" in log(tmp_path, 1)

    # As a restarted scheduled job would: finds the sweep unfinished on S3, resumes it.
    resumed = sweep(tmp_path, s3["uri"], "--resume-if-unfinished")
    assert resumed.wait(timeout=600) == 0, log(tmp_path, 2)[-3000:]
    assert "Resuming sweep on-s3" in log(tmp_path, 2)

    with fs.open_input_stream(f"{folder}/summary.json") as f:
        summary = json.loads(f.read())
    assert [t["status"] for t in summary["trials"]] == ["FINISHED"] * 3
    # Optuna kept its history: the study saved last on S3, whose searcher
    # proposed the third trial, holds the first, finished before the Ctrl-C.
    searcher_state = downloaded(fs, folder, "searcher-state-", tmp_path / "searcher")
    assert_study_holds(saved_study(searcher_state), summary["trials"])
    assert summary["storage"] == "s3://sweeps/results/on-s3"
    for trial in summary["trials"]:  # keep_checkpoints (1) holds, resume or not
        assert len({path.split("/checkpoint_")[1].split("/")[0] for path in
                    files(fs, f"{folder}/{trial['trial']}") if "/checkpoint_" in path}) == 1
    assert list((tmp_path / "cwd").iterdir()) == []  # nothing written locally

    runs = client.search_runs([experiment])
    assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 4
    for child in (r for r in runs if "mlflow.parentRunId" in r.data.tags):
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "env_steps")]
        assert steps == sorted(steps) and steps[-1] >= MAX_STEPS, steps  # counters continued
    # The best checkpoint was fetched from S3, uploaded, and its policy registered.
    model = summary["best"]["model"]
    assert summary["best"]["checkpoint"].startswith("s3://sweeps/results/on-s3/PPO_")
    assert model and model.startswith("models:/cartpole-PPO/")
    best_run = client.get_model_version("cartpole-PPO", model.rsplit("/", 1)[1]).run_id
    assert {a.path for a in client.list_artifacts(best_run)} >= {"checkpoint", "policy"}

    # Finished on S3: there is nothing to resume.
    done = sweep(tmp_path, s3["uri"], "--resume")
    assert done.wait(timeout=300) == 2
    assert "is finished; there is nothing to resume" in log(tmp_path, 3)


def test_missing_bucket_is_refused_before_ray_starts(s3, tmp_path):
    uri = s3["uri"].replace("s3://sweeps/", "s3://no-such-bucket/")
    done = subprocess.run(
        [sys.executable, "-m", "tune_rl.cli", "sweep", "--algo", "PPO", "--env", "cartpole",
         "--storage-path", uri, "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **CREDENTIALS})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "bucket 'no-such-bucket' does not exist" in done.stderr
    assert not (tmp_path / "m.db").exists()
