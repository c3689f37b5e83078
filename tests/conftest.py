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
