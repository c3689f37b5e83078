"""Prioritized replay whose importance-sampling exponent beta anneals to 1.

Schaul et al. (2016, section 3.4) and Hessel et al. (2018) anneal beta
linearly from its initial value to 1 by the end of learning, so the updates
are fully bias-corrected when it matters most. RLlib's new-stack DQN passes
one fixed `beta` to `sample()` (dqn.py, `_training_step_new_api_stack`);
this buffer replaces it with the annealed value. The type is named by its
import path in `replay_buffer_config`: RLlib picks its episode-buffer code
path by finding "EpisodeReplayBuffer" in that string.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.utils.replay_buffers.prioritized_episode_buffer import (
    PrioritizedEpisodeReplayBuffer,
)

BUFFER_TYPE = "tune_rl.replay.BetaAnnealingPrioritizedEpisodeReplayBuffer"


class BetaAnnealingPrioritizedEpisodeReplayBuffer(PrioritizedEpisodeReplayBuffer):
    def __init__(self, *args, beta: float = 0.4, beta_anneal_env_steps: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.beta_initial = beta
        self.beta_anneal_env_steps = max(1, int(beta_anneal_env_steps))
        self.env_steps_added = 0  # unlike RLlib's counters, never reduced by eviction

    @property
    def beta(self) -> float:
        progress = min(1.0, self.env_steps_added / self.beta_anneal_env_steps)
        return self.beta_initial + (1.0 - self.beta_initial) * progress

    def add(self, episodes, **kwargs) -> None:
        episodes = episodes if isinstance(episodes, list) else [episodes]
        self.env_steps_added += sum(len(e) for e in episodes)
        super().add(episodes, **kwargs)

    def sample(self, *args, beta: float | None = None, **kwargs):
        return super().sample(*args, beta=self.beta, **kwargs)

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "env_steps_added": self.env_steps_added}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.env_steps_added = state.get("env_steps_added", 0)
