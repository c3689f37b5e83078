"""Breakout for the DQN family, many games stepped at once in ale-py's C++.

Each game plays exactly as `envs.make_breakout` with `stack_frames_in_env`
(its protocol, `envs.PROTOCOL`): the emulator, the frame skip of 4 with the
max of the last two screens and the 84x84 grey resize run in ale-py's
`AtariVectorEnv` threads; the rest (FIRE to serve, reward clipping, the game
score, stacking four frames) is done here in numpy over the batch.

The games are split into groups, one `AtariVectorEnv` each, stepped as a
whole: `send(group, actions)` starts a round of every game of the group and
returns at once, `recv(group)` waits for it. While one group's games run in
ale-py's threads the caller computes the other group's actions.

`FireOnLifeLoss` sometimes adds a FIRE step to an agent's step, and its
reset is a reset and a FIRE step. A vector env steps all its games at once
(`AtariVectorEnv.send` takes no env ids), so these extra steps are rounds
of their own for that game, while the group's other games play the agent's
actions: each game has a phase (`PLAY`, `FIRE`, `RESET`, `SERVE`,
`RESTART`) saying what its next round is, and a round's result says which
games completed an agent step (`stepped`) and which began a game
(`started`). A game that ended is reset by ale-py's NEXT_STEP autoreset in
its next round (the action sent is ignored), then served.

Measured with ale-py 0.12.1 (tests/test_vector_env.py):
- `AtariVectorEnv`'s resize and max-pool give the same bytes as gymnasium's
  `AtariPreprocessing` (cv2 INTER_AREA): observations are equal bit for bit,
  no tolerance.
- Its `use_fire_reset` presses FIRE for one frame (the episode frame number
  reads 1 after a reset), where `FireOnLifeLoss` takes a whole 4-frame step:
  reset observations differ. With `use_fire_reset=False` and FIRE sent as an
  ordinary step, they are equal.
- `FireOnLifeLoss`'s extra FIRE step replaces the agent step's frame, so the
  C++ frame stacking (`stack_num`) would stack a frame today's env never
  shows: frames are taken one at a time (`stack_num=1`) and stacked here.
- NEXT_STEP autoreset: the round after a game ends returns its reset screen
  with reward 0, not ended, episode frame number 0, the action ignored.
- One `send`/`recv` per group of 4 games replaced one per game (8 one-game
  vector envs, so that FIRE could step a subset): per 8 env steps the
  Python around ale-py fell from about 3.0 ms to 0.23 ms of the main thread
  (its CPU time; ale-py's threads not counted), with the four frames of a
  pixel shifted as one uint32. Random play needs 3.5% more rounds than agent
  steps (the FIRE, reset and serve rounds).
- A serve whose FIRE ends the game (a 4-frame cap) restarts it unserved,
  as `FireOnLifeLoss.reset` does: same observations; today's env passes
  the reset's seed to that second reset too, so its ALE frame counter
  starts again where the vector env's goes on.
- With sticky actions (0.25) the games diverge from today's env within a
  few steps even when ALE gets the same seed as gymnasium gives it
  (`AtariEnv.seed_game`): the vector env draws stickiness from its own RNG.
  Equality is therefore shown with `repeat_action_probability=0`, and the
  stickiness separately: with 0.25 the same seed and actions play another
  game than with 0, in both envs, and with 0 the seed changes nothing.

`noop_max` > 0 and `terminal_on_life_loss` are not done here (the C++ no-op
starts draw from another RNG than `AtariPreprocessing`'s): `supports` says
so and config.py keeps RLlib's own env runner for them.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from tune_rl.envs import FRAME_STACK, SCORE_KEY, FireOnLifeLoss

SIZE = 84
assert FRAME_STACK == 4 and sys.byteorder == "little", "recv stacks four frames in a uint32"
UNSUPPORTED = {"noop_max": 0, "terminal_on_life_loss": False}  # key: the only value allowed
NOOP, FIRE = 0, FireOnLifeLoss.FIRE
THREADS = 2  # per group: measured best with 2 groups of 4 games on 2 cores
INFO_KEYS = ("lives", "episode_frame_number", "frame_number")  # as gymnasium's AtariEnv gives

# A game's phase: what its next round does.
PLAY = 0     # the agent's action; its result ends an agent step unless a FIRE follows
FIRE_ = 1    # FireOnLifeLoss.step's extra FIRE, the rest of the same agent step
RESET = 2    # the game ended: ale-py's autoreset (action ignored) gives its reset screen
SERVE = 3    # FireOnLifeLoss.reset's FIRE: its screen starts the next game
RESTART = 4  # that FIRE ended the game: the autoreset screen starts it, no FIRE


def supports(env_config: dict[str, Any]) -> bool:
    """Whether `VectorBreakout` plays this env_config as make_breakout does."""
    return all(env_config.get(key, allowed) == allowed for key, allowed in UNSUPPORTED.items())


def ale_seed(seed: int) -> int:
    """The seed ALE gets from gymnasium's `AtariEnv.reset(seed=seed)`."""
    return int(np.int32(np.random.SeedSequence(seed).generate_state(n_words=2)[1]))


