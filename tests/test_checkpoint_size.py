"""Checkpoints sized to what a restore needs: the DQN family's replay buffer
only in a trial's latest checkpoint, and only while the trial may still be
restored; older checkpoints, and all of them once the trial ends, keep the
weights.

Tune restores a trial (a retry, --resume) from its latest checkpoint, the
only one that needs the buffer, and never restores a trial that ended
(trainable.py); a full Breakout buffer is about 7.9 GB, so a sweep's disk
holds the buffers of the trials running at once, not one per trial.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import ray.cloudpickle
from ray.tune import Checkpoint

from tune_rl.cli import main
from tune_rl.envs import ENVS, EnvChoice
from tune_rl.plan import plan_sweep, resolve_plan
from tune_rl.policy import module_path
from tune_rl.runner import run_sweep
from tune_rl.spec import load_spec
from tune_rl.trainable import (
    REPLAY_BUFFER_FILE,
    REPLAY_BYTES_PER_TRANSITION,
    drop_replay_buffers,
)

# Ray workers cannot import this test module; ship its functions by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


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
    removed = drop_replay_buffers(latest)

    assert sorted(Path(p).parent.name for p in removed) == ["checkpoint_000000",
                                                            "checkpoint_000001"]
    assert [f.parent.name for f in sorted(trial.rglob(REPLAY_BUFFER_FILE))] == [
        "checkpoint_000002", "not_a_checkpoint"]
    assert len(list(trial.rglob("algorithm_state.pkl"))) == 3
    # The trial ended: the latest loses its buffer too.
    assert [Path(p).parent.name for p in drop_replay_buffers(latest, keep_latest=False)] == [
        "checkpoint_000002"]
    assert [f.parent.name for f in trial.rglob(REPLAY_BUFFER_FILE)] == ["not_a_checkpoint"]
    assert len(list(trial.rglob("algorithm_state.pkl"))) == 3


@pytest.fixture
def free_disk(monkeypatch):
    """The storage's free space, as the disk check reads it: the full
    profiles' plans need more than some machines that run the tests have."""
    import tune_rl.plan

    def set_free(size: int) -> None:
        monkeypatch.setattr(tune_rl.plan, "disk_free", lambda path: size)
    set_free(100 * 10**9)
    return set_free


