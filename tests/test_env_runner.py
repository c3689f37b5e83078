"""The DQN family samples Breakout through VectorEnvRunner and learns from it.

Real RLlib, real ALE Breakout, tiny budgets: games are cut at 200 frames
(50 agent steps) so that several end within a few hundred env steps.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from tune_rl.config import TrialSettings, build_config
from tune_rl.env_runner import VectorEnvRunner
from tune_rl.envs import ENVS, SCORE_KEY
from tune_rl.presets import PRESETS

SHORT_GAMES = {"max_frames_per_episode": 200}


def settings(**overrides) -> TrialSettings:
    values = dict(rollout_fragment_length=4, envs_per_env_runner=4,
                  min_env_steps_per_iteration=128, max_env_steps=512,
                  env_config=SHORT_GAMES,
                  training={"num_steps_sampled_before_learning_starts": 64})
    return TrialSettings(**{**values, **overrides})


def weights(algo) -> torch.Tensor:
    module = algo.learner_group._learner.module["default_policy"]
    return torch.cat([p.detach().flatten() for p in module.parameters()])


@pytest.mark.slow
@pytest.mark.parametrize("name, env_runners", [("DQN", 0), ("Rainbow_DQN", 0), ("DQN", 1)])
def test_dqn_family_trains_on_episodes_the_vector_runner_samples(local_ray, name, env_runners):
    ENVS["breakout"].register()
    algo = build_config(PRESETS[name], ENVS["breakout"], {},
                        settings(env_runners=env_runners)).build_algo()
    try:
        runners = algo.env_runner_group.foreach_env_runner(
            lambda runner: type(runner).__name__, local_env_runner=env_runners == 0)
        assert runners == ["VectorEnvRunner"] * max(env_runners, 1)
        before = weights(algo)
        results = [algo.train() for _ in range(3)]
        sampled = results[-1]["env_runners"]
        assert results[-1]["num_env_steps_sampled_lifetime"] >= 3 * 128
        scores = [s for r in results for s in r["env_runners"].get(SCORE_KEY, [])]
        assert scores and all(s >= 0 for s in scores)  # one real score per game
        # Every game is cut at 200 frames: 50 agent steps, plus FIRE steps'
        # frames (after a lost life) counting towards the cap.
        assert 10 <= sampled["episode_len_mean"] <= 50
        assert math.isfinite(sampled["episode_return_mean"])
        learner = results[-1]["learners"]["default_policy"]
        assert learner["num_module_steps_trained"] > 0 and math.isfinite(learner["qf_loss"])
        assert not torch.equal(before, weights(algo)), "no weight changed"
        # The chunks of each game were joined in the buffer: consecutive
        # observations are the same frames shifted by one.
        buffer = algo.local_replay_buffer
        assert buffer.get_num_timesteps() == results[-1]["num_env_steps_sampled_lifetime"]
        for episode in buffer.episodes:
            episode.validate()
            # The frame buffer keeps keys; its stacks are rebuilt from frames.
            obs = np.asarray([buffer.stack(key) for key in episode.get_observations()])
            assert obs.dtype == np.uint8 and obs.shape[1:] == (84, 84, 4)
            assert np.array_equal(obs[1:, ..., :3], obs[:-1, ..., 1:])
            infos = episode.get_infos()
            assert all(SCORE_KEY in info and "lives" in info for info in infos)
        assert sum(e.is_done for e in buffer.episodes) >= 4
    finally:
        algo.stop()


def runner_class(name: str = "DQN", env: str = "breakout", **overrides):
    config = build_config(PRESETS[name], ENVS[env], {}, settings(**overrides))
    return config.env_runner_cls or SingleAgentEnvRunner


def test_rllibs_runner_stays_where_the_vector_runner_does_not_play_the_setting():
    assert runner_class() is VectorEnvRunner
    assert runner_class("Rainbow_DQN") is VectorEnvRunner
    assert runner_class(env_config={"noop_max": 30}) is SingleAgentEnvRunner
    assert runner_class(env_config={"terminal_on_life_loss": True}) is SingleAgentEnvRunner
    assert runner_class(vector_env_runner=False) is SingleAgentEnvRunner
    assert runner_class("PPO", training={}) is SingleAgentEnvRunner
    assert runner_class(env="cartpole", env_config={}) is SingleAgentEnvRunner


@pytest.mark.slow
def test_episode_ids_continue_across_samples_and_epsilon_follows_rllibs_timestep(local_ray):
    ENVS["breakout"].register()
    algo = build_config(PRESETS["DQN"], ENVS["breakout"], {}, settings()).build_algo()
    try:
        runner = algo.env_runner
        first = runner.sample(num_timesteps=8, explore=True)
        second = runner.sample(num_timesteps=8, explore=True)
        assert len(first) == len(second) == 4  # one chunk per env
        for a, b in zip(first, second, strict=True):
            assert a.id_ == b.id_ and len(a) == len(b) == 2 and b.t_started == a.t_started + 2
            assert np.array_equal(a.get_observations(-1), b.get_observations(0))
        # Epsilon: RLlib's timestep from the lifetime env steps, as its runner passes it.
        runner.num_env_steps_sampled_lifetime = 10**7
        runner.sample(num_timesteps=4, explore=True)
        assert runner.module.epsilon_schedule.get_current_value() == pytest.approx(0.01)
        # Whole games on request (RLlib's num_episodes), greedy.
        games = runner.sample(num_episodes=2, explore=False)
        assert len(games) == 2 and all(g.is_done for g in games)
        assert all(g.get_infos(-1)[SCORE_KEY] >= g.get_return() for g in games)
    finally:
        algo.stop()


def test_the_replay_buffers_copy_of_a_chunk_is_independent_of_the_runners():
    """RLlib's buffer deep-copies each chunk, then appends later chunks to its copy."""
    import copy

    import gymnasium as gym

    from tune_rl.env_runner import RunnerEpisode

    spaces = dict(observation_space=gym.spaces.Box(0, 255, (84, 84, 4), np.uint8),
                  action_space=gym.spaces.Discrete(4))
    frames = [np.full((84, 84, 4), i, np.uint8) for i in range(5)]
    infos = [{"lives": 5, SCORE_KEY: float(i)} for i in range(5)]
    chunk = RunnerEpisode("game", observations=frames, infos=infos, actions=[0, 1, 2, 3],
                          rewards=[0.0, 1.0, 0.0, 0.0], len_lookback_buffer=0,
                          extra_model_outputs={"weights_seq_no": [0] * 4}, **spaces)
    stored = copy.deepcopy(chunk)
    stored.validate()
    assert stored.observation_space is chunk.observation_space  # shared, never changed
    stored.concat_episode(RunnerEpisode(
        "game", observations=[frames[-1], frames[0]], infos=[infos[-1], infos[0]],
        actions=[1], rewards=[1.0], t_started=4, len_lookback_buffer=0,
        extra_model_outputs={"weights_seq_no": [1]}, **spaces))
    stored.get_infos(0)[SCORE_KEY] = -1.0
    assert len(stored) == 5 and stored.get_return() == 2.0
    assert len(chunk) == 4 and chunk.get_return() == 1.0 and infos[0][SCORE_KEY] == 0.0
    chunk.validate()


