"""Replay buffers for the DQN family: frames stored once, and PER's beta annealed.

The DQN family's env stacks its last 4 frames itself
(envs.py: RLlib 2.60's episode buffers keep no lookback, so its learner-side
frame stacking cannot be used), and RLlib's episode buffers keep every
observation whole: 28 KB per transition, where 3 of its 4 frames are also
the previous observation's. `FrameEpisodeReplayBuffer` and
`FramePrioritizedEpisodeReplayBuffer` keep each frame of an episode once, as
Dopamine's circular buffer does, and rebuild the stacks of what is sampled.
They keep RLlib's own add, eviction and sampling (the same seed draws the
same transitions: tests/test_frame_replay.py compares the batches); only the
observations RLlib stores are small integer keys, `episode number << 32 |
position of the observation's newest frame`: an observation's stack is the
4 frames ending there. Measured over 8,000 random-action Breakout steps of
whole games into full buffers, all a buffer holds (tracemalloc: frames, keys,
actions, rewards, infos, RLlib's index lists and sum trees; benchmarks/
measure.py), a transition costs 7,578 bytes uniform and 7,874 prioritized,
where RLlib's buffers hold 29,692 and 29,963. With an episode per life
(`terminal_on_life_loss`), random play's 31-step episodes each store their
first stack whole: 8,449 and 8,742 bytes.

Two more things RLlib would keep per stored episode, found by the same
measure: its deep copy of the observation space (a Box of 84x84x4 uint8,
with its bounds and masks 113 KB: 700 bytes a transition in 160-step games)
and the env runner's last observation (`_last_added_observation`, one whole
stack). The space is kept once here; the last observation becomes its key.

A key is a frame position, not a step: an observation whose first 3 frames
are not the previous one's last 3 (a reset, or any env that does not stack
frames) stores all 4, so a rebuilt stack is always the observation that was
added. A buffer whose first observation is not a stack of uint8 frames
(CartPole, any non-image env) keeps observations as RLlib does: every type
works for every env, so a sweep's `type` never depends on the env.

Infos stay: each step's info dict (ALE's and our wrappers' numpy scalars)
measured at about 0.2 KB of a transition, not what stood between 28 KB and
8; and RLlib's uniform sampling returns them with each transition.

The types are named by their import paths in `replay_buffer_config`:
RLlib picks its episode-buffer code path by finding "EpisodeReplayBuffer"
in that string.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer
from ray.rllib.utils.replay_buffers.prioritized_episode_buffer import (
    PrioritizedEpisodeReplayBuffer,
)

from tune_rl.errors import UsageError, unknown

BUFFER_TYPE = "tune_rl.replay.BetaAnnealingPrioritizedEpisodeReplayBuffer"
FRAME_BUFFER_TYPE = "tune_rl.replay.FrameEpisodeReplayBuffer"
FRAME_PER_BUFFER_TYPE = "tune_rl.replay.FramePrioritizedEpisodeReplayBuffer"
# A key's low bits: a frame's position in its episode. ALE's cap of 108,000
# frames is 27,000 steps, far below 2**32.
_POSITION_BITS = 32


class FrameStore:
    """Keeps each frame of an episode once; see the module docstring.

    Mixed into RLlib's episode buffers before them: `add` hands RLlib episodes
    whose observations are keys, `sample` puts the stacks back.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.frames_mode: bool | None = None  # decided by the first observation added
        self.frame_stack = 0  # frames per observation
        # Episode number -> its 2-D frames, oldest first: a list while the
        # episode goes on, one array once it is done (or restored).
        self.frames: dict[int, Any] = {}
        self.episode_numbers: dict[str, int] = {}  # RLlib's episode id -> ours
        self.next_episode_number = 0
        self.observation_space = None

    def add(self, episodes, **kwargs) -> None:
        episodes = episodes if isinstance(episodes, list) else [episodes]
        if self.frames_mode is None and episodes:
            first = episodes[0].observations.data[0]
            self.frames_mode = (isinstance(first, np.ndarray) and first.dtype == np.uint8
                                and first.ndim == 3)
            self.frame_stack = first.shape[-1] if self.frames_mode else 0
        if self.frames_mode:
            episodes = [self._keyed(episode) for episode in episodes]
        super().add(episodes, **kwargs)
        # RLlib evicts whole episodes; their frames go with them.
        for episode_id in [i for i in self.episode_numbers if i not in self.episode_id_to_index]:
            del self.frames[self.episode_numbers.pop(episode_id)]

    def _keyed(self, episode):
        """A shallow copy of `episode` whose observations are keys; its frames
        are added to the store (the caller's episode is left as it was)."""
        observations = episode.observations
        data = observations.data
        number = self.episode_numbers.get(episode.id_)
        if number is None:  # new to the buffer: every observation, lookback too
            number = self.episode_numbers[episode.id_] = self.next_episode_number
            self.next_episode_number += 1
            self.frames[number] = []
            keys = [self._store(number, obs) for obs in data]
        else:
            # A continuation chunk: RLlib's concat_episode checks that its first
            # observation is the stored last one and drops it (and the lookback
            # before it), so they all get that key.
            last = (number << _POSITION_BITS) | (len(self.frames[number]) - 1)
            first = observations.lookback + 1
            keys = [last] * first + [self._store(number, obs) for obs in data[first:]]
        if episode.is_done:  # never extended again: one array, no per-frame headers
            self.frames[number] = np.stack(self.frames[number])
        keyed = copy.copy(episode)
        # The space is kept once here and given back to what is sampled: RLlib
        # deep-copies each episode it stores, and with it the Box of 84x84x4
        # uint8 low and high bounds (and their two boolean masks), 113 KB
        # per stored episode.
        if self.observation_space is None:
            self.observation_space = episode.observation_space
        keyed.observations = InfiniteLookbackBuffer(
            data=np.asarray(keys, dtype=np.int64) if isinstance(data, np.ndarray) else keys,
            lookback=observations.lookback)
        keyed._observation_space = None
        # The env runner's copy of its last observation, which nothing in the
        # buffer reads: RLlib would keep it whole, one stack (28 KB) per episode.
        keyed._last_added_observation = keys[-1] if keys else None
        return keyed

    def _store(self, number: int, obs: np.ndarray) -> int:
        frames = self.frames[number]
        if isinstance(frames, np.ndarray):  # restored by set_state: extend as a list
            frames = self.frames[number] = list(frames)
        k = self.frame_stack
        if not (frames and all(np.array_equal(obs[..., c], frames[c - k + 1])
                               for c in range(k - 1))):
            frames.extend(np.ascontiguousarray(obs[..., c]) for c in range(k - 1))
        frames.append(np.ascontiguousarray(obs[..., k - 1]))
        return (number << _POSITION_BITS) | (len(frames) - 1)

    def stack(self, key: int) -> np.ndarray:
        """The observation a key stands for, as it was added."""
        key = int(key)
        frames = self.frames[key >> _POSITION_BITS]
        end = (key & ((1 << _POSITION_BITS) - 1)) + 1
        return np.stack(frames[end - self.frame_stack:end], axis=-1)

    def sample(self, *args, to_numpy: bool = False, **kwargs):
        sampled = super().sample(*args, to_numpy=False if self.frames_mode else to_numpy,
                                 **kwargs)
        if not self.frames_mode:
            return sampled
        if isinstance(sampled, dict):  # the uniform buffer's sequences (sample_episodes=False)
            sampled["obs"] = np.array([[self.stack(key) for key in row]
                                       for row in sampled["obs"]])
            return sampled
        for episode in sampled:
            observations = episode.observations
            stacks = [self.stack(key) for key in observations.data]
            observations.data = (np.stack(stacks) if isinstance(observations.data, np.ndarray)
                                 else stacks)
            episode.observation_space = self.observation_space
            if to_numpy:
                episode.to_numpy()
        return sampled

    def get_state(self) -> dict[str, Any]:
        frames = {number: np.asarray(f) for number, f in self.frames.items()}
        return {**super().get_state(), "frames_mode": self.frames_mode,
                "frame_stack": self.frame_stack, "frames": frames,
                "episode_numbers": list(self.episode_numbers.items()),
                "next_episode_number": self.next_episode_number,
                "observation_space": self.observation_space}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if "frames_mode" not in state:
            # Saved by RLlib's buffer (a sweep checkpointed before its preset
            # used this one): its episodes hold whole stacks, and so will
            # what is added to them.
            self.frames_mode = False
            return
        self.frames_mode = state["frames_mode"]
        self.frame_stack = state["frame_stack"]
        self.frames = dict(state["frames"])
        self.episode_numbers = dict(state["episode_numbers"])
        self.next_episode_number = state["next_episode_number"]
        self.observation_space = state["observation_space"]


