"""Sweeps on a real two-node Ray cluster on 127.0.0.1: `--address` and `submit`.

`ray start --head` (dashboard on 127.0.0.1) and a second `ray start
--address 127.0.0.1:...` node, each with 1 CPU, its own temp dir (as on two machines: the
nodes' runtime-env folders must not be one folder) and token authentication
on, as Ray 2.60 starts clusters. Where the kernel lets us, the second node
runs in its own mount namespace with a tmpfs over one folder, so that folder
is on the head's disk only, like a local folder on a real multi-host cluster.
The sweep's MLflow runs go to an `mlflow server` on loopback. The nodes are
stopped after the tests, also when they fail. (Ray itself swaps 127.0.0.1 for
the machine's own address in the node table: its traffic stays on this machine.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import free_port, precondition_unmet

BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")


def why_folders_cannot_be_hidden() -> str | None:
    """None where a process can get a mount namespace of its own; else why not."""
    try:
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return "unshare (util-linux) is not installed"
    if done.returncode:
        return f"unshare --mount refused: {done.stderr.strip() or done.returncode}"
    return None


def start_node(command: list[str], env: dict[str, str]) -> int:
    """Runs `ray start` as the leader of a new session; returns that session's id.

    Ray's daemons stay in the session (they change process group, not
    session), so it names every process of the node for the cleanup.
    """
    node = subprocess.Popen(command, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = node.communicate(timeout=180)
    if node.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out[-3000:]}")
    return node.pid


def kill_cluster(sessions: list[int], folders: list[str]) -> None:
    """Every process of the nodes' sessions, and the job drivers (Ray starts
    those in sessions of their own, in a working dir under a node's temp dir)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            ours = os.getsid(pid) in sessions or any(cwd.startswith(f) for f in folders)
            if ours:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass  # gone already, or not ours to read


@pytest.fixture(scope="module")
def ray_cluster():
    # Ray's socket paths must stay short: temp dirs of our own under /tmp.
    head_temp = tempfile.mkdtemp(prefix="trh", dir="/tmp")
    worker_temp = tempfile.mkdtemp(prefix="trw", dir="/tmp")
    head_only = tempfile.mkdtemp(prefix="tr-head-only-", dir="/tmp")
    # The job's driver runs `python` from PATH, as on a cluster whose image
    # has the project's environment active.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PATH": f"{BIN}:{os.environ['PATH']}"}
    port, dashboard = free_port(), free_port()
    cannot_hide = why_folders_cannot_be_hidden()
    hidden = cannot_hide is None
    # The second node: its own mount namespace with an empty tmpfs on `head_only`.
    isolate = (["unshare", "--mount", "--propagation", "private", "sh", "-c",
                f"mount -t tmpfs tmpfs {head_only} && exec \"$@\"", "sh"] if hidden else [])
    sessions: list[int] = []
    try:
        # Fixed default ports (the job agent's 52365, the client server's
        # 10001) would collide with the test session's own local Ray.
        sessions.append(start_node(
            [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
             "--num-cpus=1", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
             f"--dashboard-port={dashboard}", f"--temp-dir={head_temp}",
             f"--dashboard-agent-listen-port={free_port()}",
             f"--ray-client-server-port={free_port()}", "--disable-usage-stats"], env))
        sessions.append(start_node(
            [*isolate, RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1",
             "--node-ip-address=127.0.0.1", f"--temp-dir={worker_temp}",
             f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats"], env))
        yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dashboard}",
               "env": env, "head_only": head_only if hidden else None,
               "cannot_hide": cannot_hide}
    finally:
        # Only this cluster's processes: `ray stop` would also end the
        # test session's own local Ray.
        kill_cluster(sessions, [head_temp, worker_temp])
        for folder in (head_temp, worker_temp, head_only):
            shutil.rmtree(folder, ignore_errors=True)


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
    # The commit that ran, also in a job (whose copy of the project has no .git).
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                          capture_output=True, text=True, check=True).stdout.strip()
    assert parent.data.tags["git_commit"] == head


