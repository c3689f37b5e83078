"""The DQN family's env runner for Breakout: RLlib's, sampling in batches.

RLlib's `SingleAgentEnvRunner` (Ray 2.60) spends most of its time per env
step outside the emulator: it adds each step to an episode object, runs the
env-to-module and module-to-env connector pipelines and the per-step
callbacks, env by env. Measured in one `make bench` run on 2 cores, DQN
sampled 920 env steps/s with 8 envs where ale-py's vector env alone steps
5,477/s. `VectorEnvRunner` keeps RLlib's runner (module, weights sync,
`get_state`/`set_state`, checkpoints, metrics, `sample()`'s arguments) and
replaces two things:

- the env: `VectorBreakout`, the same games as `make_breakout` stepped in
  ale-py's C++ threads (vector_breakout.py);
- `_sample`: the envs in two groups, taken in turn: a batched forward pass
  of the module for one group's observations (its `_forward_exploration`
  with the timestep RLlib passes, so epsilon schedules and noisy nets
  behave as in RLlib's runner; the forward pass runs for every step, also
  at epsilon 1), that group's games started in ale-py's threads, then the
  other group's results taken. Steps are kept in plain lists per env; the
  `SingleAgentEpisode` chunks are built once per `sample()` call, with the
  same content as RLlib's (observations, actions, rewards, infos with
  `game_score`, terminated/truncated, `weights_seq_no`) and the same
  episode ids across calls, so the replay buffer joins the chunks as before.

Measured on 2 cores shared with other work (same process, back to back,
`algo.train()` of DQN before learning starts, 8 envs): 1,550-1,610 env
steps/s against 3,450-3,900 for `AtariVectorEnv` alone (0.42-0.46), where
RLlib's runner made 864 (0.24). Per 8 env steps of CPU time: the vector env
2.3 ms, `VectorBreakout` (one thread per game, Python per game) 3.0 ms,
the Q-network's forward pass 1.3-1.6 ms (one torch thread), the whole
sampling iteration 5.8-7.0 ms. Two groups cost about 10% more CPU than one
(two forward passes of 4 instead of one of 8, more thread wake-ups) and
pay back only where a core is free to overlap them: on that loaded machine
one and two groups sampled equally fast.

What it does not do, where RLlib's runner does:
- connectors: the module gets the observations as a tensor (what RLlib's
  default env-to-module pipeline gives it for the DQN family's uint8
  frames) and returns actions; connector pipelines are not run
  (build_config sets none for the DQN family).
- callbacks: only `on_environment_created`, `on_episode_end` (with the
  episode's last chunk, as RLlib passes it; `ScoreCallback` reads the game
  score there) and `on_sample_end` are called, not the per-step ones.
- a game that ends is reset within the same step: RLlib's vector env
  resets it at the next step (gymnasium's NEXT_STEP autoreset), a round
  in which that env samples nothing.
- env_config it does not play (`vector_breakout.supports`): config.py keeps
  RLlib's runner for those.
"""

from __future__ import annotations

import copy
import time
import uuid

import numpy as np
import torch
from ray.rllib.callbacks.utils import make_callback
from ray.rllib.core.columns import Columns
from ray.rllib.env.env_context import EnvContext
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer
from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO

from tune_rl.vector_breakout import VectorBreakout

GROUPS = 2  # groups of envs taken in turn (module docstring)


class RunnerEpisode(SingleAgentEpisode):
    """RLlib's episode, deep-copied without copying what no one changes.

    RLlib's replay buffers deep-copy every chunk they are given
    (EpisodeReplayBuffer.add). Of a 4-step Breakout chunk, the spaces (a
    Box of 84x84x4 carries its bounds and a random generator) and the
    observations (never written after the step that made them) are most of
    the work: measured 0.45 ms per copy with `copy.deepcopy`, 0.10 ms with
    the spaces shared. Here the spaces and observation arrays are shared and
    every container (the lists, the info dicts) is new, so appending to or
    editing the copy leaves the original as it was.
    """

    __slots__ = ()
    SHARED = ("_observation_space", "_action_space", "_last_added_observation")

    def __deepcopy__(self, memo: dict) -> RunnerEpisode:
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        _, slots = self.__getstate__()
        for name, value in slots.items():
            if isinstance(value, InfiniteLookbackBuffer):
                value = _copied_buffer(value)
            elif name == "extra_model_outputs":
                value = {key: _copied_buffer(buffer) for key, buffer in value.items()}
            elif name not in self.SHARED:
                value = copy.deepcopy(value, memo)
            object.__setattr__(clone, name, value)
        return clone


