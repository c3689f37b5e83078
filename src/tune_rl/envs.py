"""The environments a sweep can train on, chosen by name.

`breakout` follows RLlib's own Atari examples: ALE with frameskip=1 and the
skip (with max-pooling) done in the wrapper, 84x84 grayscale, four stacked
frames. For PPO, IMPALA and APPO the frames are stacked by RLlib's
frame-stacking connectors, as in those examples. The DQN family cannot do
that on Ray 2.60: its episode replay buffers keep no lookback
(prioritized_episode_buffer.py: "TODO (sven): Support lookback buffers"), so
the learner-side connector has no earlier frames to stack and fails. For DQN
the env stacks the frames itself, as uint8, and the replay buffer keeps each
frame once and rebuilds the stacks it samples (replay.py): about 7.6 KB per
transition, where whole stacks took 28 KB.

Rewards are clipped to [-1, 1] for learning, as DeepMind did; the real game
score of each episode is reported separately as `game_score` by
`ScoreCallback`, so the number people compare is the score of the game.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.connectors.env_to_module.frame_stacking import FrameStackingEnvToModule
from ray.rllib.connectors.learner.frame_stacking import FrameStackingLearner
from ray.tune.registry import register_env

from tune_rl.errors import UsageError, unknown

FRAME_STACK = 4
SCORE_KEY = "game_score"
GAME_OVER = "game_over"  # in info, where an episode may end before the game does


class KeepScore(gym.Wrapper):
    """Carries the game's running score (the sum of its rewards) in `info`.

    `ScoreCallback` reads it at the episode's end. The episode RLlib hands
    that callback is only the last chunk its env runner sampled (earlier
    chunks were already returned), so `episode.get_return()` there is that
    chunk's return: measured on CartPole DQN with fragments of 4 steps, 1-4
    per game against RLlib's own episode_return_mean of 23.
    """

    def reset(self, **kwargs):
        self._score = 0.0
        obs, info = self.env.reset(**kwargs)
        info[SCORE_KEY] = self._score
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._score += float(reward)
        info[SCORE_KEY] = self._score
        return obs, self._learned(reward), terminated, truncated, info

    def _learned(self, reward):
        return reward


class ClipRewardKeepScore(KeepScore):
    """Clips each reward to its sign for learning; `info` keeps the real score."""

    def _learned(self, reward):
        return float(np.sign(reward))


class FireOnLifeLoss(gym.Wrapper):
    """Presses FIRE at the start, after each lost life, and again when nothing
    has happened for a while.

    Breakout waits for FIRE to serve the ball; a greedy policy that never
    presses it (evaluation runs without exploration) would otherwise idle
    until the 108,000-frame limit and stall the sweep for minutes. One FIRE
    after a lost life is not always enough: measured with a policy that only
    does NOOP, 2 of 40 games (seeds 8 and 16) stalled after a lost life with
    the ball never served, and an untrained Rainbow network stalled one game
    in five, each such game costing its whole frame cap (40 s of a 5-game
    evaluation at 20,000 frames). So after `PATIENCE` agent steps with no
    reward and no lost life, FIRE is pressed once more, as an extra step
    after the agent's own. In play FIRE does nothing in Breakout, and a ball
    in play scores or is lost well within that time.
    """

    FIRE = 1
    PATIENCE = 100  # agent steps: 400 frames; a NOOP policy loses a served ball in 24

    def reset(self, **kwargs):
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(self.FIRE)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        self._lives = info["lives"]
        self._quiet = 0
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._quiet = 0 if reward or info["lives"] < self._lives else self._quiet + 1
        if not (terminated or truncated) and (
                info["lives"] < self._lives or self._quiet >= self.PATIENCE):
            obs, more, terminated, truncated, info = self.env.step(self.FIRE)
            reward += more
            self._quiet = 0
        self._lives = info["lives"]
        return obs, reward, terminated, truncated, info


class TerminalOnLifeLoss(gym.Wrapper):
    """Ends the learner's episode at each lost life while the game goes on.

    DeepMind's and CleanRL's `EpisodicLifeEnv`: the value of the state
    where a life is lost is not bootstrapped, a strong signal early in
    training. The game itself is not reset until it is over, and the score
    (`ClipRewardKeepScore`, inside this wrapper) runs over the whole game;
    `info[GAME_OVER]` tells `ScoreCallback` which episode ends really end it.
    """

    NOOP = 0

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._game_over = True
        self._lives = 0

    def reset(self, **kwargs):
        if self._game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            # FireOnLifeLoss already served the ball; CleanRL's wrapper also
            # steps a no-op here rather than resetting the game.
            obs, _, terminated, truncated, info = self.env.step(self.NOOP)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self._game_over = False
        self._lives = info["lives"]
        info[GAME_OVER] = False
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._game_over = terminated or truncated
        life_lost = info["lives"] < self._lives
        self._lives = info["lives"]
        info[GAME_OVER] = self._game_over
        return obs, reward, terminated or life_lost, truncated, info


class StackFrames(gym.Wrapper):
    """The last `k` 84x84 frames on the channel axis.

    As uint8 (0-255, what ALE gives) for the DQN family: a stack is 28 KB
    instead of float32's 113 KB, and its replay buffer keeps each 7 KB
    frame once (replay.py). Its network scales them to [0, 1] itself
    (networks.py). As
    float32 in [0, 1] for the others, whose RLlib modules take nothing else.
    """

    def __init__(self, env: gym.Env, k: int, dtype: type = np.float32):
        super().__init__(env)
        self._k = k
        self._frames: deque = deque(maxlen=k)
        self._dtype = np.dtype(dtype)
        h, w, _ = env.observation_space.shape
        high = 255 if self._dtype == np.uint8 else 1.0
        self.observation_space = gym.spaces.Box(0, high, (h, w, k), self._dtype)

    def _stacked(self) -> np.ndarray:
        frames = np.concatenate(self._frames, axis=-1)
        if self._dtype == np.uint8:
            return frames
        return (frames / 255.0).astype(self._dtype)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._frames.extend([obs] * self._k)
        return self._stacked(), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._frames.append(obs)
        return self._stacked(), reward, terminated, truncated, info


def make_breakout(env_config: dict[str, Any]) -> gym.Env:
    import ale_py  # registers the ALE/ namespace, also in Ray worker processes

    gym.register_envs(ale_py)
    env = gym.make(
        "ALE/Breakout-v5",
        obs_type="grayscale",
        frameskip=1,  # the skip happens in AtariPreprocessing, with max-pooling
        # v5's sticky actions (0.25) unless the spec overrides them.
        repeat_action_probability=env_config.get("repeat_action_probability", 0.25),
        full_action_space=False,
        max_num_frames_per_episode=env_config.get("max_frames_per_episode", 108_000),
        # Set only to watch a game (evaluation's `watch`): `render()` is then
        # ALE's colour screen; observations are the grey ones either way.
        render_mode=env_config.get("render_mode"),
    )
    # DeepMind's preprocessing in one wrapper: 4 frames per step, the max of
    # the last two screens, one resize to 84x84. It reads only those two
    # screens (grayscale) from ALE, where RLlib's WarpFrame + MaxAndSkipEnv
    # resized every frame: a third of the env's time. No no-op starts by
    # default (PROTOCOL): the sticky actions make each game differ.
    env = gym.wrappers.AtariPreprocessing(env, noop_max=env_config.get("noop_max", 0),
                                          frame_skip=4, screen_size=84,
                                          grayscale_obs=True, grayscale_newaxis=True)
    env = FireOnLifeLoss(env)
    env = ClipRewardKeepScore(env)
    if env_config.get("terminal_on_life_loss", False):
        env = TerminalOnLifeLoss(env)
    if env_config.get("stack_frames_in_env", False):
        return StackFrames(env, FRAME_STACK, np.uint8)
    return StackFrames(env, 1)


def make_cartpole(env_config: dict[str, Any]) -> gym.Env:
    # render_mode: set only to watch a game (evaluation's `watch`).
    return KeepScore(gym.make("CartPole-v1", render_mode=env_config.get("render_mode")))


def frame_stack_env_to_module(env=None, spaces=None, device=None):
    return FrameStackingEnvToModule(num_frames=FRAME_STACK)


def frame_stack_learner(input_observation_space=None, input_action_space=None):
    return FrameStackingLearner(num_frames=FRAME_STACK)


class ScoreCallback(RLlibCallback):
    """Reports the real game score of each finished episode as `game_score`.

    Logged as a series, one item per game: RLlib clears its windowed means
    at every iteration, so the trainable keeps the 100-game window itself.
    """

    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        info = episode.get_infos(-1)
        # A life lost (TerminalOnLifeLoss): the game goes on. Through RLlib's
        # vector env the flag arrives as numpy's bool, which `is False` misses.
        if isinstance(info, dict) and not info.get(GAME_OVER, True):
            return
        score = info.get(SCORE_KEY) if isinstance(info, dict) else None
        if score is None:  # an env without KeepScore: right only when the
            score = episode.get_return()  # whole game was sampled in one chunk
        metrics_logger.log_value(SCORE_KEY, float(score), reduce="item_series")


def _is_number(value: Any) -> bool:
    """A finite int or float: not true/false, not NaN or infinity (YAML's .inf)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and np.isfinite(value))


# env_config keys a sweep may set, as read by make_breakout: (test, what is allowed).
# The Breakout protocol every preset trains and evaluates under, unless a
# sweep's env_config says otherwise (the PPO reference does: CleanRL's).
PROTOCOL = (
    "Machado et al. (2018), as Dopamine runs it: ALE Breakout-v5 with sticky actions "
    "(0.25), the minimal action set (4), no no-op starts, 4 frames per step with the max "
    "of the last two, 84x84 grey, the whole game as one episode (no life-loss signal), "
    "a cap of 108,000 frames, rewards clipped to their sign for learning and the real game "
    "score reported. One addition: FIRE is pressed for the agent to serve the ball, at the "
    "start, after each lost life and after 100 quiet steps (FireOnLifeLoss)"
)

BREAKOUT_OPTIONS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "repeat_action_probability": (lambda v: _is_number(v) and 0 <= v <= 1,
                                  "a number in [0, 1]"),
    "max_frames_per_episode": (lambda v: _is_number(v) and int(v) == v and v > 0,
                               "a positive integer"),
    # Learning only: evaluation always plays whole games (config.py).
    "terminal_on_life_loss": (lambda v: isinstance(v, bool), "true or false"),
    "noop_max": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 30,
                 "an integer from 0 to 30 (random no-ops at the start of a game)"),
}