def test_dry_run_shows_the_buffers_size_per_trial(tmp_path, capsys, free_disk):
    args = ["sweep", "--dry-run", "--storage-path", str(tmp_path / "ray_results"),
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    # One trial at once: its buffer, up to 3 while it saves, 24 GB of disk.
    assert main([*args, "--algo", "Rainbow_DQN", "--profile", "full", "--trials", "2",
                 "--max-concurrent", "1"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert ("the replay buffer only in the latest (up to about 7.9 GB per trial: 1000000 "
            "transitions x 7,900 bytes) and only while the trial runs") in plan["checkpoints"]
    assert "replay buffers only while a trial runs: " in plan["disk"]
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
    plan = json.loads(capsys.readouterr().out)
    assert "the replay buffer in every checkpoint (pbt may restore any of them" in plan[
        "checkpoints"]
    assert "each with its replay buffer (pbt may restore any of them)" in plan["disk"]
    assert resolve_plan(load_spec(spec_file=spec)).settings.replay_in_every_checkpoint


def test_the_disk_holds_the_buffers_of_the_trials_running_at_once(tmp_path):
    """ASHA's trials drop their buffer when they end: the disk needs the
    buffers of the trials at once (each up to 3 while it saves: the latest,
    the new one and Tune's temporary copy), whatever the number of trials.
    A population keeps one in every checkpoint of every member."""
    def plan(**settings):
        return resolve_plan(load_spec("DQN", profile="full", max_concurrent=2,
                                      storage_path=str(tmp_path), **settings))

    few, many = plan(trials=4), plan(trials=32)
    # tmp_path is in the temporary folder, on the same disk: 3 buffers while one saves.
    assert few.replay_on_disk() == many.replay_on_disk() == (2, 3)
    buffer = 1_000_000 * REPLAY_BYTES_PER_TRANSITION["breakout"]
    assert few.disk_per_trial() < buffer / 10  # weights only
    assert few.disk_needed()[0] == 4 * few.disk_per_trial() + 2 * 3 * buffer
    assert many.disk_needed()[0] - few.disk_needed()[0] == 28 * few.disk_per_trial()

    pbt = plan(trials=4, search="pbt")
    assert pbt.replay_on_disk() == (0, 0)
    spec = pbt.spec
    saved = spec.max_env_steps // spec.min_env_steps_per_iteration // spec.checkpoint_every + 1
    assert pbt.disk_per_trial() > saved * buffer  # every checkpoint kept, each with its buffer
    assert pbt.disk_needed()[0] == 4 * pbt.disk_per_trial()


class CrashingCartPole(gym.Wrapper):
    """CartPole that raises after 40 steps in the trial that claims the role
    (the first to start) on every attempt; no crash without a claim file."""

    def __init__(self, env, claim: str | None):
        super().__init__(env)
        trial, self.steps, self.crash = Path.cwd().name, 0, False
        if claim:
            try:
                with open(claim, "x") as f:
                    f.write(trial)
            except FileExistsError:
                pass
            self.crash = Path(claim).read_text() == trial

    def step(self, action):
        self.steps += 1
        if self.crash and self.steps > 40:
            raise RuntimeError("simulated env crash")
        return self.env.step(action)


def make_crashing_cartpole(env_config) -> gym.Env:
    return CrashingCartPole(gym.make("CartPole-v1"), env_config.get("claim_file"))


@pytest.fixture
def crashing_cartpole(monkeypatch):
    """An env of the test's own, offered by name like cartpole, its replay
    sized as CartPole's."""
    name = "crashing-cartpole"
    monkeypatch.setitem(ENVS, name, EnvChoice(
        name, make_crashing_cartpole, False, "CartPole that crashes in one trial", (4,),
        options={"claim_file": (lambda value: isinstance(value, str), "a path")}))
    monkeypatch.setitem(REPLAY_BYTES_PER_TRANSITION, name,
                        REPLAY_BYTES_PER_TRANSITION["cartpole"])
    return name


@pytest.mark.slow
def test_a_dqn_sweep_keeps_a_buffer_only_where_a_restore_may_need_it(
        local_ray, crashing_cartpole, tmp_path, capsys):
    # 4 trials, 2 at once, of 600 env steps with ASHA's rung at 200; the
    # first trial to start crashes at about 300 env steps, is retried from
    # its latest checkpoint, crashes again and ends FAILED.
    storage = tmp_path / "ray_results"
    spec = load_spec("DQN", env=crashing_cartpole, trials=4, max_concurrent=2,
                     max_env_steps=600, min_env_steps_per_iteration=100, grace_env_steps=200,
                     reduction_factor=3, checkpoint_every=1, keep_checkpoints=3,
                     max_failures=1, evaluation=False, eval_episodes=2, select="train",
                     name="buffers", env_config={"claim_file": str(tmp_path / "claim")},
                     storage_path=str(storage),
                     tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    summary = run_sweep(plan_sweep(spec))
    statuses = sorted(t["status"] for t in summary["trials"])
    assert statuses[0] == "FAILED" and set(statuses[1:]) <= {"FINISHED", "STOPPED_EARLY"}
    for trial in summary["trials"]:
        checkpoints = sorted(Path(trial["path"]).glob("checkpoint_*"))
        assert checkpoints and all(module_path(c).is_dir() for c in checkpoints)  # the weights
        with_buffer = [c.name for c in checkpoints if (c / REPLAY_BUFFER_FILE).exists()]
        if trial["status"] == "FAILED":  # --resume restores it, from its latest
            assert len(checkpoints) >= 2 and with_buffer == [checkpoints[-1].name]
        else:  # ended: Tune never restores it
            assert with_buffer == [], trial["trial"]

    # The best checkpoint, without its buffer, still plays, and `best` writes the winner.
    assert summary["best"]["model"]
    assert main(["evaluate", "--sweep", "buffers", "--storage-path", str(storage),
                 "--episodes", "2"]) == 0
    assert "DQN on crashing-cartpole, 2 complete games" in capsys.readouterr().out
    assert main(["best", "buffers", "--storage-path", str(storage),
                 "-o", str(tmp_path / "best.yaml")]) == 0
    assert "params:" in (tmp_path / "best.yaml").read_text()


def test_a_sweep_its_storage_cannot_hold_is_refused_before_launch(tmp_path, capsys, free_disk):
    # Full Rainbow: 2 checkpoints of 6.76M parameters per trial, and the
    # 1,000,000-transition buffer (7.9 GB) of the one trial at once, up to 3
    # while it saves; 100,000 trials' checkpoints hold no disk.
    storage = tmp_path / "ray_results"
    args = ["sweep", "--dry-run", "--algo", "Rainbow_DQN", "--profile", "full",
            "--max-concurrent", "1", "--storage-path", str(storage),
            "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]
    assert main([*args, "--trials", "2"]) == 0
    disk = json.loads(capsys.readouterr().out)["disk"]
    assert disk.startswith("up to about 24.1 GB: 2 trials x 220 MB of kept checkpoints; replay "
                           "buffers only while a trial runs: 1 at once x 3 x 7.9 GB"), disk
    assert main([*args, "--trials", "100000"]) == 2
    err = capsys.readouterr().err
    assert "(100000 trials x 220 MB of kept checkpoints; replay buffers only" in err, err
    assert "and 100 GB is free there. Use a lower max_concurrent, fewer trials" in err
    free_disk(20 * 10**9)  # less than the 24.1 GB of 2 trials
    assert main([*args, "--trials", "2"]) == 2
    assert "needs up to about 24.1 GB" in capsys.readouterr().err
    assert not storage.exists() and not (tmp_path / "m.db").exists()