def _copied_buffer(buffer: InfiniteLookbackBuffer) -> InfiniteLookbackBuffer:
    clone = copy.copy(buffer)  # the space shared
    if isinstance(buffer.data, list):
        clone.data = [dict(x) if isinstance(x, dict) else x for x in buffer.data]
    else:
        clone.data = copy.deepcopy(buffer.data)
    return clone


class _Chunk:
    """One env's steps since its episode started or its last chunk was returned."""

    def __init__(self, obs: np.ndarray, info: dict, episode_id: str | None = None,
                 t_started: int = 0):
        self.id_ = episode_id or uuid.uuid4().hex
        self.t_started = t_started
        self.observations, self.infos = [obs], [info]
        self.actions: list[int] = []
        self.rewards: list[float] = []
        self.seq_nos: list[int] = []
        self.start_time = time.perf_counter()
        self.last_step_time: float | None = None

    def episode(self, runner: VectorEnvRunner, terminated: bool = False,
                truncated: bool = False) -> SingleAgentEpisode:
        episode = RunnerEpisode(
            self.id_, observations=self.observations, infos=self.infos,
            actions=self.actions, rewards=self.rewards,
            extra_model_outputs={WEIGHTS_SEQ_NO: self.seq_nos},
            terminated=terminated, truncated=truncated, t_started=self.t_started,
            len_lookback_buffer=0,
            observation_space=runner.env.single_observation_space,
            action_space=runner.env.single_action_space)
        # As RLlib's runner times its episodes (episode_duration_sec_mean).
        episode._start_time, episode._last_step_time = self.start_time, self.last_step_time
        return episode.to_numpy() if runner.episodes_to_numpy else episode

    def next_chunk(self) -> _Chunk:
        return _Chunk(self.observations[-1], self.infos[-1], self.id_,
                      self.t_started + len(self.actions))


