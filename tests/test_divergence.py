"""A diverging trial is recognised by its non-finite losses or returns."""

from __future__ import annotations

import math

import pytest

from tune_rl.tracking import trial_metrics
from tune_rl.trainable import non_finite


def result(loss: float, episode_return: float) -> dict:
    return {"score": 1.0, "num_env_steps_sampled_lifetime": 4000,
            "env_runners": {"episode_return_mean": episode_return},
            "learners": {"default_policy": {"total_loss": loss}}}


@pytest.mark.parametrize("loss, episode_return, bad", [
    (math.nan, 1.0, "total_loss"),
    (math.inf, 1.0, "total_loss"),
    (0.5, -math.inf, "episode_return_mean"),
    (0.5, 1.0, None),
])
def test_non_finite_values_are_named(loss, episode_return, bad):
    assert non_finite(result(loss, episode_return)) == bad


def test_mlflow_keeps_the_last_good_metrics():
    """Non-finite values are not logged, so the run shows the last good ones."""
    metrics = trial_metrics(result(math.nan, 1.0))
    assert "total_loss" not in metrics and metrics["episode_return_mean"] == 1.0