@dataclass(frozen=True)
class EnvChoice:
    name: str
    make: Any
    atari: bool  # image observations: conv encoder and frame stacking
    description: str
    policy_obs_shape: tuple[int, ...]  # what the policy network sees, frames stacked
    # The env_config keys `make` reads: (test, what is allowed) per key.
    options: dict[str, tuple[Callable[[Any], bool], str]] = field(
        default_factory=dict, compare=False)
    # Env steps by which a working configuration shows progress: ASHA's
    # first cut is no earlier (spec.SweepSpec.grace_env_steps, when unset).
    progress_env_steps: int = 10_000
    protocol: str = ""  # how games are played and scored, where it is a choice

    def check_config(self, env_config: dict[str, Any]) -> None:
        """Refuses keys `make` does not read and values it cannot take."""
        for key, value in env_config.items():
            if key not in self.options:
                if not self.options:
                    raise UsageError(f"env_config key {key!r}: env {self.name} takes no "
                                     "env_config; remove env_config")
                raise unknown(f"env_config key for {self.name}:", key, self.options)
            test, allowed = self.options[key]
            if not test(value):
                raise UsageError(f"env_config.{key} must be {allowed}, got {value!r}")

    @property
    def registered_name(self) -> str:
        return f"tune_rl-{self.name}"

    def register(self) -> None:
        register_env(self.registered_name, self.make)


ENVS: dict[str, EnvChoice] = {
    e.name: e
    for e in [
        EnvChoice("breakout", make_breakout, True,
                  "ALE Breakout-v5, DeepMind preprocessing, 4 stacked 84x84 frames", (84, 84, 4),
                  # PPO's published curve leaves random play (about 1.5 a game)
                  # between 50,000 (2.1) and 200,000 (8.6) env steps (references.py).
                  BREAKOUT_OPTIONS, progress_env_steps=100_000, protocol=PROTOCOL),
        EnvChoice("cartpole", make_cartpole, False,
                  "CartPole-v1, the cheap proxy (return 500 = solved)", (4,),
                  # PPO balances for hundreds of steps within 10,000 (its sweeps here).
                  progress_env_steps=10_000),
    ]
}


def get_env(name: str) -> EnvChoice:
    if name not in ENVS:
        raise unknown("env", name, ENVS)
    return ENVS[name]
