"""Shared fixtures. Sweeps run on one real local Ray, started once per session."""

from __future__ import annotations

import os

import pytest

# Tune's new output engine ignores our progress reporter; set before Ray loads.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


@pytest.fixture(scope="session")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture
def sweep_dirs(tmp_path):
    """Results folder and SQLite MLflow store inside the test's tmp folder."""
    storage = tmp_path / "ray_results"
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return {"storage_path": str(storage), "tracking_uri": tracking_uri}


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """One results folder and MLflow store for a module's sweeps: creating an
    SQLite store runs MLflow's migrations, seconds each time."""
    root = tmp_path_factory.mktemp("store")
    return {"storage_path": str(root / "ray_results"),
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}"}


def precondition_unmet(reason: str) -> None:
    """Skips a test whose precondition this machine cannot meet; under CI
    (CI=true, as .ci/run and CI services set it) fails with the reason: a test
    the README cites must run in CI, not vanish into a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"precondition not met in CI: {reason}")
    pytest.skip(reason)


def saved_study(sweep_folder):
    """The Optuna study of the searcher state Tune saved last in a sweep's
    folder (searcher-state-<session>.pkl): what --resume restores."""
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch()
    searcher.restore_from_dir(str(sweep_folder))
    return searcher._ot_study  # OptunaSearch keeps it there; there is no public accessor


def assert_study_holds(study, trials: list[dict]) -> None:
    """The study finished exactly the summary's trials, each with its params
    and its selected score at its last report (what OptunaSearch is told when
    a trial ends)."""
    import json

    import optuna

    def key(params: dict) -> str:
        return json.dumps(params, sort_keys=True)

    done = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
    studied = {key(t.params): t.value for t in done}
    assert len(studied) == len(done) == len(trials), done
    assert studied == pytest.approx({key(t["params"]): t["selected_score"] for t in trials})


def wait_until_answers(url: str, server, log_path) -> None:
    """Until `url` answers HTTP; bounded by attempts, and by the server dying."""
    import time
    import urllib.request

    for _ in range(600):
        if server.poll() is not None:
            raise RuntimeError(log_path.read_text()[-3000:])
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def listener():
    """Something answering on loopback, standing in for a dashboard address
    that passes submit's connection check (no request is ever sent to it)."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1: SQLite backend, local artifact folder."""
    import subprocess
    import sys
    from pathlib import Path

    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    log = open(root / "server.log", "w")
    server = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/health", server, root / "server.log")
        yield url
    finally:
        # `mlflow server` runs uvicorn as a child: end the whole group.
        import os
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
