"""Bad input: one clear line, exit code 2, before Ray starts, nothing touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import free_port
from tune_rl.cli import main


def snapshot(root) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module", autouse=True)
def libraries_loaded():
    """Loads ALE and builds a module once, outside any case: ALE prints its
    banner on first load and RLlib logs a deprecation once per process, and
    whichever case came first would find them in its stderr (or, through a
    handler bound to an earlier case's captured stream, a logging error)."""
    from tune_rl.plan import resolve_plan
    from tune_rl.spec import load_spec

    resolve_plan(load_spec("DQN")).describe()


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "not_yaml.yaml").write_text("algo: DQN\nprofiles: {quick: [1,\n")
    (tmp_path / "typo.yaml").write_text("algo: DQN\nprofiles:\n  quick:\n    trails: 2\n")
    (tmp_path / "a_file").write_text("")
    sweep_file(tmp_path, "searched_twice", "algo: Rainbow_DQN\ntraining: {n_step: 5}")
    sweep_file(tmp_path, "env_key_typo", "algo: DQN\nenv_config: {repeat_action_prob: 0.1}")
    sweep_file(tmp_path, "sticky_above_1",
               "algo: DQN\nenv_config: {repeat_action_probability: 1.5}")
    sweep_file(tmp_path, "no_frames", "algo: DQN\nenv_config: {max_frames_per_episode: -1}")
    sweep_file(tmp_path, "cartpole_option", "algo: PPO\nenv: cartpole\nenv_config: {x: 1}")
    (tmp_path / "ray_results").mkdir()
    return tmp_path


def sweep_file(folder, name: str, head: str) -> None:
    (folder / f"{name}.yaml").write_text(f"{head}\nprofiles:\n  quick:\n    trials: 2\n")


CASES = {
    "unknown algorithm": (["--algo", "Rainbow"], "did you mean 'Rainbow_DQN'?"),
    "unknown env": (["--algo", "DQN", "--env", "pong"], "expected one of breakout, cartpole"),
    "missing sweep file": (["--spec", "{tmp}/missing.yaml"], "does not exist"),
    "not YAML": (["--spec", "{tmp}/not_yaml.yaml"], "is not valid YAML at line"),
    "unknown key": (["--spec", "{tmp}/typo.yaml"], "did you mean 'trials'?"),
    "no trials": (["--algo", "DQN", "--trials", "0"], "trials must be a positive integer"),
    "no budget": (["--algo", "DQN", "--max-env-steps", "-5"],
                  "max_env_steps must be a positive integer, got -5"),
    "unknown profile": (["--algo", "DQN", "--profile", "huge"],
                        "unknown profile 'huge': expected one of quick, full"),
    "unwritable storage": (["--algo", "DQN", "--storage-path", "{tmp}/a_file/results"],
                           "cannot be written"),
    "silent tracking server": (["--algo", "DQN", "--tracking-uri", "http://127.0.0.1:{port}"],
                               "does not answer"),
    "SQLite store for a cluster": (["--algo", "DQN", "--address", "127.0.0.1:{port}"],
                                   "is an SQLite file on this machine's disk"),
    "silent cluster address": (["--algo", "DQN", "--address", "127.0.0.1:{port}",
                                "--tracking-uri", "http://127.0.0.1:{port}"],
                               "Ray cluster at"),
    "resume of nothing": (["--algo", "DQN", "--name", "never-ran", "--resume"],
                          "there is nothing to resume"),
    "name with a path": (["--algo", "DQN", "--name", "../../escape"],
                         "name '../../escape' is not a plain sweep name: use up to 100 letters"),
    "name too long": (["--algo", "DQN", "--name", "a" * 101], "is not a plain sweep name"),
    "negative seed": (["--algo", "DQN", "--seed", "-1"],
                      "seed must be an integer in [0, 4294967295], got -1"),
    # Root may write anywhere os.access looks, yet nothing can be created here.
    "storage that cannot be created": (["--algo", "DQN", "--storage-path", "/proc/forbidden"],
                                       "storage_path '/proc/forbidden' cannot be written"),
    "store that cannot be created": (["--algo", "DQN",
                                      "--tracking-uri", "sqlite:////proc/forbidden/m.db"],
                                     "tracking_uri '/proc/forbidden' cannot be written"),
    "unknown env_config key": (["--spec", "{tmp}/env_key_typo.yaml"],
                               "unknown env_config key for breakout: 'repeat_action_prob': "
                               "expected one of repeat_action_probability, max_frames_per_episode"),
    "env_config value out of range": (["--spec", "{tmp}/sticky_above_1.yaml"],
                                      "env_config.repeat_action_probability must be a number "
                                      "in [0, 1], got 1.5"),
    "env_config value not positive": (["--spec", "{tmp}/no_frames.yaml"],
                                      "env_config.max_frames_per_episode must be a positive "
                                      "integer, got -1"),
    "env_config for an env that takes none": (["--spec", "{tmp}/cartpole_option.yaml"],
                                              "env cartpole takes no env_config"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_and_changes_nothing(case, workspace, capsys):
    args, message = CASES[case]
    args = [a.format(tmp=workspace, port=free_port()) for a in args]
    defaults = ["--storage-path", str(workspace / "ray_results"),
                "--tracking-uri", f"sqlite:///{workspace / 'mlflow.db'}"]
    before = snapshot(workspace)
    code = main(["sweep", *defaults, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("tune-rl: error: ") and err.count("\n") == 1
    assert snapshot(workspace) == before
    assert not Path("/proc/forbidden").exists()


SUBMIT_CASES = {
    "no address": ([], "submit needs the cluster's dashboard address"),
    "GCS address, not the dashboard": (["--address", "127.0.0.1:6379"],
                                       "is not the Ray dashboard's http://host:port"),
    "silent dashboard": (["--address", "http://127.0.0.1:{port}"],
                         "Ray Jobs API at 'http://127.0.0.1:"),
    "SQLite store": (["--address", "{dashboard}", "--tracking-uri", "sqlite:///m.db"],
                     "is not an MLflow server"),
    "relative storage": (["--address", "{dashboard}", "--storage-path", "ray_results"],
                         "storage_path 'ray_results' is relative"),
    "sweep file outside the project": (["--address", "{dashboard}",
                                        "--spec", "{tmp}/outside.yaml"],
                                       "is outside the project folder"),
    "unknown algorithm": (["--address", "{dashboard}", "--algo", "Rainbow"],
                          "did you mean 'Rainbow_DQN'?"),
}


@pytest.mark.parametrize("case", list(SUBMIT_CASES))
def test_bad_submit_exits_2_before_submitting(case, tmp_path, listener, capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "outside.yaml").write_text("algo: DQN\nprofiles:\n  quick:\n    trials: 2\n")
    args, message = SUBMIT_CASES[case]
    args = [a.format(tmp=tmp_path, port=free_port(), dashboard=listener) for a in args]
    defaults = ["--algo", "DQN", "--storage-path", "/mnt/sweeps",
                "--tracking-uri", "http://127.0.0.1:5000"]
    code = main(["submit", *defaults, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("tune-rl: error: ") and err.count("\n") == 1
