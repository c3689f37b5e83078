"""The DQN family's replay keeps each Breakout frame once and samples what
today's buffers sample.

Real parts throughout: episodes from RLlib's own env runner stepping tune-rl's
Breakout (as a trial's runner does), RLlib's buffers beside ours, and a real
DQN trial. Each test fails if the frame buffers were silently not used: the
observations they store are keys, their memory is a quarter of a stack's.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer

from tune_rl.cli import main
from tune_rl.config import TrialSettings, build_config
from tune_rl.envs import ENVS
from tune_rl.errors import UsageError
from tune_rl.presets import PRESETS
from tune_rl.replay import (
    BetaAnnealingPrioritizedEpisodeReplayBuffer,
    FrameEpisodeReplayBuffer,
    FramePrioritizedEpisodeReplayBuffer,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from measure import held_bytes_per_transition  # noqa: E402

FRAME = 84 * 84
# Today's buffer and ours, with the settings they are compared under.
KINDS = {
    "uniform": (EpisodeReplayBuffer, FrameEpisodeReplayBuffer, {}),
    "prioritized": (BetaAnnealingPrioritizedEpisodeReplayBuffer,
                    FramePrioritizedEpisodeReplayBuffer,
                    {"alpha": 0.5, "beta": 0.5, "beta_anneal_env_steps": 2000}),
}


def sampled_chunks(env: str, steps: int, env_config: dict | None = None) -> list[list]:
    """What RLlib's env runner hands the buffer, sample after sample, for
    tune-rl's DQN on `env`: finished episodes and continuation chunks."""
    ENVS[env].register()
    settings = TrialSettings(envs_per_env_runner=4, rollout_fragment_length=16,
                             env_config=env_config or {})
    runner = SingleAgentEnvRunner(config=build_config(PRESETS["DQN"], ENVS[env], {}, settings))
    runner.env.action_space.seed(0)  # the same games each run (the envs: the config's seed)
    chunks, total = [], 0
    while total < steps:
        chunks.append(runner.sample(num_timesteps=64, random_actions=True))
        total += sum(len(e) for e in chunks[-1])
    runner.stop()
    return chunks


@pytest.fixture(scope="module")
def short_games():
    """About 1,200 steps whose episodes end at each lost life: many ends and
    continuations, and a game's first frames again after each."""
    chunks = sampled_chunks("breakout", 1200, {"terminal_on_life_loss": True})
    episodes = [e for chunk in chunks for e in chunk]
    assert any(e.is_done for e in episodes)
    assert any(e.t_started > 0 for e in episodes)  # continuation chunks
    return chunks


def same_batch(ours, todays) -> None:
    assert len(ours) == len(todays)
    for a, b in zip(ours, todays, strict=True):
        for t in (0, -1):  # observation and the n-step next observation
            x, y = a.get_observations(t), b.get_observations(t)
            assert x.dtype == y.dtype == np.uint8 and x.shape == y.shape == (84, 84, 4)
            assert np.array_equal(x, y)
        assert a.get_actions(0) == b.get_actions(0)
        assert a.get_rewards(0) == b.get_rewards(0)
        assert (a.is_terminated, a.is_truncated) == (b.is_terminated, b.is_truncated)
        for key in ("weights", "n_step"):
            assert np.array_equal(a.get_extra_model_outputs(key),
                                  b.get_extra_model_outputs(key)), key


def sample(buffer, seed: int | None = None):
    """A batch as DQN's training step asks for it (dqn.py), n-step 3."""
    if seed is not None:
        buffer.rng = np.random.default_rng(seed)
    return buffer.sample(num_items=32, n_step=3, gamma=0.99, beta=0.5, sample_episodes=True,
                         batch_length_T=0, lookback=0, min_batch_length_T=0)


