"""Greedy evaluation of a policy over complete games, without bias toward short ones.

    result = evaluate(policy_module(algo), preset, env, episodes=10,
                      seed=evaluation_seed(trial_seed, env_steps))
    result.mean, result.interval      # real game scores: 95% interval of the mean

Our own loop, not RLlib's evaluation, because of what RLlib 2.60 does there:
- `EnvRunner.sample(num_episodes=N)` on a runner with several envs returns the
  first N episodes to *finish*: over 3 episodes with 8 envs it keeps the 3
  shortest games, the bad ones in Breakout. With a toy env whose return is
  its length (true mean 104.5): 1 env 102.6, 8 envs 54.1.
- It resets with the same seed at every call (the config's seed plus the
  worker index), so every evaluation replays the same games.
- The evaluation config inherits `num_envs_per_env_runner` and, for PPO,
  IMPALA and APPO, `explore=True`.

Here every game is assigned up front (game k is reset with a seed derived
from `(seed, k)`) and played to its end, whichever env plays it and however
many envs play at once; actions for all unfinished games come from one batched
forward pass. The games are therefore the same for any `num_envs` (the
scores too, but for float rounding in batched forward passes), and two
evaluations with different seeds see different games.

Greedy for all ten presets: the DQN family's `forward_inference` takes the
argmax of the Q-values with no epsilon (RLlib's DefaultDQNTorchRLModule) and
with the noisy layers at their mean (networks.py); for PPO, IMPALA and APPO
the action is RLlib's own `explore=False` choice, the deterministic form of
the inference action distribution (the argmax of the logits for Breakout's
discrete actions).

The observation is the one the module trained on (config.policy_observation_space).
The DQN family's env stacks uint8 frames itself. For PPO, IMPALA and APPO RLlib's
FrameStackingEnvToModule stacks single float frames, and it fills the slots
before a game's first frame with zeros (`get_observations(..., fill=0.0)`),
where envs.StackFrames repeats the first frame: this loop stacks as the
connector does, zeros included.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns

from tune_rl.config import policy_observation_space
from tune_rl.envs import SCORE_KEY, EnvChoice
from tune_rl.presets import Preset

# Machado et al. 2018 (and ALE v5's default): a game ends after 108,000
# frames, 30 minutes of play at 60 frames/s, 27,000 agent steps of 4 frames.
MAX_FRAMES_PER_GAME = 108_000


@dataclass(frozen=True)
class EvalResult:
    """The games of one evaluation, in game order (game k was reset with seed `k`
    derived from `seed`)."""

    scores: tuple[float, ...]  # real game scores (Breakout: unclipped); returns elsewhere
    lengths: tuple[int, ...]  # agent steps per game (Breakout: 4 frames each)
    capped: int  # games ended by the cap rather than by the game
    cap: int
    cap_unit: str  # "frames" (Atari, counted by ALE, reset no-ops included) or "env steps"
    env_steps: int  # agent steps of all games: evaluation's cost, not training's
    seconds: float
    seed: int

    @property
    def episodes(self) -> int:
        return len(self.scores)

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def interval(self) -> tuple[float, float]:
        """95% confidence interval of the mean score (Student's t)."""
        return confidence_interval(self.scores)


def format_evaluation(result: EvalResult) -> str:
    """Each game's score and length, then the mean and its 95% interval."""
    unit = "agent steps" if result.cap_unit == "frames" else "env steps"
    lines = [f"game  score  {unit}"]
    lines += [f"{game:<4}  {score:<5g}  {length:,}" for game, (score, length)
              in enumerate(zip(result.scores, result.lengths, strict=True), start=1)]
    low, high = result.interval
    lines.append(f"mean {result.mean:.4g}, 95% interval [{low:.4g}, {high:.4g}] over "
                 f"{result.episodes} games ({result.capped} capped at {result.cap:,} "
                 f"{result.cap_unit}); {result.env_steps:,} {unit} in {result.seconds:.1f} s")
    return "\n".join(lines)


def confidence_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student's t interval of the mean of `values`; NaNs for fewer than two values.

        >>> confidence_interval([1.0, 2.0, 3.0])   # (-0.48..., 4.48...)
    """
    from scipy import stats

    n = len(values)
    if n < 2:
        return (math.nan, math.nan)
    mean = float(np.mean(values))
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * np.std(values, ddof=1) / math.sqrt(n))
    return (mean - half, mean + half)


def evaluation_seed(trial_seed: int, env_steps: int) -> int:
    """A seed for the evaluation of a trial at `env_steps`: reproducible, and
    different at every evaluation of the trial and for every trial seed."""
    return int(np.random.SeedSequence([trial_seed, env_steps]).generate_state(1)[0])


def game_seed(seed: int, game: int) -> int:
    """The reset seed of game `game` of an evaluation with `seed`."""
    return int(np.random.SeedSequence(seed, spawn_key=(game,)).generate_state(1)[0])


def greedy_actions(module, obs: torch.Tensor) -> torch.Tensor:
    """The module's greedy actions for a batch of observations.

    DQN modules return their actions (argmax Q, epsilon unused, noise off);
    policy-gradient modules return logits, turned into actions as RLlib does
    with `explore=False`: the deterministic form of the inference distribution.
    """
    with torch.no_grad():
        out = module.forward_inference({Columns.OBS: obs})
    if Columns.ACTIONS in out:
        return out[Columns.ACTIONS]
    dist = module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
    return dist.to_deterministic().sample()


def policy_module(algo) -> Any:
    """The RLModule holding `algo`'s latest trained weights, for `evaluate`.

    Not `Algorithm.get_module()`: in RLlib 2.60 that is the local env runner's
    module (or, without one, a copy pickled from remote env runner 1), whose
    weights are synced from the learner only when the algorithm says so:
    PPO and DQN sync it after every update, but IMPALA and APPO push weights
    to the env runners every `broadcast_interval` updates, and with remote
    env runners the local one is never updated (seen here: after two IMPALA
    iterations on CartPole the env runner's weights differ from the
    learner's). The learner's module is the source of truth:
    - a local learner (`num_learners=0`, PPO's and DQN's default) that
      updates only inside `train()`: the learner's own module, no copy (on
      the learner's device, a GPU where `gpus_per_learner > 0`; `evaluate`
      moves observations there);
    - remote learners (IMPALA's and APPO's default `num_learners=1`), or an
      IMPALA/APPO learner, which updates in a background thread even when
      local (impala_learner.py's `_LearnerThread`): a snapshot of the
      learner's inference-only weights (`LearnerGroup.get_state`, numpy, so a
      GPU learner's weights load on a CPU-only driver) set into a copy of the
      env runner's module, leaving the module that samples untouched.
    """
    from ray.rllib.algorithms.impala.impala_learner import IMPALALearner

    learners = algo.learner_group
    if learners.is_local:
        (learner,) = [r.get() for r in learners.foreach_learner(lambda learner: learner)]
        if not isinstance(learner, IMPALALearner):
            return learner.module[DEFAULT_MODULE_ID]
    path = f"learner/rl_module/{DEFAULT_MODULE_ID}"
    state = learners.get_state(components=path, inference_only=True)
    sampler = algo.get_module()  # without a local env runner, already a copy
    module = copy.deepcopy(sampler) if algo.env_runner is not None else sampler
    module.set_state(state["learner"]["rl_module"][DEFAULT_MODULE_ID])
    return module


class _PolicyInput:
    """Turns one env's observations into what the module takes.

    PPO, IMPALA and APPO on Atari: the last four float frames, zeros
    before the first, as FrameStackingEnvToModule gives them. Otherwise the
    env's observation as it is (the DQN family's env stacks its own frames).
    """

    def __init__(self, preset: Preset, env_choice: EnvChoice):
        space = policy_observation_space(preset, env_choice)
        self._dtype = space.dtype
        self._stack = np.zeros(space.shape, space.dtype) if (
            env_choice.atari and not preset.is_dqn) else None

    def reset(self, obs) -> np.ndarray:
        if self._stack is not None:
            self._stack[:] = 0
        return self.step(obs)

    def step(self, obs) -> np.ndarray:
        if self._stack is None:
            return np.asarray(obs, dtype=self._dtype)
        self._stack[..., :-1] = self._stack[..., 1:]
        self._stack[..., -1:] = obs
        return self._stack.copy()


@contextmanager
def _eval_mode(module) -> Iterator[None]:
    """The module in eval mode (the learner's module trains between calls)."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def evaluate(module, preset: Preset, env_choice: EnvChoice, *, episodes: int, seed: int,
             max_frames_per_game: int = MAX_FRAMES_PER_GAME, num_envs: int = 8,
             env_config: dict[str, Any] | None = None,
             watch: Callable[[int, gym.Env, float], None] | None = None) -> EvalResult:
    """Plays `episodes` complete games greedily and returns their real scores.

    `max_frames_per_game` caps each game so that a stalled agent cannot hang a
    trial: on Atari in frames, counted by ALE (`max_num_frames_per_episode`,
    reset no-ops included; 108,000 = 27,000 agent steps), elsewhere in env
    steps counted here (an env's own time limit, such as CartPole's 500,
    is the game's end, not the cap). A capped game counts with its score so
    far and is reported in `capped`. `env_config` is the sweep's (sticky
    actions and so on), as in training, except that a lost life never ends a
    game. `seed` must be a non-negative integer.

    `watch(game, env, score)`, if given, is called after each reset and each
    step of every game, with its env made with `render_mode="rgb_array"` so
    that `env.render()` gives the colour screen (watch.py records a GIF).
    Rendering is on request only: what the policy observes does not change.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    if max_frames_per_game < 1:
        raise ValueError(f"max_frames_per_game must be at least 1, got {max_frames_per_game}")
    started = time.perf_counter()
    atari = env_choice.atari
    config = {**(env_config or {}), "stack_frames_in_env": atari and preset.is_dqn}
    # A lost life ends an episode only for learning: evaluation plays whole games.
    config.pop("terminal_on_life_loss", None)
    if atari:  # whole games, whatever episodes training ends (terminal_on_life_loss)
        config["terminal_on_life_loss"] = False
    if atari:
        config["max_frames_per_episode"] = max_frames_per_game
    if watch is not None:
        config["render_mode"] = "rgb_array"
    envs: list[gym.Env] = [env_choice.make(config) for _ in range(min(num_envs, episodes))]
    inputs = [_PolicyInput(preset, env_choice) for _ in envs]
    scores, lengths = [0.0] * episodes, [0] * episodes
    capped = [False] * episodes
    playing: list[int | None] = [None] * len(envs)  # the game each env plays
    current: list[np.ndarray | None] = [None] * len(envs)
    returns = [0.0] * len(envs)
    unstarted = iter(range(episodes))

    def start_next(i: int) -> None:
        game = next(unstarted, None)
        playing[i] = game
        if game is not None:
            obs, _ = envs[i].reset(seed=game_seed(seed, game))
            current[i], returns[i] = inputs[i].reset(obs), 0.0
            if watch is not None:
                watch(game, envs[i], 0.0)

    device = next(module.parameters()).device
    try:
        with _eval_mode(module):
            for i in range(len(envs)):
                start_next(i)
            while active := [i for i, game in enumerate(playing) if game is not None]:
                obs = torch.from_numpy(np.stack([current[i] for i in active])).to(device)
                actions = greedy_actions(module, obs).cpu().numpy()
                for i, action in zip(active, actions, strict=True):
                    game = playing[i]
                    obs, reward, terminated, truncated, info = envs[i].step(action)
                    lengths[game] += 1
                    returns[i] += float(reward)
                    scores[game] = float(info.get(SCORE_KEY, returns[i]))
                    if watch is not None:
                        watch(game, envs[i], scores[game])
                    if atari:  # ALE's frame limit is Breakout's only truncation
                        capped[game] = truncated and not terminated
                    else:
                        capped[game] = not (terminated or truncated) and (
                            lengths[game] >= max_frames_per_game)
                    if terminated or truncated or capped[game]:
                        start_next(i)
                    else:
                        current[i] = inputs[i].step(obs)
    finally:
        for env in envs:
            env.close()
    return EvalResult(
        scores=tuple(scores), lengths=tuple(lengths), capped=sum(capped),
        cap=max_frames_per_game, cap_unit="frames" if atari else "env steps",
        env_steps=sum(lengths), seconds=time.perf_counter() - started, seed=seed)

