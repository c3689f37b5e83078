"""Checkpoints sized to what a restore needs: the DQN family's replay buffer
only in a trial's latest checkpoint; older ones keep the weights.

Tune restores a trial (a retry, --resume) from its latest checkpoint, the
only one that needs the buffer (trainable.py); a full Breakout buffer is
about 7.9 GB, so with several kept checkpoints and trials it was most of a
sweep's disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ray.tune import Checkpoint

from tune_rl.cli import main
from tune_rl.plan import plan_sweep, resolve_plan
from tune_rl.runner import run_sweep
from tune_rl.spec import load_spec
from tune_rl.trainable import REPLAY_BUFFER_FILE, drop_older_replay_buffers


def test_older_checkpoints_lose_their_buffer_and_keep_everything_else(tmp_path):
    trial = tmp_path / "trial_0"
    for index in range(3):
        folder = trial / f"checkpoint_00000{index}"
        folder.mkdir(parents=True)
        (folder / REPLAY_BUFFER_FILE).write_bytes(b"buffer")
        (folder / "algorithm_state.pkl").write_bytes(b"weights")
    (trial / "not_a_checkpoint").mkdir()
    (trial / "not_a_checkpoint" / REPLAY_BUFFER_FILE).write_bytes(b"kept")

    latest = Checkpoint.from_directory(str(trial / "checkpoint_000002"))
    removed = drop_older_replay_buffers(latest)

    assert sorted(Path(p).parent.name for p in removed) == ["checkpoint_000000",
                                                            "checkpoint_000001"]
    assert [f.parent.name for f in sorted(trial.rglob(REPLAY_BUFFER_FILE))] == [
        "checkpoint_000002", "not_a_checkpoint"]
    assert len(list(trial.rglob("algorithm_state.pkl"))) == 3


def test_dry_run_shows_the_buffers_size_per_trial(tmp_path, capsys):
    args = ["sweep", "--dry-run", "--storage-path", str(tmp_path / "ray_results"),
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    # Two trials: 32 would need 253 GB of disk for their latest checkpoints.
    assert main([*args, "--algo", "Rainbow_DQN", "--profile", "full", "--trials", "2"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert ("the replay buffer only in the latest (up to about 7.9 GB per trial: 1000000 "
            "transitions x 7,900 bytes)") in plan["checkpoints"]
    assert main([*args, "--algo", "PPO"]) == 0
    assert "replay buffer" not in json.loads(capsys.readouterr().out)["checkpoints"]


def test_pbt_keeps_the_buffer_in_every_checkpoint(tmp_path, capsys):
    """PBT and PB2 restore a member from another's checkpoint, not
    necessarily that one's latest by then."""
    spec = tmp_path / "pbt.yaml"
    spec.write_text("algo: Rainbow_DQN\nsearch: pbt\nrollout_fragment_length: 4\n"
                    "envs_per_env_runner: 8\nprofiles:\n  quick:\n    trials: 4\n"
                    "    max_env_steps: 10000\n")
    assert main(["sweep", "--dry-run", "--spec", str(spec),
                 "--storage-path", str(tmp_path / "ray_results"),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]) == 0
    checkpoints = json.loads(capsys.readouterr().out)["checkpoints"]
    assert "the replay buffer in every checkpoint (pbt may restore any of them" in checkpoints
    assert resolve_plan(load_spec(spec_file=spec)).settings.replay_in_every_checkpoint


@pytest.mark.slow
def test_a_dqn_sweep_keeps_the_buffer_only_in_each_trials_latest_checkpoint(
        local_ray, tmp_path):
    spec = load_spec("DQN", env="cartpole", trials=1, max_env_steps=600,
                     min_env_steps_per_iteration=100, checkpoint_every=1, keep_checkpoints=3,
                     evaluation=False, select="train", name="buffers",
                     storage_path=str(tmp_path / "ray_results"),
                     tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    summary = run_sweep(plan_sweep(spec))
    assert summary["succeeded"] == 1
    (trial,) = summary["trials"]
    checkpoints = sorted(Path(trial["path"]).glob("checkpoint_*"))
    assert len(checkpoints) >= 2  # older ones kept (keep_checkpoints 3), and the latest
    with_buffer = [c.name for c in checkpoints if (c / REPLAY_BUFFER_FILE).exists()]
    assert with_buffer == [checkpoints[-1].name]


def test_a_sweep_its_storage_cannot_hold_is_refused_before_launch(tmp_path, capsys):
    # Full Rainbow: 1,000,000 transitions of replay (7.9 GB) and 2 checkpoints
    # of 6.76M parameters per trial; 100,000 trials hold no disk.
    storage = tmp_path / "ray_results"
    args = ["sweep", "--dry-run", "--algo", "Rainbow_DQN", "--profile", "full",
            "--storage-path", str(storage), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]
    assert main([*args, "--trials", "2"]) == 0
    disk = json.loads(capsys.readouterr().out)["disk"]
    assert disk.startswith("up to about 8.12 GB per trial"), disk
    assert main([*args, "--trials", "100000"]) == 2
    err = capsys.readouterr().err
    assert "100000 trials x 8.12 GB" in err and "is free there" in err
    assert not storage.exists() and not (tmp_path / "m.db").exists()