class VectorEnvRunner(SingleAgentEnvRunner):
    """RLlib's single-agent env runner over `VectorBreakout`, stepping all envs at once."""

    def make_env(self) -> None:
        if self.env is not None:
            self.env.close()
        env_config = dict(self.config.env_config)
        self.env = VectorBreakout(self.config.num_envs_per_env_runner, env_config)
        self.num_envs = self.env.num_envs
        self._needs_initial_reset = True
        self._chunks: list[_Chunk] = []
        make_callback(
            "on_environment_created", callbacks_objects=self._callbacks,
            callbacks_functions=self.config.callbacks_on_environment_created,
            kwargs=dict(env_runner=self, metrics_logger=self.metrics, env=self.env,
                        env_context=EnvContext(env_config, worker_index=self.worker_index,
                                               num_workers=self.num_workers)))

    def _reset_all(self) -> None:
        seed = self._seed if self._needs_initial_reset else None
        obs, infos = self.env.reset(seed=seed)
        self._chunks = [_Chunk(obs[i], infos[i]) for i in range(self.num_envs)]
        self._ongoing_episodes_for_metrics.clear()
        self._needs_initial_reset = False

    def _actions(self, group: np.ndarray, explore: bool, random_actions: bool,
                 ts: int) -> np.ndarray:
        if random_actions:
            return np.array([self.env.single_action_space.sample() for _ in group])
        obs = np.stack([self._chunks[i].observations[-1] for i in group])
        batch = {Columns.OBS: torch.from_numpy(obs).to(self._device)}
        # The module's own forward passes, as `forward_exploration` and
        # `forward_inference` run them, without their switch to eval mode and
        # back at every call (two walks over the module: 0.35 of 1.6 ms per
        # batch of 8 on one core); _sample puts it in eval mode once.
        with torch.no_grad():
            if explore:
                # As RLlib's runner: global env steps, counted over all env runners.
                runners = self.config.num_env_runners or 1
                t = (self.num_env_steps_sampled_lifetime // runners + ts) * runners
                out = self.module._forward_exploration(batch, t=t)
            else:
                out = self.module._forward_inference(batch)
        return out[Columns.ACTIONS].cpu().numpy()

    def _sample(self, *, num_timesteps: int | None = None, num_episodes: int | None = None,
                explore: bool, random_actions: bool = False,
                force_reset: bool = False) -> list[SingleAgentEpisode]:
        if force_reset or num_episodes is not None or self._needs_initial_reset:
            self._reset_all()
        if self.module is not None:
            self.module.eval()
        ts = eps = 0
        done: list[SingleAgentEpisode] = []
        seq_no = self._weights_seq_no
        # Two groups of envs in turn: one group's games run in ale-py's
        # threads while the module computes the other group's actions.
        groups = np.array_split(np.arange(self.num_envs), min(GROUPS, self.num_envs))
        in_flight: dict[int, np.ndarray] = {}

        def launch(g: int) -> None:
            in_flight[g] = self._actions(groups[g], explore, random_actions, ts)
            self.env.step_async(in_flight[g], groups[g])

        def wanted() -> bool:  # more steps to start: as RLlib's runner, no more than needed
            if num_timesteps is None:
                return eps < num_episodes
            return ts + sum(len(groups[h]) for h in in_flight) < num_timesteps

        k = 0
        while wanted() or in_flight:
            g, following = k % len(groups), (k + 1) % len(groups)
            k += 1
            for h in (g, following):
                if h not in in_flight and wanted():
                    launch(h)
            if g not in in_flight:
                continue
            actions, group = in_flight.pop(g), groups[g]
            obs, rewards, terminated, truncated, infos = self.env.step_wait(group)
            now = time.perf_counter()
            for j, i in enumerate(group):
                chunk = self._chunks[i]
                chunk.observations.append(obs[j])
                chunk.infos.append(infos[j])
                chunk.actions.append(int(actions[j]))
                chunk.rewards.append(float(rewards[j]))
                chunk.seq_nos.append(seq_no)
                chunk.last_step_time = now
            ts += len(group)
            ended = np.flatnonzero(terminated | truncated)
            for j in ended:
                i = int(group[j])
                episode = self._chunks[i].episode(self, bool(terminated[j]),
                                                  bool(truncated[j]))
                self._make_episode_end_callback(episode, i)
                done.append(episode)
                eps += 1
            if len(ended):
                obs, reset_infos = self.env.reset(group[ended])
                for j, i in enumerate(group[ended]):
                    self._chunks[i] = _Chunk(obs[j], reset_infos[j])
        if num_episodes is not None:
            # As RLlib's runner: the first `num_episodes` to end; a reset next time.
            done = done[:num_episodes]
            self._needs_initial_reset = True
            ongoing = []
        else:
            ongoing = []
            for i, chunk in enumerate(self._chunks):
                if not chunk.actions:
                    continue
                episode = chunk.episode(self)
                self._ongoing_episodes_for_metrics[chunk.id_].append(episode)
                ongoing.append(episode)
                self._chunks[i] = chunk.next_chunk()
        self._done_episodes_for_metrics.extend(done)
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=ts)
        self._increase_sampled_metrics(ts, len(done))
        return done + ongoing

    def _make_episode_end_callback(self, episode: SingleAgentEpisode, env_index: int) -> None:
        make_callback(
            "on_episode_end", callbacks_objects=self._callbacks,
            callbacks_functions=self.config.callbacks_on_episode_end,
            kwargs=dict(episode=episode, env_runner=self, metrics_logger=self.metrics,
                        env=self.env, rl_module=self.module, env_index=env_index,
                        prev_episode_chunks=self._ongoing_episodes_for_metrics[episode.id_]))
