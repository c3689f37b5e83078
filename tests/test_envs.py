"""The real ALE Breakout, preprocessed as DeepMind did."""

from __future__ import annotations

import numpy as np
import pytest

from tune_rl.envs import SCORE_KEY, get_env, make_breakout
from tune_rl.errors import UsageError


def play(env, steps: int, seed: int = 0):
    env.reset(seed=seed)
    env.action_space.seed(seed)
    rewards, infos = [], []
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            break
    return obs, rewards, infos


def test_single_frames_for_connector_stacking():
    env = make_breakout({})
    obs, _ = env.reset(seed=0)
    assert obs.shape == (84, 84, 1) and obs.dtype == np.float32
    assert 0.0 <= obs.min() and obs.max() <= 1.0
    assert env.unwrapped.get_action_meanings()[1] == "FIRE"


def test_stacked_frames_for_dqn_are_uint8_and_shift_by_one_frame():
    """uint8 frames: a stack is 28 KB (float32: 113 KB), a frame 7 KB (replay.py)."""
    env = make_breakout({"stack_frames_in_env": True})
    obs, _ = env.reset(seed=0)
    next_obs, *_ = env.step(0)
    assert obs.shape == (84, 84, 4) and obs.dtype == np.uint8 and obs.nbytes == 28224
    assert env.observation_space.contains(next_obs)
    assert np.array_equal(next_obs[..., :3], obs[..., 1:])


def test_rewards_are_clipped_while_the_real_score_is_kept():
    env = make_breakout({"repeat_action_probability": 0.0})
    _, rewards, infos = play(env, 3000, seed=3)
    assert set(rewards) <= {0.0, 1.0}
    assert infos[-1][SCORE_KEY] >= sum(rewards) > 0
    assert infos[-1]["lives"] == 0  # a whole game, not one life


def test_env_names_are_validated():
    with pytest.raises(UsageError, match="expected one of breakout, cartpole"):
        get_env("pong")


@pytest.mark.parametrize("seed", [8, 16])
def test_a_policy_that_never_fires_still_plays_every_game_to_its_end(seed):
    # Seeds on which one FIRE after a lost life left the ball unserved: the
    # game idled until its frame cap (the whole cap of an evaluation's time).
    env = make_breakout({"max_frames_per_episode": 4000})
    env.reset(seed=seed)
    terminated = truncated = False
    while not (terminated or truncated):
        _, _, terminated, truncated, info = env.step(0)  # NOOP, never FIRE
    env.close()
    assert terminated and not truncated and info["lives"] == 0


def frames_at_start(env_config: dict, seed: int) -> int:
    env = make_breakout(env_config)
    env.reset(seed=seed)
    return env.unwrapped.ale.getEpisodeFrameNumber()


def test_the_protocol_has_no_noop_starts_unless_a_sweep_asks_for_them():
    # Machado et al. (2018) / Dopamine: a game starts with the agent's (or
    # the serve's) first step, 4 frames; sticky actions make games differ.
    # CleanRL's protocol (the PPO reference) adds up to 30 random no-ops.
    assert {frames_at_start({}, seed) for seed in range(6)} == {4}
    with_noops = {frames_at_start({"noop_max": 30}, seed) for seed in range(6)}
    assert len(with_noops) > 1 and all(4 < f <= 4 + 30 for f in with_noops)  # 1 frame each
    with pytest.raises(UsageError, match="noop_max must be an integer from 0 to 30"):
        get_env("breakout").check_config({"noop_max": 31})