class Round(NamedTuple):
    """What one round of a group's games gave, one row per game of the group."""

    games: np.ndarray       # the games' indices
    stepped: np.ndarray     # completed an agent step: obs, reward, ends and info are its
    started: np.ndarray     # began a game: obs and info are its first
    obs: np.ndarray         # (games, 84, 84, 4) uint8; rows of the others are stale
    rewards: np.ndarray     # clipped to -1, 0, 1
    terminated: np.ndarray
    truncated: np.ndarray
    infos: list[dict[str, Any] | None]  # None for games that neither stepped nor started


class VectorBreakout:
    """`num_envs` Breakout games as `make_breakout(env_config)` plays each,
    stepped in `groups` groups (module docstring)."""

    def __init__(self, num_envs: int, env_config: dict[str, Any] | None = None,
                 groups: int = 1):
        from ale_py.vector_env import AtariVectorEnv

        env_config = env_config or {}
        if not supports(env_config):
            raise ValueError(f"VectorBreakout plays only {UNSUPPORTED}; got env_config "
                             f"{env_config}: use envs.make_breakout")
        self.num_envs = num_envs
        self.groups = np.array_split(np.arange(num_envs), min(groups, num_envs))
        self._vectors = [
            AtariVectorEnv(
                "breakout", len(games), num_threads=THREADS, stack_num=1, frameskip=4,
                maxpool=True, img_height=SIZE, img_width=SIZE, grayscale=True, noop_max=0,
                use_fire_reset=False, reward_clipping=False, episodic_life=False,
                repeat_action_probability=float(
                    env_config.get("repeat_action_probability", 0.25)),
                max_num_frames_per_episode=int(env_config.get("max_frames_per_episode",
                                                              108_000)),
                autoreset_mode="NextStep")
            for games in self.groups]
        self.single_observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE, FRAME_STACK),
                                                       np.uint8)
        self.single_action_space = gym.spaces.Discrete(
            self._vectors[0].single_action_space.n)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space,
                                                              num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.phase = np.full(num_envs, RESET, np.int64)
        self._stacks = np.zeros((num_envs, SIZE, SIZE, FRAME_STACK), np.uint8)
        self._pixels = self._stacks.view(np.uint32)[..., 0]  # (num_envs, 84, 84), shared
        self._lives = np.zeros(num_envs, np.int64)
        self._quiet = np.zeros(num_envs, np.int64)
        self._score = np.zeros(num_envs, np.float64)
        self._pending = np.zeros(num_envs, np.float64)  # an agent step's reward before its FIRE

    def observations(self, games: np.ndarray) -> np.ndarray:
        """The stacked frames the agent acts on, for `games` (a copy)."""
        return self._stacks[games]

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Resets every game, game i seeded with `seed + i` as gymnasium's
        vector envs do, and serves; returns the first observations and infos."""
        for g, games in enumerate(self.groups):
            seeds = (np.array([ale_seed(seed + i) for i in games]) if seed is not None
                     else np.full(len(games), -1))
            self._vectors[g].reset(seed=seeds)
            self.phase[games] = SERVE
        infos: list[dict[str, Any] | None] = [None] * self.num_envs
        while any(info is None for info in infos):
            for g, games in enumerate(self.groups):
                if (self.phase[games] != PLAY).any():
                    self.send(g, np.zeros(len(games), np.int64))
                    result = self.recv(g)
                    for j in np.flatnonzero(result.started):
                        infos[games[j]] = result.infos[j]
        return self._stacks.copy(), infos

    def send(self, group: int, actions: np.ndarray) -> None:
        """Starts a round of the group's games: `actions` (one per game) for
        the games in PLAY; the others play their phase's action."""
        phase = self.phase[self.groups[group]]
        sent = np.where(phase == PLAY, actions,
                        np.where((phase == FIRE_) | (phase == SERVE), FIRE, NOOP))
        self._vectors[group].send(sent.astype(np.int64))

    def recv(self, group: int) -> Round:
        """Waits for the round `send` started and applies FireOnLifeLoss,
        ClipRewardKeepScore and StackFrames to its results."""
        games = self.groups[group]
        frames, rewards, terminated, truncated, info = self._vectors[group].recv()
        frames, rewards = frames[:, 0], rewards.astype(np.float64)
        lives = info["lives"].astype(np.int64)
        ended = terminated | truncated
        was = self.phase[games]
        play = was == PLAY
        # FireOnLifeLoss.step: a lost life or a long quiet spell adds a FIRE step.
        life_lost = play & (lives < self._lives[games])
        quiet = np.where(play, np.where((rewards != 0) | life_lost, 0,
                                        self._quiet[games] + 1), self._quiet[games])
        fire = play & ~ended & (life_lost | (quiet >= FireOnLifeLoss.PATIENCE))
        quiet[fire] = 0
        self._quiet[games] = quiet
        self._pending[games[fire]] = rewards[fire]
        stepped = (play & ~fire) | (was == FIRE_)
        rewards = np.where(was == FIRE_, rewards + self._pending[games], rewards)
        started = ((was == SERVE) & ~ended) | (was == RESTART)
        # FireOnLifeLoss.reset: the game that FIRE ended is reset again, not served.
        phase = np.select(
            [fire, stepped & ended, stepped, was == RESET, (was == SERVE) & ended, started],
            [FIRE_, RESET, PLAY, SERVE, RESTART, PLAY], was)
        self.phase[games] = phase
        done = stepped | started
        self._lives[games[done]] = lives[done]
        self._score[games[stepped]] += rewards[stepped]
        self._score[games[started]] = 0.0
        # StackFrames: a pixel's four frames are four adjacent bytes, one
        # uint32 (little-endian: the oldest frame in the low byte), so
        # dropping the oldest and adding the newest is a shift and an or.
        pixels = self._pixels
        s, b = games[stepped], games[started]
        pixels[s] = (pixels[s] >> 8) | (frames[stepped].astype(np.uint32) << 24)
        pixels[b] = frames[started].astype(np.uint32) * 0x01010101
        stacks = self._stacks
        infos: list[dict[str, Any] | None] = [None] * len(games)
        for j in np.flatnonzero(done):
            infos[j] = {key: int(info[key][j]) for key in INFO_KEYS}
            infos[j][SCORE_KEY] = float(self._score[games[j]])
        return Round(games, stepped, started, stacks[games], np.sign(rewards),
                     terminated & stepped, truncated & stepped, infos)

    @property
    def unwrapped(self) -> VectorBreakout:  # as gymnasium envs, for RLlib's env runner
        return self

    def close(self) -> None:
        for vector in self._vectors:
            vector.close()