@pytest.mark.slow
def test_a_dqn_sweep_sampled_by_the_vector_runner_is_scored_and_its_checkpoint_plays(
        local_ray, tmp_path, capsys):
    """What a user runs: `tune-rl sweep` (evaluation at the end) and
    `tune-rl evaluate` of the best checkpoint, which plays its own games."""
    from tune_rl.cli import main
    from tune_rl.plan import plan_sweep
    from tune_rl.runner import run_sweep
    from tune_rl.spec import load_spec

    # 8 envs (the DQN profiles'): 64 agent steps each, past the 50 a game lasts.
    spec = load_spec("DQN", env="breakout", trials=1, max_env_steps=512,
                     min_env_steps_per_iteration=256, evaluation=False, eval_episodes=1,
                     env_config=SHORT_GAMES, name="tiny-vector-runner",
                     storage_path=str(tmp_path / "ray_results"),
                     tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    summary = run_sweep(plan_sweep(spec))
    assert summary["succeeded"] == 1 and summary["failed"] == 0
    trial = summary["trials"][0]
    assert trial["env_steps"] >= 512 and trial["score"] is not None
    assert trial["selected_score"] == trial["eval_score"] is not None
    assert main(["evaluate", summary["best"]["checkpoint"], "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "DQN on breakout, 2 complete games" in out


def test_epsilon_greedy_runs_the_network_only_for_greedy_rows_with_rllibs_distribution():
    from tune_rl.env_runner import epsilon_greedy

    rng = np.random.default_rng(0)
    asked: list[int] = []

    def greedy(rows: np.ndarray) -> np.ndarray:  # a network whose argmax is always action 3
        asked.extend(rows.tolist())
        return np.full(len(rows), 3)

    assert (epsilon_greedy(rng, greedy, 500, 4, 0.0) == 3).all() and len(asked) == 500
    asked.clear()
    uniform = epsilon_greedy(rng, greedy, 4000, 4, 1.0)
    assert not asked  # epsilon 1: no forward pass at all
    assert np.bincount(uniform, minlength=4) == pytest.approx([1000] * 4, rel=0.15)
    mixed = epsilon_greedy(rng, greedy, 20_000, 4, 0.3)
    # RLlib: greedy with probability 0.7, else uniform (which picks 3 a quarter of the time).
    assert len(asked) == pytest.approx(14_000, rel=0.03)
    assert (mixed == 3).mean() == pytest.approx(0.7 + 0.3 / 4, abs=0.015)
