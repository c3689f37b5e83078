"""The command line as a user meets it: plans, listings and clear refusals."""

from __future__ import annotations

import json
import subprocess
import sys

from tune_rl.presets import PRESETS


def tune_rl(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tune_rl.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_dry_run_prints_the_plan_and_starts_no_ray(tmp_path):
    # Run in a fresh interpreter so that "no Ray" means this command started none.
    code = (
        "import sys, ray; from tune_rl.cli import main; "
        f"rc = main(['sweep', '--algo', 'Rainbow_DQN', '--dry-run', '--storage-path', "
        f"'{tmp_path / 'results'}', '--tracking-uri', 'sqlite:///{tmp_path / 'm.db'}']); "
        "assert not ray.is_initialized(), 'dry run started Ray'; sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["algorithm"] == "Rainbow_DQN (RLlib DQN)"
    assert plan["preset"]["n_step"] == 3
    assert set(plan["space"]) >= {"n_step", "num_atoms", "sigma0", "conv_filters"}
    assert "ASHA" in plan["scheduler"] and "Optuna" in plan["search"]
    assert not (tmp_path / "results").exists() and not (tmp_path / "m.db").exists()


def test_unknown_algorithm_lists_the_ten_and_suggests_the_closest():
    done = tune_rl("sweep", "--algo", "Rainbow", "--dry-run")
    assert done.returncode == 2
    assert "unknown algorithm 'Rainbow'" in done.stderr
    assert all(name in done.stderr for name in PRESETS)
    assert "did you mean 'Rainbow_DQN'?" in done.stderr


def test_list_shows_every_algorithm_its_space_and_sweep_file():
    done = tune_rl("list")
    assert done.returncode == 0
    for name in PRESETS:
        assert f"{name}  (RLlib" in done.stdout
        assert f"sweeps/{name.lower()}.yaml" in done.stdout
    assert "num_atoms" in done.stdout and "conv_filters" in done.stdout


def test_ui_links_before_any_sweep_say_so_and_create_no_store(tmp_path, capsys):
    from tune_rl.cli import main

    assert main(["ui-links", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]) == 0
    assert "No sweeps in sqlite:///" in capsys.readouterr().out
    assert not (tmp_path / "mlflow.db").exists()


def test_a_submitted_sweep_carries_its_commit_to_the_job(listener, capsys, monkeypatch):
    """Ray ships the project without .git: the job's MLflow tag comes from here."""
    from tune_rl.cli import main
    from tune_rl.spec import PROJECT_ROOT, load_spec
    from tune_rl.tracking import GIT_COMMIT_ENV, sweep_tags

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert main(["submit", "--algo", "DQN", "--address", listener, "--dry-run",
                 "--storage-path", "/mnt/sweeps",
                 "--tracking-uri", "http://127.0.0.1:5000"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["runtime_env"]["env_vars"][GIT_COMMIT_ENV] == head
    # The job's driver, in a copy of the project without .git, tags that commit.
    monkeypatch.setenv(GIT_COMMIT_ENV, "0123abc")
    assert sweep_tags(load_spec("DQN"))["git_commit"] == "0123abc"


def test_a_training_value_pins_a_searched_parameter(tmp_path):
    (tmp_path / "pinned.yaml").write_text(
        "algo: Rainbow_DQN\ntraining: {n_step: 2}\nprofiles:\n  quick: {trials: 2}\n")
    done = tune_rl("sweep", "--spec", str(tmp_path / "pinned.yaml"), "--dry-run",
                   "--storage-path", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert "n_step" not in plan["space"] and "num_atoms" in plan["space"]
    assert plan["pinned"] == {"n_step": "2 (training.n_step), not searched"}


def test_cartpole_gets_its_own_space_and_profile(tmp_path):
    done = tune_rl("sweep", "--algo", "PPO", "--env", "cartpole", "--dry-run",
                   "--storage-path", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["space_from"] == "search_spaces/ppo.py SPACES['cartpole']"
    assert plan["profile_from"] == "ppo.yaml envs.cartpole.quick"
    assert {"gamma", "lambda_", "train_batch_size_per_learner", "fcnet"} <= set(plan["space"])
    assert "conv_filters" not in plan["space"]
    breakout = json.loads(tune_rl("sweep", "--algo", "PPO", "--dry-run", "--storage-path",
                                  str(tmp_path / "r")).stdout)
    assert breakout["profile_from"] == "ppo.yaml profiles.quick"
    assert "conv_filters" in breakout["space"] and "gamma" not in breakout["space"]


def test_search_pbt_from_the_command_line_replaces_asha(tmp_path):
    done = tune_rl("sweep", "--algo", "PPO", "--env", "cartpole", "--search", "pbt",
                   "--dry-run", "--storage-path", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["scheduler"].startswith("Population Based Training")
    assert "no ASHA" in plan["scheduler"] and "lr loguniform" in plan["scheduler"]