@pytest.mark.parametrize("kind", KINDS)
def test_samples_equal_todays_buffers_on_the_same_games(short_games, kind):
    todays_class, frame_class, settings = KINDS[kind]
    # 600 of the ~1,200 steps: the oldest episodes are evicted on the way.
    todays, ours = todays_class(capacity=600, **settings), frame_class(capacity=600, **settings)
    for chunk in short_games:
        todays.add(chunk)
        ours.add(chunk)
    assert todays.get_num_episodes_evicted() > 0
    assert ours.get_num_timesteps() == todays.get_num_timesteps()
    stored = ours.episodes[0].get_observations(0)
    assert isinstance(stored, int)  # a key: the frames are ours
    todays.rng, ours.rng = np.random.default_rng(7), np.random.default_rng(7)
    for round_ in range(8):
        same_batch(sample(ours), sample(todays))
        if kind == "prioritized":  # what the learner does with its TD errors
            priorities = np.random.default_rng(round_).uniform(0.01, 2.0, 32)
            todays.update_priorities(priorities)
            ours.update_priorities(priorities)
    if kind == "uniform":  # RLlib's other way to sample it: sequences, as arrays
        todays.rng, ours.rng = np.random.default_rng(8), np.random.default_rng(8)
        a, b = (buffer.sample(batch_size_B=8, batch_length_T=4) for buffer in (ours, todays))
        assert a["obs"].shape == b["obs"].shape == (8, 4, 84, 84, 4)
        assert all(np.array_equal(a[k], b[k]) for k in b)


def test_the_callers_episodes_are_left_as_they_were(short_games):
    episode = short_games[0][0]
    before = [o.copy() for o in episode.get_observations()]
    FrameEpisodeReplayBuffer(capacity=1000).add(short_games[0])
    after = episode.get_observations()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.fixture(scope="module")
def whole_games():
    """4,000 steps of whole games: the default protocol."""
    return sampled_chunks("breakout", 4000)


@pytest.mark.parametrize("kind", KINDS)
def test_a_transition_costs_at_most_8_kb(whole_games, kind):
    """Everything the full buffer holds, per transition (benchmarks/measure.py).
    Today's buffer: a whole stack and more."""
    chunks = whole_games
    todays_class, frame_class, settings = KINDS[kind]
    ours = held_bytes_per_transition(lambda: frame_class(capacity=4000, **settings), chunks)
    todays = held_bytes_per_transition(lambda: todays_class(capacity=4000, **settings), chunks)
    assert FRAME <= ours <= 8192, ours
    assert todays > 4 * FRAME, todays


def test_a_restored_buffer_samples_and_grows_as_the_saved_one(short_games):
    settings = KINDS["prioritized"][2]
    saved = FramePrioritizedEpisodeReplayBuffer(capacity=600, **settings)
    for chunk in short_games[:-3]:
        saved.add(chunk)
    state = pickle.loads(pickle.dumps(saved.get_state(), protocol=pickle.HIGHEST_PROTOCOL))
    restored = FramePrioritizedEpisodeReplayBuffer(capacity=600, **settings)
    restored.set_state(state)
    same_batch(sample(restored, seed=3), sample(saved, seed=3))
    # Games still going when saved go on in the restored buffer.
    for chunk in short_games[-3:]:
        saved.add(chunk)
        restored.add(chunk)
    same_batch(sample(restored, seed=4), sample(saved, seed=4))
    # The checkpoint keeps frames, not stacks.
    todays = BetaAnnealingPrioritizedEpisodeReplayBuffer(capacity=600, **settings)
    for chunk in short_games:
        todays.add(chunk)
    assert pickled_size(saved) < pickled_size(todays) / 3


def test_a_buffer_saved_by_rllibs_buffer_is_restored_whole(short_games):
    """A sweep checkpointed before its preset used the frame buffer resumes."""
    todays = EpisodeReplayBuffer(capacity=600)
    for chunk in short_games[:-3]:
        todays.add(chunk)
    ours = FrameEpisodeReplayBuffer(capacity=600)
    ours.set_state(pickle.loads(pickle.dumps(todays.get_state())))  # as trainable.py saves
    for chunk in short_games[-3:]:
        todays.add(chunk)
        ours.add(chunk)
    assert ours.frames_mode is False and not ours.frames
    same_batch(sample(ours, seed=5), sample(todays, seed=5))


def pickled_size(buffer) -> int:
    """What trainable.py writes to a checkpoint."""
    return len(pickle.dumps(buffer.get_state(), protocol=pickle.HIGHEST_PROTOCOL))


