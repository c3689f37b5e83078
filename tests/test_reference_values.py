"""The DQN presets hold their reference's values, checked against what RLlib builds.

Every value the notebook did not set (tests/notebook_presets.py) is compared
with Dopamine's (tests/dopamine_reference.py) on the built config, the
learner's optimizer and the module's epsilon schedule, not on presets.py's
dicts. The stated departures are the noisy presets' epsilon 0 (Hessel et
al. 2018) and tune-rl's greedy evaluation (presets.py).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.dqn.dqn import calculate_rr_weights

from dopamine_reference import GIN, linearly_decaying_epsilon
from notebook_presets import NOTEBOOK
from tune_rl.config import TrialSettings, build_config
from tune_rl.envs import ENVS
from tune_rl.presets import PRESETS

SPACES = {"default_policy": (gym.spaces.Box(0, 255, (84, 84, 4), np.uint8),
                             gym.spaces.Discrete(4))}
NOISY = {"Noisy_DQN", "Rainbow_DQN"}


def unset(name: str, key: str) -> bool:
    """The notebook left `key` to the reference."""
    return key not in NOTEBOOK[name][1]


@pytest.fixture(scope="module", params=list(GIN))
def built(request):
    name = request.param
    # The sweeps' sampling shape: 8 envs, fragments of 4 (sweeps/*.yaml).
    settings = TrialSettings(envs_per_env_runner=8, rollout_fragment_length=4)
    config = build_config(PRESETS[name], ENVS["breakout"], {}, settings)
    return name, config, config.build_learner(spaces=SPACES)


def test_optimizer_learning_rate_and_adam_epsilon(built):
    name, config, learner = built
    reference = GIN[name]
    group = learner.get_optimizer().param_groups[0]
    if unset(name, "lr"):
        assert config.lr == reference["learning_rate"]
        assert group["lr"] == pytest.approx(reference["learning_rate"])
    if unset(name, "adam_epsilon"):
        assert group["eps"] == reference["adam_eps"]
    else:  # Rainbow: the notebook's 1e-8 stays, and reaches Adam
        assert group["eps"] == NOTEBOOK[name][1]["adam_epsilon"]


def norm_after_postprocessing(learner, norm: float) -> float:
    """Gradients of global norm `norm` through the learner's own
    postprocessing (clipping), and the global norm of what comes out."""
    module_id = "default_policy"
    params = learner.get_optimizer().param_groups[0]["params"]  # the online network's
    scale = norm / sum(p.numel() for p in params) ** 0.5
    grads = {learner.get_param_ref(p): torch.full_like(p, scale) for p in params}
    out = learner.postprocess_gradients_for_module(
        module_id=module_id, config=learner.config.get_config_for_module(module_id),
        module_gradients_dict=grads)
    assert len(out) == len(grads)  # none dropped
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in out.values())))


def test_gradients_are_clipped_only_where_the_notebook_said(built):
    """Unchanged at a norm of 50, as Dopamine leaves them, where RLlib's
    default would clip at 40; clipped at the notebook's 40 for Rainbow."""
    name, config, learner = built
    if unset(name, "grad_clip"):
        assert not GIN[name]["clips_gradients"] and config.grad_clip is None
        assert norm_after_postprocessing(learner, 50.0) == pytest.approx(50.0, rel=1e-3)
    else:
        assert config.grad_clip == NOTEBOOK[name][1]["grad_clip"] == 40
        assert norm_after_postprocessing(learner, 50.0) == pytest.approx(40.0, rel=1e-3)
        assert norm_after_postprocessing(learner, 30.0) == pytest.approx(30.0, rel=1e-3)


def test_one_update_of_a_batch_per_update_period_env_steps(built):
    name, config, _ = built
    reference = GIN[name]
    assert config.total_train_batch_size == reference["batch_size"]
    store, train = calculate_rr_weights(config)
    sampled = store * config.get_rollout_fragment_length() * config.num_envs_per_env_runner
    assert sampled / train == reference["update_period"]
    assert config.gamma == reference["gamma"]


def test_target_period_and_learning_start(built):
    name, config, _ = built
    reference = GIN[name]
    if unset(name, "target_network_update_freq"):
        assert config.target_network_update_freq == reference["target_update_period"]
        assert config.tau == 1.0  # copied whole, as Dopamine's _sync_weights
    if unset(name, "num_steps_sampled_before_learning_starts"):
        assert (config.num_steps_sampled_before_learning_starts
                == reference["min_replay_history"])


def test_exploration_epsilon_follows_dopamines_schedule(built):
    """Held at 1 until learning starts, then linear to 0.01 (Dopamine's
    linearly_decaying_epsilon), read off the module's own schedule."""
    name, config, learner = built
    schedule = learner.module["default_policy"].epsilon_schedule
    reference = GIN[name]
    for step in (0, 10_000, 19_999, 20_000, 100_000, 145_000, 269_999, 270_000, 1_000_000):
        schedule.update(step)
        epsilon = float(schedule.get_current_value())
        if name in NOISY:  # Hessel et al. 2018: the noise explores
            assert epsilon == 0.0
        else:
            expected = linearly_decaying_epsilon(
                reference["epsilon_decay_period"], step, reference["min_replay_history"],
                reference["epsilon_train"])
            assert epsilon == pytest.approx(expected, abs=1e-6), step
