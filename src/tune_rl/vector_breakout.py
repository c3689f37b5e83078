"""Breakout for the DQN family, many games stepped at once in ale-py's C++.

Each game plays exactly as `envs.make_breakout` with `stack_frames_in_env`
(its protocol, `envs.PROTOCOL`): the emulator, the frame skip of 4 with the
max of the last two screens and the 84x84 grey resize run in ale-py's
`AtariVectorEnv` threads; the rest (FIRE to serve, reward clipping, the game
score, stacking four frames) is done here in numpy over the batch.

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
- The extra FIRE concerns only some games. `AtariVectorEnv.send` takes no env
  ids: its actions go to the games of the last `recv` (in async mode only
  those, with `batch_size` < `num_envs`), so one vector env cannot step an
  arbitrary subset. Each game is therefore its own one-game `AtariVectorEnv`
  (one C++ thread each): sending to all, then receiving from all, steps them
  in parallel, and a subset is stepped by sending to that subset only. On 2
  cores 8 one-game vector envs stepped 4,000-4,600 steps/s against 2,600-
  3,600/s for one eight-game vector env in the same minute.
- With sticky actions (0.25) the games diverge from today's env within a
  few steps even when ALE gets the same seed as gymnasium gives it
  (`AtariEnv.seed_game`): the vector env draws stickiness from its own RNG.
  Equality is therefore shown with `repeat_action_probability=0`, and the
  stickiness separately: with 0.25 the same seed and actions play another
  game than with 0, in both envs, and with 0 the seed changes nothing.
- Untested: a reset whose FIRE step ends the game (`FireOnLifeLoss` then
  resets again without FIRE); it did not occur in the games played.

`noop_max` > 0 and `terminal_on_life_loss` are not done here (the C++ no-op
starts draw from another RNG than `AtariPreprocessing`'s): `supports` says
so and config.py keeps RLlib's own env runner for them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from tune_rl.envs import FRAME_STACK, SCORE_KEY, FireOnLifeLoss

SIZE = 84
UNSUPPORTED = {"noop_max": 0, "terminal_on_life_loss": False}  # key: the only value allowed


def supports(env_config: dict[str, Any]) -> bool:
    """Whether `VectorBreakout` plays this env_config as make_breakout does."""
    return all(env_config.get(key, allowed) == allowed for key, allowed in UNSUPPORTED.items())


def ale_seed(seed: int) -> int:
    """The seed ALE gets from gymnasium's `AtariEnv.reset(seed=seed)`."""
    return int(np.int32(np.random.SeedSequence(seed).generate_state(n_words=2)[1]))


