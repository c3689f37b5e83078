"""A diverging trial is recognised by its non-finite losses, gradients or weights.

Never by a missing episode: RLlib's episode means are NaN in every iteration
in which no game ended, which is normal (test_score.py runs it for real).
"""

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
    (0.5, math.nan, None),
    (0.5, 1.0, None),
])
def test_non_finite_values_are_named(loss, episode_return, bad):
    assert non_finite(result(loss, episode_return)) == bad


def test_mlflow_keeps_the_last_good_metrics():
    """Non-finite values are not logged, so the run shows the last good ones."""
    metrics = trial_metrics(result(math.nan, 1.0))
    assert "total_loss" not in metrics and metrics["episode_return_mean"] == 1.0


def test_non_finite_gradients_and_weights_are_named():
    import torch

    from tune_rl.trainable import non_finite_weights

    grads = result(0.5, 1.0)
    grads["learners"]["default_policy"]["gradients_default_optimizer_global_norm"] = math.inf
    assert non_finite(grads) == "gradients_default_optimizer_global_norm"
    layer = torch.nn.Linear(2, 2)
    assert non_finite_weights(layer) is None
    with torch.no_grad():
        layer.bias[0] = math.nan
    assert non_finite_weights(layer) == "weights bias"
