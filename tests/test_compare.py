"""`tune-rl compare` (`make sweep ALGO=all`): one sweep per algorithm at the
same budget, then a leaderboard; a broken algorithm is a row, not a crash,
and `--resume` reads what finished and runs the rest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tune_rl.cli import main
from tune_rl.presets import PRESETS


def compare(tmp_path: Path, *extra: str) -> int:
    return main(["compare", "--env", "cartpole", "--trials", "1", "--max-env-steps", "500",
                 "--storage-path", str(tmp_path / "r"),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *extra])


@pytest.mark.slow
def test_all_ten_algorithms_end_in_a_ten_row_leaderboard(local_ray, tmp_path, capsys):
    assert compare(tmp_path, "--algos", "all", "--name", "all") == 0
    out = capsys.readouterr().out
    board = json.loads((tmp_path / "r" / "all" / "leaderboard.json").read_text())
    assert len(board["rows"]) == 10
    assert {r["algo"] for r in board["rows"]} == set(PRESETS)
    assert all(r["status"] == "OK" and r["env_steps"] >= 500 for r in board["rows"]), board
    scores = [r["best_score"] for r in board["rows"]]
    assert scores == sorted(scores, reverse=True)  # ranked by the best trial's score
    assert [r["rank"] for r in board["rows"]] == list(range(1, 11))
    assert "Leaderboard all: cartpole" in out and all(a in out for a in PRESETS)
    png = (tmp_path / "r" / "all" / "leaderboard.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("cartpole-leaderboard")
    (run,) = client.search_runs([experiment.experiment_id])
    assert {f"best_score.{a}" for a in PRESETS} == set(run.data.metrics)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "leaderboard.md", "leaderboard.csv", "leaderboard.png"}


@pytest.mark.slow
def test_a_broken_sweep_is_a_row_and_resume_runs_only_what_did_not_finish(
        local_ray, tmp_path, capsys):
    # DQN's sweep folder holds a damaged Tune state (say, a disk that filled
    # up): compare resumes it, Tune cannot, and that is DQN's row.
    broken = tmp_path / "r" / "two-DQN"
    broken.mkdir(parents=True)
    (broken / "tuner.pkl").write_bytes(b"not a pickle")
    assert compare(tmp_path, "--algos", "PPO,DQN", "--name", "two") == 0
    rows = {r["algo"]: r for r in
            json.loads((tmp_path / "r" / "two" / "leaderboard.json").read_text())["rows"]}
    assert rows["PPO"]["status"] == "OK" and rows["PPO"]["rank"] == 1
    assert rows["DQN"]["status"] == "ERROR" and rows["DQN"]["error"]
    assert "Errors:" in capsys.readouterr().out

    # Without --resume, the name is taken; with it, PPO is read, DQN tried again.
    assert compare(tmp_path, "--algos", "PPO,DQN", "--name", "two") == 2
    ppo_summary = tmp_path / "r" / "two-PPO" / "summary.json"
    written = ppo_summary.stat().st_mtime_ns
    shutil.rmtree(broken)
    assert compare(tmp_path, "--algos", "PPO,DQN", "--name", "two", "--resume") == 0
    rows = {r["algo"]: r for r in
            json.loads((tmp_path / "r" / "two" / "leaderboard.json").read_text())["rows"]}
    assert rows["DQN"]["status"] == "OK" and rows["PPO"]["status"] == "OK"
    assert ppo_summary.stat().st_mtime_ns == written  # read, not run again


def test_unknown_algorithms_are_refused_before_anything_runs(tmp_path, capsys):
    assert compare(tmp_path, "--algos", "PPO,Rainbow") == 2
    assert "unknown algorithm Rainbow" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