class VectorBreakout:
    """`num_envs` Breakout games as `make_breakout(env_config)` plays each, stacked uint8 frames.

    `step` returns each game's observation after the step, also where the
    game ended; the caller resets those with `reset(indices)`.
    """

    def __init__(self, num_envs: int, env_config: dict[str, Any] | None = None):
        from ale_py.vector_env import AtariVectorEnv

        env_config = env_config or {}
        if not supports(env_config):
            raise ValueError(f"VectorBreakout plays only {UNSUPPORTED}; got env_config "
                             f"{env_config}: use envs.make_breakout")
        self.num_envs = num_envs
        self.repeat_action_probability = float(
            env_config.get("repeat_action_probability", 0.25))
        self._games = [
            AtariVectorEnv(
                "breakout", 1, num_threads=1, stack_num=1, frameskip=4, maxpool=True,
                img_height=SIZE, img_width=SIZE, grayscale=True, noop_max=0,
                use_fire_reset=False, reward_clipping=False, episodic_life=False,
                repeat_action_probability=self.repeat_action_probability,
                max_num_frames_per_episode=int(env_config.get("max_frames_per_episode",
                                                              108_000)))
            for _ in range(num_envs)]
        self.single_observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE, FRAME_STACK),
                                                       np.uint8)
        self.single_action_space = gym.spaces.Discrete(
            self._games[0].single_action_space.n)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space,
                                                              num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        # Each game's stacked frames, replaced at every step, never changed in
        # place: returned observations stay as they were.
        self._stacks = [np.zeros((SIZE, SIZE, FRAME_STACK), np.uint8)] * num_envs
        self._lives = np.zeros(num_envs, np.int64)
        self._quiet = np.zeros(num_envs, np.int64)
        self._score = np.zeros(num_envs, np.float64)

    def _send(self, index: int, action: int) -> None:
        self._games[index].ale.send([action], [1.0])

    def _recv(self, index: int) -> tuple[np.ndarray, int, bool, bool, dict[str, int]]:
        obs, reward, terminated, truncated, info = self._games[index].ale.recv()
        return (obs[0, 0], int(reward[0]), bool(terminated[0]), bool(truncated[0]),
                {"lives": int(info["lives"][0]),
                 "episode_frame_number": int(info["episode_frame_number"][0]),
                 "frame_number": int(info["frame_number"][0])})

    def _step_some(self, indices, actions) -> list:
        for i, a in zip(indices, actions, strict=True):
            self._send(i, int(a))
        return [self._recv(i) for i in indices]

    def reset(self, indices=None, seed: int | None = None
              ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Resets the games at `indices` (all by default), game i seeded with
        `seed + i` as gymnasium's vector envs do; returns their observations
        and infos, in `indices` order."""
        indices = range(self.num_envs) if indices is None else list(indices)
        infos = []
        for i in indices:
            game = self._games[i]
            seeds = np.array([ale_seed(seed + i) if seed is not None else -1])
            game.reset(options={"reset_mask": np.ones(1, bool)}, seed=seeds)
            # FireOnLifeLoss.reset: FIRE as a whole step; a second reset if that ends it.
            self._send(i, FireOnLifeLoss.FIRE)
            frame, _, terminated, truncated, info = self._recv(i)
            if terminated or truncated:
                obs, reset_info = game.reset(options={"reset_mask": np.ones(1, bool)},
                                             seed=np.array([-1]))
                frame = obs[0, 0]
                info = {k: int(reset_info[k][0])
                        for k in ("lives", "episode_frame_number", "frame_number")}
            self._stacks[i] = np.repeat(frame[..., None], FRAME_STACK, axis=-1)
            self._lives[i], self._quiet[i], self._score[i] = info["lives"], 0, 0.0
            info[SCORE_KEY] = 0.0
            infos.append(info)
        return np.stack([self._stacks[i] for i in indices]), infos

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                 np.ndarray, list[dict[str, Any]]]:
        """One agent step of every game: stacked observations, clipped
        rewards, terminated, truncated, and one info dict per game."""
        every = np.arange(self.num_envs)
        self.step_async(actions, every)
        return self.step_wait(every)

    def step_async(self, actions: np.ndarray, indices: np.ndarray) -> None:
        """Starts one agent step of the games at `indices`; ale-py's threads
        play them while the caller goes on (computing other games' actions)."""
        for i, a in zip(indices, actions, strict=True):
            self._send(i, int(a))

    def step_wait(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                      np.ndarray, list[dict[str, Any]]]:
        """Finishes the step `step_async` started for `indices`: as `step`, for those games."""
        results = [self._recv(i) for i in indices]
        frames = [r[0] for r in results]
        rewards = np.array([r[1] for r in results], np.float64)
        terminated = np.array([r[2] for r in results])
        truncated = np.array([r[3] for r in results])
        infos = [r[4] for r in results]
        lives = np.array([info["lives"] for info in infos])
        # FireOnLifeLoss.step, over the batch.
        life_lost = lives < self._lives[indices]
        quiet = np.where((rewards != 0) | life_lost, 0, self._quiet[indices] + 1)
        fire = ~(terminated | truncated) & (life_lost | (quiet >= FireOnLifeLoss.PATIENCE))
        if fire.any():
            again = np.flatnonzero(fire)
            fired = self._step_some(indices[again], [FireOnLifeLoss.FIRE] * len(again))
            for j, (frame, more, term, trunc, info) in zip(again, fired, strict=True):
                frames[j], infos[j] = frame, info
                rewards[j] += more
                terminated[j], truncated[j] = term, trunc
                lives[j] = info["lives"]
            quiet[fire] = 0
        self._quiet[indices], self._lives[indices] = quiet, lives
        # ClipRewardKeepScore and StackFrames.
        self._score[indices] += rewards
        obs = np.empty((len(indices), SIZE, SIZE, FRAME_STACK), np.uint8)
        for j, i in enumerate(indices):
            infos[j][SCORE_KEY] = float(self._score[i])
            obs[j, ..., :-1] = self._stacks[i][..., 1:]
            obs[j, ..., -1] = frames[j]
            self._stacks[i] = obs[j]
        return obs, np.sign(rewards), terminated, truncated, infos

    @property
    def unwrapped(self) -> VectorBreakout:  # as gymnasium envs, for RLlib's env runner
        return self

    def close(self) -> None:
        for game in self._games:
            game.close()