class BetaAnnealingPrioritizedEpisodeReplayBuffer(PrioritizedEpisodeReplayBuffer):
    """Prioritized replay whose importance-sampling exponent beta anneals to 1.

    Schaul et al. (2016, section 3.4) and Hessel et al. (2018) anneal beta
    linearly from its initial value to 1 by the end of learning, so the
    updates are fully bias-corrected when it matters most. RLlib's new-stack
    DQN passes one fixed `beta` to `sample()` (dqn.py,
    `_training_step_new_api_stack`); this buffer replaces it with the
    annealed value.
    """

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


class FrameEpisodeReplayBuffer(FrameStore, EpisodeReplayBuffer):
    """RLlib's uniform episode buffer, each frame kept once."""


class FramePrioritizedEpisodeReplayBuffer(FrameStore, BetaAnnealingPrioritizedEpisodeReplayBuffer):
    """Prioritized, beta annealed to 1, each frame kept once."""


# The episode buffers RLlib's new-stack DQN can use, by the name a sweep's
# `training.replay_buffer_config.type` gives them, and whether they prioritize.
BUFFER_TYPES = {
    "EpisodeReplayBuffer": False,  # uniform
    "PrioritizedEpisodeReplayBuffer": True,  # RLlib's: beta fixed
    BUFFER_TYPE: True,  # beta annealed to 1 (this module)
    FRAME_BUFFER_TYPE: False,  # uniform, frames kept once (this module)
    FRAME_PER_BUFFER_TYPE: True,  # beta annealed to 1, frames kept once (this module)
}
BETA_ANNEALING_TYPES = (BUFFER_TYPE, FRAME_PER_BUFFER_TYPE)
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
                    f"(type: {FRAME_PER_BUFFER_TYPE}, {BUFFER_TYPE} or "
                    "PrioritizedEpisodeReplayBuffer)")
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
