"""Bad input: one clear line, exit code 2, before Ray starts, nothing touched."""

from __future__ import annotations

import pytest

from conftest import free_port
from tune_rl.cli import main


def snapshot(root) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*"))}


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "not_yaml.yaml").write_text("algo: DQN\nprofiles: {quick: [1,\n")
    (tmp_path / "typo.yaml").write_text("algo: DQN\nprofiles:\n  quick:\n    trails: 2\n")
    (tmp_path / "a_file").write_text("")
    (tmp_path / "ray_results").mkdir()
    return tmp_path


CASES = {
    "unknown algorithm": (["--algo", "Rainbow"], "did you mean 'Rainbow_DQN'?"),
    "unknown env": (["--algo", "DQN", "--env", "pong"], "expected one of breakout, cartpole"),
    "missing sweep file": (["--spec", "{tmp}/missing.yaml"], "does not exist"),
    "not YAML": (["--spec", "{tmp}/not_yaml.yaml"], "is not valid YAML at line"),
    "unknown key": (["--spec", "{tmp}/typo.yaml"], "did you mean 'trials'?"),
    "no trials": (["--algo", "DQN", "--trials", "0"], "trials must be a positive integer"),
    "no budget": (["--algo", "DQN", "--max-env-steps", "0"], "max_env_steps must be a positive"),
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
