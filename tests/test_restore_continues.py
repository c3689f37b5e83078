"""A restored DQN-family learner continues its target network's schedule.

RLlib's DQNLearner syncs the target network once the lifetime env steps are
target_network_update_freq past its last sync, and keeps that last sync
(`last_update_ts_by_mid`) outside its state: restored from a checkpoint, it
used to hard-sync at its first update. Here a learner is checkpointed
mid-interval through RLlib's own checkpoint files (save_to_path, what an
algorithm's checkpoint holds for its learner), restored into a new one, and
its target weights are compared with the online ones after each update step.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from tune_rl.config import TrialSettings, build_config
from tune_rl.envs import ENVS
from tune_rl.presets import PRESETS

FREQ = 1000
SPACES = {"default_policy": (gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
                             gym.spaces.Discrete(2))}


def new_learner():
    settings = TrialSettings(training={"target_network_update_freq": FREQ})
    config = build_config(PRESETS["DQN"], ENVS["cartpole"], {}, settings)
    return config.build_learner(spaces=SPACES)


def step(learner, env_steps: int) -> bool:
    """An update's end at `env_steps` lifetime env steps, after the online
    network has changed (as a gradient step changes it); True if the target
    was synced to it."""
    module = learner.module["default_policy"]
    with torch.no_grad():
        for param in module.encoder.parameters():
            param.add_(0.01)
    learner.after_gradient_based_update(timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: env_steps})
    (online, target), *_ = module.get_target_network_pairs()
    pairs = zip(online.parameters(), target.parameters(), strict=True)
    return all(torch.equal(a, b) for a, b in pairs)


def test_restored_mid_interval_the_target_syncs_when_it_would_have(tmp_path):
    learner = new_learner()
    assert step(learner, 1000)  # the first sync, at 1,000 env steps
    assert not step(learner, 1500)  # mid-interval: the target stays behind
    learner.save_to_path(str(tmp_path / "learner"))

    restored = new_learner()
    restored.restore_from_path(str(tmp_path / "learner"))
    # Without the restore the next sync is at 2,000: not at 1,600 (RLlib's
    # own learner would hard-sync here, its clock back at 0) ...
    assert not step(restored, 1600)
    assert not step(restored, 1999)
    # ... but at 2,000, as the learner that was never restored does.
    assert step(restored, 2000)
    assert step(learner, 2000)


def target_weights(trial) -> list[torch.Tensor]:
    module = trial.learner_group._learner.module["default_policy"]
    return [p.detach().clone() for _, target in module.get_target_network_pairs()
            for p in target.parameters()]


@pytest.mark.slow
def test_a_restored_breakout_trial_keeps_its_target_and_score_window(local_ray, tmp_path):
    """A trial as Tune runs it (make_trainable), checkpointed and restored
    between two target syncs: learning from 100 env steps, a sync at the
    first update at least 150 env steps past the last (the first near 152).
    The window of the last 100 games, behind the `score` ASHA and Optuna
    compare, comes back too."""
    from tune_rl.trainable import make_trainable

    settings = TrialSettings(rollout_fragment_length=4, min_env_steps_per_iteration=100,
                             max_env_steps=1000,
                             # Games of 50 agent steps: some end in each iteration.
                             env_config={"max_frames_per_episode": 200},
                             training={"num_steps_sampled_before_learning_starts": 100,
                                       "target_network_update_freq": 150})
    trial_class = make_trainable(PRESETS["DQN"], ENVS["breakout"], settings, torch_threads=1)
    trial = trial_class(config={})
    for _ in range(2):  # 200 env steps: synced once, at 152
        trial.train()
    synced_at = trial.learner_group._learner.last_update_ts_by_mid["default_policy"]
    assert 150 <= synced_at < 200
    saved = trial.save(str(tmp_path / "checkpoint"))
    target = target_weights(trial)
    scores = list(trial._recent_scores)  # the last 100 games' window behind `score`
    assert scores
    trial.stop()

    restored = trial_class(config={})
    restored.restore(saved)
    assert list(restored._recent_scores) == scores
    assert restored.learner_group._learner.last_update_ts_by_mid["default_policy"] == synced_at
    restored.train()  # to 300 env steps: the next sync is due at synced_at + 150 > 300
    assert all(torch.equal(a, b) for a, b in zip(target_weights(restored), target, strict=True))
    restored.stop()