def tune_rl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tune_rl.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_sweep_with_address_runs_trials_on_both_nodes(ray_cluster, mlflow_server, tmp_path):
    done = tune_rl(*sweep_args(tmp_path, mlflow_server, "direct"),
                   "--address", ray_cluster["address"], env=ray_cluster["env"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_sweep(tmp_path, mlflow_server, "direct")


def submitted_job(stdout: str) -> str:
    line = next(line for line in stdout.splitlines() if line.startswith("Submitted job "))
    return line.split()[2]


@pytest.mark.slow
def test_submit_runs_the_sweep_as_a_ray_job(ray_cluster, mlflow_server, tmp_path):
    args = sweep_args(tmp_path, mlflow_server, "submitted")[1:]  # without "sweep"
    done = tune_rl("submit", *args, "--address", ray_cluster["dashboard"],
                   env=ray_cluster["env"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    job_id = submitted_job(done.stdout)
    assert "Sweep submitted: 2 trials of DQN" in done.stdout  # the job's logs, followed
    # Asked of the Jobs API itself, in a process of its own: Ray keeps its
    # authentication mode per process, and this one runs an unauthenticated local Ray.
    info = subprocess.run(
        [sys.executable, "-c", "import sys; from ray.job_submission import JobSubmissionClient;"
         " info = JobSubmissionClient(sys.argv[1]).get_job_info(sys.argv[2]);"
         " print(info.status.value, info.driver_exit_code)", ray_cluster["dashboard"], job_id],
        env=ray_cluster["env"], capture_output=True, text=True, timeout=120)
    assert info.stdout.split() == ["SUCCEEDED", "0"], info.stderr[-2000:]
    check_sweep(tmp_path, mlflow_server, "submitted")


@pytest.mark.slow
def test_storage_that_a_node_cannot_see_is_refused(ray_cluster, mlflow_server, tmp_path):
    if not ray_cluster["head_only"]:
        precondition_unmet("cannot give the second node a folder the head has and it lacks "
                           f"(no mount namespace: {ray_cluster['cannot_hide']})")
    storage = Path(ray_cluster["head_only"]) / "ray_results"
    args = [*sweep_args(tmp_path, mlflow_server, "unseen")[1:], "--storage-path", str(storage)]

    direct = tune_rl("sweep", *args, "--address", ray_cluster["address"],
                     env=ray_cluster["env"])
    assert direct.returncode == 2, direct.stdout[-3000:] + direct.stderr[-3000:]
    assert "is not visible from every node of this cluster" in direct.stderr
    assert direct.stderr.count("(node ") == 1, direct.stderr  # names the one blind node

    # Through a job, the driver's refusal is the job's exit status, and submit's.
    submitted = tune_rl("submit", *args, "--address", ray_cluster["dashboard"],
                        env=ray_cluster["env"])
    assert submitted.returncode == 2, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "is not visible from every node" in submitted.stdout  # the job's own log
    assert "FAILED (exit code 2)" in submitted.stderr
    assert list(storage.iterdir()) == []  # nothing recorded, no marker left behind
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("breakout-DQN")
    assert experiment is None or not client.search_runs(
        [experiment.experiment_id], "attributes.run_name = 'unseen'")


@pytest.mark.parametrize("raised, refusal", [
    (ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379"),
     "did not accept the connection: Failed to connect to Ray cluster at 10.0.0.1:6379; "
     "if the cluster uses token authentication"),
    (RuntimeError("Version mismatch: The cluster was started with:\n Ray: 2.9.0"),
     "runs other versions than this machine: Version mismatch: The cluster was started"),
])
def test_what_the_cluster_answered_is_what_the_refusal_says(raised, refusal, monkeypatch):
    import ray

    from tune_rl.cluster import connect
    from tune_rl.errors import UsageError

    def init(**kwargs):
        raise raised

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setattr(ray, "init", init)
    with pytest.raises(UsageError, match=re.escape(refusal)):
        connect("10.0.0.1:6379")


def test_a_bug_while_connecting_is_not_passed_off_as_the_clusters_answer(monkeypatch):
    import ray

    from tune_rl.cluster import connect

    def init(**kwargs):
        raise RuntimeError("Unknown keyword argument(s): logging_levle")

    monkeypatch.setattr(ray, "init", init)
    with pytest.raises(RuntimeError, match="Unknown keyword argument"):
        connect("10.0.0.1:6379")
