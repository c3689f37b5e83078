"""A sweep's replay buffer settings are merged into the preset's, not put in its place.

Each check builds the buffer the way RLlib's algorithm does
(Algorithm._create_local_replay_buffer_if_necessary: from_config on the
built config's replay_buffer_config) and looks at the buffer itself: its
class, alpha, beta, capacity. RLlib's DQNConfig fills a partial buffer dict
from its own default, the prioritized buffer (alpha 0.6, beta 0.4), so a
test of the dict tune-rl hands over would miss that.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ray.rllib.algorithms.dqn.dqn import DQN
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer
from ray.rllib.utils.replay_buffers.prioritized_episode_buffer import (
    PrioritizedEpisodeReplayBuffer,
)

from tune_rl.config import TrialSettings, build_config
from tune_rl.envs import ENVS
from tune_rl.errors import UsageError
from tune_rl.plan import resolve_plan
from tune_rl.presets import PRESETS
from tune_rl.replay import (
    BUFFER_TYPE,
    BetaAnnealingPrioritizedEpisodeReplayBuffer,
    FrameEpisodeReplayBuffer,
    FramePrioritizedEpisodeReplayBuffer,
)
from tune_rl.spec import load_spec


def built_buffer(algo: str, buffer: dict, max_env_steps: int = 1000):
    settings = TrialSettings(max_env_steps=max_env_steps,
                             training={"replay_buffer_config": buffer})
    config = build_config(PRESETS[algo], ENVS["breakout"], {}, settings)
    # What DQN.setup does, without Ray: the method reads only self.config.
    built = DQN._create_local_replay_buffer_if_necessary(SimpleNamespace(config=config),
                                                         config)
    return built, config


def test_a_capacity_alone_keeps_plain_dqns_uniform_buffer():
    buffer, config = built_buffer("DQN", {"capacity": 100_000})
    assert type(buffer) is FrameEpisodeReplayBuffer
    assert buffer.capacity == 100_000


def test_a_capacity_alone_keeps_per_alpha_beta_and_beta_annealing():
    buffer, config = built_buffer("DQN_PER", {"capacity": 100_000}, max_env_steps=5000)
    assert type(buffer) is FramePrioritizedEpisodeReplayBuffer
    assert buffer.capacity == 100_000
    assert buffer._alpha == 0.5  # the notebook's, not RLlib's 0.6
    assert buffer.beta_initial == 0.5 and buffer.beta_anneal_env_steps == 5000


def test_rainbow_keeps_its_buffer_when_only_alpha_changes():
    buffer, _ = built_buffer("Rainbow_DQN", {"alpha": 0.7})
    assert type(buffer) is FramePrioritizedEpisodeReplayBuffer
    assert (buffer._alpha, buffer.beta_initial, buffer.capacity) == (0.7, 0.5, 1_000_000)


def test_another_kind_of_buffer_is_used_when_named_by_type():
    """Asked for by name: `type` changes the kind, the rest is still merged."""
    buffer, config = built_buffer("DQN", {"type": "PrioritizedEpisodeReplayBuffer"})
    assert type(buffer) is PrioritizedEpisodeReplayBuffer
    # RLlib's own buffer, with RLlib's defaults said where they apply; DQN
    # passes the config's beta to every sample() (dqn.py).
    assert buffer._alpha == 0.6 and config.replay_buffer_config["beta"] == 0.4
    assert buffer.capacity == 1_000_000  # the preset's capacity
    buffer, _ = built_buffer("DQN_PER", {"type": "EpisodeReplayBuffer"})
    assert type(buffer) is EpisodeReplayBuffer and buffer.capacity == 1_000_000
    # Today's buffers, whole stacks stored, stay a choice.
    buffer, config = built_buffer("DQN_PER", {"type": BUFFER_TYPE}, max_env_steps=5000)
    assert type(buffer) is BetaAnnealingPrioritizedEpisodeReplayBuffer
    assert buffer.beta_anneal_env_steps == 5000


@pytest.mark.parametrize("algo, buffer, message", [
    ("DQN", {"alpha": 0.6}, "replay_buffer_config.alpha is a prioritized buffer's setting, "
                            "and this buffer is uniform "
                            "(tune_rl.replay.FrameEpisodeReplayBuffer): to replace it, "
                            "name the type too"),
    ("Rainbow_DQN", {"type": "EpisodeReplayBuffer", "beta": 0.4},
     "replay_buffer_config.beta is a prioritized buffer's setting"),
    ("DQN_PER", {"capcity": 10}, "unknown training.replay_buffer_config key for "
                                 "tune_rl.replay.FramePrioritizedEpisodeReplayBuffer: "
                                 "'capcity'"),
    ("DQN", {"type": "ReplayBuffer"}, "unknown training.replay_buffer_config.type "
                                      "'ReplayBuffer'"),
    ("DQN_PER", {"alpha": 1.5}, "alpha=1.5 is not allowed: alpha must be a number in [0, 1]"),
    ("DQN", {"capacity": 0}, "capacity=0 is not allowed"),
])
def test_a_buffer_setting_that_would_change_the_buffer_unasked_is_refused(
        algo, buffer, message, tmp_path):
    path = tmp_path / "buffer.yaml"
    path.write_text(f"algo: {algo}\ntraining: {{replay_buffer_config: {buffer}}}\n"
                    "profiles:\n  quick:\n    trials: 2\n")
    with pytest.raises(UsageError, match=None) as refused:
        resolve_plan(load_spec(spec_file=path))
    assert message in str(refused.value)