@pytest.mark.parametrize("kind", KINDS)
def test_evicted_episodes_take_their_frames_with_them(short_games, kind):
    _, frame_class, settings = KINDS[kind]
    # Not much smaller: RLlib's uniform buffer fails (IndexError in its
    # eviction) when the oldest episode, still going, gets its next chunk
    # while the buffer is over capacity; measured at 150 with these games.
    buffer = frame_class(capacity=400, **settings)
    most, added = 0, 0
    for chunk in short_games:
        added += sum(len(e) for e in chunk)
        buffer.add(chunk)
        stored = {buffer.episode_numbers[e.id_] for e in buffer.episodes}
        assert set(buffer.frames) == stored
        frames = sum(len(f) for f in buffer.frames.values())
        # A frame per step held and, per episode, 3 more (its first stack
        # whole), one for the observation after its last step and one for a
        # lookback observation (a chunk of an episode evicted before).
        assert frames <= buffer.get_num_timesteps() + 5 * buffer.get_num_episodes()
        most = max(most, frames)
    assert buffer.get_num_episodes_evicted() > 0
    assert most < added / 2


def test_other_observations_are_kept_as_rllib_keeps_them():
    """CartPole's four floats: nothing to share between steps, stored as
    they come, so every buffer type works with every env."""
    chunks = sampled_chunks("cartpole", 300)
    todays, ours = EpisodeReplayBuffer(capacity=1000), FrameEpisodeReplayBuffer(capacity=1000)
    for chunk in chunks:
        todays.add(chunk)
        ours.add(chunk)
    assert ours.frames_mode is False and not ours.frames
    for a, b in zip(sample(ours, seed=1), sample(todays, seed=1), strict=True):
        assert np.array_equal(a.get_observations(0), b.get_observations(0))
        assert np.array_equal(a.get_observations(-1), b.get_observations(-1))


def dry_run(tmp_path, *extra) -> list[str]:
    return ["sweep", "--dry-run", "--storage-path", str(tmp_path / "ray_results"),
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *extra]


def test_dry_run_shows_the_replay_memory_of_the_trials_at_once():
    from tune_rl.plan import resolve_plan
    from tune_rl.spec import load_spec

    # The plan's own description, which --dry-run prints (its disk check
    # depends on the machine's free space: not this test's subject).
    plan = resolve_plan(load_spec("DQN", profile="full", trials=2, max_concurrent=1))
    line = plan.describe()["replay_memory"]
    assert line.startswith("up to about 7.") and "per trial (1000000 transitions x" in line
    assert "1 trial(s) at once on this machine: 7.9 GB, and about 2.5 GB for the trial " \
        "processes and the sweep, of its" in line


def test_a_sweep_whose_buffers_do_not_fit_in_memory_is_refused(tmp_path, capsys,
                                                                monkeypatch):
    import tune_rl.plan

    # Two trials at once on this machine's 2 CPUs, 1,000,000 transitions each
    # (7.9 GB): 15.8 GB of buffers, and 1.5 GB for each trial's process and 1
    # GB for the sweep's own besides.
    monkeypatch.setattr(tune_rl.plan, "machine_memory", lambda: 12 * 10**9)
    assert main(dry_run(tmp_path, "--algo", "DQN", "--profile", "full", "--trials", "2",
                        "--max-concurrent", "2")) == 2
    error = capsys.readouterr().err
    assert "of replay buffers at once (2 trials at once x 1000000 transitions x" in error
    assert "about 4 GB besides (1.5 GB a trial process, 1 GB the sweep's own)" in error
    assert "this machine has 12 GB of memory" in error
    assert "training.replay_buffer_config.capacity: 506329 or less" in error
    assert "max_concurrent: 1 or fewer" in error
    assert not (tmp_path / "ray_results").exists()  # refused before anything started
    # The buffers alone would fit in 17 GB; with the processes they do not.
    from tune_rl.plan import _check_memory, resolve_plan
    from tune_rl.spec import load_spec

    plan = resolve_plan(load_spec("DQN", profile="full", trials=2, max_concurrent=2))
    monkeypatch.setattr(tune_rl.plan, "machine_memory", lambda: 17 * 10**9)
    with pytest.raises(UsageError, match="this machine has 17 GB of memory"):
        _check_memory(plan)
    monkeypatch.setattr(tune_rl.plan, "machine_memory", lambda: 20 * 10**9)
    _check_memory(plan)


def test_on_a_cluster_the_dry_run_says_the_nodes_memory_is_not_checked():
    from tune_rl.plan import resolve_plan
    from tune_rl.spec import load_spec

    plan = resolve_plan(load_spec("DQN", profile="full"))
    plan.address = "ray://head:10001"  # what plan_sweep records for --address
    line = plan.describe()["replay_memory"]
    assert "not checked against the cluster's nodes" in line
    assert "on this machine" not in line
