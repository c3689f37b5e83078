"""`score` is the real game score over the last 100 games, across iterations.

RLlib's own per-iteration means are NaN when no game ends in an iteration;
a good Breakout game outlasts a short iteration, so a sweep that read them
would score (and, watching returns for divergence, stop) its best trials.
"""

from __future__ import annotations

import math

import pytest

from tune_rl.config import TrialSettings
from tune_rl.envs import ENVS, SCORE_KEY
from tune_rl.presets import PRESETS
from tune_rl.trainable import DIVERGED, GAMES_ENDED, SCORE, make_trainable


@pytest.mark.slow
def test_ppo_breakout_short_iterations_carry_the_score_and_never_diverge(local_ray):
    settings = TrialSettings(min_env_steps_per_iteration=64,
                             training={"train_batch_size": 64, "minibatch_size": 32,
                                       "num_epochs": 1})
    trial = make_trainable(PRESETS["PPO"], ENVS["breakout"], settings, torch_threads=1)(
        config={})
    try:
        games: list[tuple[int, float]] = []  # (games ended, their mean) per iteration
        results = []
        for _ in range(12):
            result = trial.train()
            results.append(result)
            ended = result["env_runners"][GAMES_ENDED]
            games.append((ended, result["env_runners"].get(SCORE_KEY, math.nan)))
        assert not any(DIVERGED in r for r in results)
        assert not any(r.get("done") for r in results)
        total = count = 0.0
        quiet_after_first_game = 0
        for (ended, mean), result in zip(games, results, strict=True):
            if ended:
                total, count = total + ended * mean, count + ended
            else:
                quiet_after_first_game += count > 0
            if count == 0:
                assert math.isnan(result[SCORE])
            else:  # the mean of every game so far (fewer than 100 here)
                assert result[SCORE] == pytest.approx(total / count)
        assert count >= 2, "no two games ended: the budget is too small to test anything"
        assert quiet_after_first_game >= 1, "every iteration ended a game: nothing carried"
    finally:
        trial.stop()


def test_a_cartpole_game_sampled_in_many_chunks_is_scored_whole():
    """RLlib hands ScoreCallback only the last chunk of a game; the score
    comes from the env's running total (KeepScore), not that chunk's return.
    With 4-step fragments every CartPole game spans several chunks: a game
    lasts at least 8 steps (a reward of 1 each), a chunk returns at most 4."""
    from tune_rl.config import build_config

    ENVS["cartpole"].register()
    settings = TrialSettings(rollout_fragment_length=4, min_env_steps_per_iteration=400,
                             training={"num_steps_sampled_before_learning_starts": 10**6})
    algo = build_config(PRESETS["DQN"], ENVS["cartpole"], {}, settings).build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    scores = result["env_runners"][SCORE_KEY]
    lengths_mean = result["env_runners"]["episode_len_mean"]
    assert len(scores) >= 5 and min(scores) >= 8, scores
    # Each game's score is its length (a reward of 1 per step).
    assert sum(scores) / len(scores) == pytest.approx(lengths_mean, rel=0.5)
