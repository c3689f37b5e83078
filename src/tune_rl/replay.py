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

import math
from typing import Any

from ray.rllib.utils.replay_buffers.prioritized_episode_buffer import (
    PrioritizedEpisodeReplayBuffer,
)

from tune_rl.errors import UsageError, unknown

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


# The episode buffers RLlib's new-stack DQN can use, by the name a sweep's
# `training.replay_buffer_config.type` gives them, and whether they prioritize.
BUFFER_TYPES = {
    "EpisodeReplayBuffer": False,  # uniform
    "PrioritizedEpisodeReplayBuffer": True,  # RLlib's: beta fixed
    BUFFER_TYPE: True,  # beta annealed to 1 (this module)
}
# The settings each kind reads; RLlib's buffers take **kwargs and would
# silently ignore any other (a typo, or alpha on a uniform buffer).
_BUFFER_KEYS = {False: ("type", "capacity"), True: ("type", "capacity", "alpha", "beta")}


def merged_buffer_config(preset_buffer: dict[str, Any], override: dict[str, Any]
                         ) -> dict[str, Any]:
    """The preset's replay buffer settings with a sweep's overrides merged in.

    RLlib's DQNConfig.training fills what a buffer dict leaves out from its
    own default, the prioritized buffer (alpha 0.6, beta 0.4): a plain
    `{capacity: 100000}` would turn plain DQN into PER. Merged here, only
    what is named changes. The kind of buffer (uniform or prioritized)
    changes only when `type` names another one: a prioritized setting (alpha,
    beta) on a uniform preset, without the type, is refused.
    """
    merged = {**preset_buffer, **override}
    kind = merged.get("type")
    if not isinstance(kind, str) or kind not in BUFFER_TYPES:
        raise unknown("training.replay_buffer_config.type", kind, BUFFER_TYPES)
    prioritized = BUFFER_TYPES[kind]
    for key, value in override.items():
        if key not in _BUFFER_KEYS[prioritized]:
            if key in _BUFFER_KEYS[True]:
                raise UsageError(
                    f"training.replay_buffer_config.{key} is a prioritized buffer's setting, "
                    f"and this buffer is uniform ({kind}): to replace it, name the type too "
                    f"(type: {BUFFER_TYPE} or PrioritizedEpisodeReplayBuffer)")
            raise unknown(f"training.replay_buffer_config key for {kind}:", key,
                          _BUFFER_KEYS[prioritized])
        _check_buffer_value(key, value)
    if prioritized:
        merged.setdefault("alpha", 0.6)  # RLlib's defaults, said where they apply
        merged.setdefault("beta", 0.4)
    return merged


def _check_buffer_value(key: str, value: Any) -> None:
    number = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value))
    if key == "capacity" and not (number and value == int(value) and value >= 1):
        raise UsageError(f"training.replay_buffer_config.capacity={value!r} is not allowed: "
                         "capacity must be an integer >= 1 (env steps)")
    if key in ("alpha", "beta") and not (number and 0 <= value <= 1):
        raise UsageError(f"training.replay_buffer_config.{key}={value!r} is not allowed: "
                         f"{key} must be a number in [0, 1]")
