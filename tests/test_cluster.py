"""Sweeps on a real two-node Ray cluster on 127.0.0.1 (`--address`).

`ray start --head` (dashboard on 127.0.0.1) and a second `ray start
--address` node, each with 1 CPU and token authentication on, as Ray 2.60
starts clusters. The sweep's MLflow runs go to an `mlflow server` on
loopback. The nodes are stopped after the tests, also when they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import free_port

RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def ray_cluster():
    # Ray's socket paths must stay short: a temp dir of our own under /tmp.
    temp = tempfile.mkdtemp(prefix="trc", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    port, dashboard = free_port(), free_port()
    try:
        subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1",
                        f"--port={port}", "--num-cpus=1", "--include-dashboard=true",
                        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                        f"--temp-dir={temp}", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True, timeout=180)
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1",
                        "--node-ip-address=127.0.0.1", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True, timeout=180)
        yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dashboard}",
               "env": env}
    finally:
        # Only this cluster's processes: `ray stop` would also end the
        # test session's own local Ray.
        found = subprocess.run(["pgrep", "-f", temp], capture_output=True, text=True)
        for pid in found.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp, ignore_errors=True)


def sweep_args(tmp_path: Path, tracking_uri: str, name: str) -> list[str]:
    return ["sweep", "--algo", "DQN", "--env", "breakout", "--trials", "2",
            "--max-env-steps", "300", "--max-concurrent", "2", "--name", name,
            "--storage-path", str(tmp_path / "ray_results"), "--tracking-uri", tracking_uri]


def check_sweep(tmp_path: Path, tracking_uri: str, name: str) -> None:
    summary = json.loads((tmp_path / "ray_results" / name / "summary.json").read_text())
    assert summary["succeeded"] == 2
    assert len({t["node_id"] for t in summary["trials"]}) == 2  # one trial per node
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("breakout-DQN").experiment_id
    parent = client.search_runs([experiment], f"attributes.run_name = '{name}'")[0]
    children = client.search_runs([experiment],
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert parent.info.status == "FINISHED" and len(children) == 2


@pytest.mark.slow
def test_sweep_with_address_runs_trials_on_both_nodes(ray_cluster, mlflow_server, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tune_rl.cli", *sweep_args(tmp_path, mlflow_server, "direct"),
         "--address", ray_cluster["address"]],
        env=ray_cluster["env"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_sweep(tmp_path, mlflow_server, "direct")
