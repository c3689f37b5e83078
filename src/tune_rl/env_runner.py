"""The DQN family's env runner for Breakout: RLlib's, sampling in batches.

RLlib's `SingleAgentEnvRunner` (Ray 2.60) spends most of its time per env
step outside the emulator: it adds each step to an episode object, runs the
env-to-module and module-to-env connector pipelines and the per-step
callbacks, env by env. Measured in one `make bench` run on 2 cores, DQN
sampled 920 env steps/s with 8 envs where ale-py's vector env alone steps
5,477/s. `VectorEnvRunner` keeps RLlib's runner (module, weights sync,
`get_state`/`set_state`, checkpoints, metrics, `sample()`'s arguments) and
replaces three things:

- the env: `VectorBreakout`, the same games as `make_breakout` in two
  groups of ale-py C++ vector envs (vector_breakout.py);
- `_sample`: the groups taken in turn: one group's games run in ale-py's
  threads while the module computes the other group's actions. Steps are
  kept in plain lists per env; the `SingleAgentEpisode` chunks are built
  once per `sample()` call, with the same content as RLlib's (observations,
  actions, rewards, infos with `game_score`, terminated/truncated,
  `weights_seq_no`) and the same episode ids across calls, so the replay
  buffer joins the chunks as before;
- exploration: `epsilon_greedy` draws RLlib's epsilon-greedy choice first
  and runs the Q-network only for the envs that act greedily (RLlib's module
  computes every env's Q-values, then discards those of the random ones).
  Epsilon comes from the module's own schedule at RLlib's timestep; noisy
  nets (epsilon 0) run it for every env, with their noise.

Measured on 2 cores (8 envs, DQN before learning starts, `make bench` and
benchmarks/results/full.md for the figures of record): `VectorBreakout`'s
own Python costs 0.23 ms of the main thread per 8 env steps (one
`send`/`recv` per group of 4; 3.0 ms with one vector env per game). The
rest of the main thread's time goes to the Q-network (compute-bound: 0.85 ms
per batch of 4, about 88 GFLOP/s on one core, so 1.7 ms per 8 env steps at
epsilon 0.01), RLlib's replay buffer add and metrics (about 0.5 ms per 8
steps), and the per-step bookkeeping here. At epsilon 0.01 the forward
pass costs 0.7 of the emulator's CPU time (1.7 against 2.5 core-ms per 8
steps): were the two perfectly overlapped on 2 cores, with nothing else
to do, sampling would reach 0.59 of the vector env's rate; the replay add
and metrics take that to about 0.5 (the bench's
`dqn_sampling_8_greedy_bound_env_steps_per_s` is the first bound).

What it does not do, where RLlib's runner does:
- connectors: the module gets the observations as a tensor (what RLlib's
  default env-to-module pipeline gives it for the DQN family's uint8
  frames) and returns actions; connector pipelines are not run
  (build_config sets none for the DQN family).
- callbacks: only `on_environment_created`, `on_episode_end` (with the
  episode's last chunk, as RLlib passes it; `ScoreCallback` reads the game
  score there) and `on_sample_end` are called, not the per-step ones.
- a game that ends is reset (and served) in the next rounds of its group,
  rounds in which that env samples nothing, as RLlib's vector env resets
  it at the next step (gymnasium's NEXT_STEP autoreset).
- env_config it does not play (`vector_breakout.supports`): config.py keeps
  RLlib's runner for those.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable

import numpy as np
import torch
from ray.rllib.callbacks.utils import make_callback
from ray.rllib.env.env_context import EnvContext
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer
from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO

from tune_rl.vector_breakout import PLAY, VectorBreakout

GROUPS = 2  # groups of envs taken in turn (module docstring); 4 or 8 measured slower


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


def epsilon_greedy(rng: np.random.Generator, greedy: Callable[[np.ndarray], np.ndarray],
                   n: int, num_actions: int, epsilon: float) -> np.ndarray:
    """Epsilon-greedy actions for `n` observations, `greedy(rows)` giving the
    argmax actions of the rows that act greedily.

    The same distribution as RLlib's DQN module (`_forward_exploration`: a
    uniform action where a uniform draw is below epsilon, else the argmax),
    but the Q-network runs only for the greedy rows: none at epsilon 1 (the
    DQN presets' first 20,000 steps), all at epsilon 0 (noisy nets).
    """
    actions = rng.integers(num_actions, size=n)
    rows = np.flatnonzero(rng.random(n) >= epsilon)
    if len(rows):
        actions[rows] = greedy(rows)
    return actions


class VectorEnvRunner(SingleAgentEnvRunner):
    """RLlib's single-agent env runner over `VectorBreakout`, stepping groups of envs at once."""

    def make_env(self) -> None:
        if self.env is not None:
            self.env.close()
        env_config = dict(self.config.env_config)
        self.env = VectorBreakout(self.config.num_envs_per_env_runner, env_config, GROUPS)
        self.num_envs = self.env.num_envs
        self._needs_initial_reset = True
        self._chunks: list[_Chunk | None] = []
        self._rng = np.random.default_rng(self._seed)
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

    def _actions(self, games: np.ndarray, explore: bool, random_actions: bool,
                 ts: int) -> np.ndarray:
        num_actions = self.env.single_action_space.n
        if random_actions:
            return self._rng.integers(num_actions, size=len(games))

        def greedy(rows: np.ndarray) -> np.ndarray:
            obs = torch.from_numpy(self.env.observations(games[rows])).to(self._device)
            # The module's own Q-values, without forward_exploration's switch
            # to eval mode and back at every call (two walks over the module:
            # 0.35 of 1.6 ms per batch of 8 on one core); _sample puts it in
            # eval mode once. Noisy nets keep their noise while exploring.
            with torch.no_grad():
                return self.module.greedy_actions(obs, noise=explore).cpu().numpy()

        if not explore:
            return greedy(np.arange(len(games)))
        # As RLlib's runner: global env steps, counted over all env runners.
        runners = self.config.num_env_runners or 1
        t = (self.num_env_steps_sampled_lifetime // runners + ts) * runners
        self.module.epsilon_schedule.update(t)
        return epsilon_greedy(self._rng, greedy, len(games), num_actions,
                              float(self.module.epsilon_schedule.get_current_value()))

    def _sample(self, *, num_timesteps: int | None = None, num_episodes: int | None = None,
                explore: bool, random_actions: bool = False,
                force_reset: bool = False) -> list[SingleAgentEpisode]:
        if force_reset or num_episodes is not None or self._needs_initial_reset:
            self._reset_all()
        if self.module is not None:
            self.module.eval()
        env = self.env
        ts = eps = 0
        done: list[SingleAgentEpisode] = []
        seq_no = self._weights_seq_no
        # Groups of envs in turn: one group's games run in ale-py's threads
        # while the module computes the other group's actions.
        in_flight: dict[int, tuple[np.ndarray, int]] = {}  # group: actions, agent steps

        def launch(g: int) -> None:
            games = env.groups[g]
            acting = env.phase[games] == PLAY  # the others serve, fire or reset
            actions = np.zeros(len(games), np.int64)
            if acting.any():
                actions[acting] = self._actions(games[acting], explore, random_actions, ts)
            env.send(g, actions)
            in_flight[g] = actions, int(acting.sum())

        def wanted() -> bool:  # more steps to start: as RLlib's runner, no more than needed
            if num_timesteps is None:
                return eps < num_episodes
            return ts + sum(steps for _, steps in in_flight.values()) < num_timesteps

        k = 0
        while wanted() or in_flight:
            g, following = k % len(env.groups), (k + 1) % len(env.groups)
            k += 1
            for h in (g, following):
                if h not in in_flight and wanted():
                    launch(h)
            if g not in in_flight:
                continue
            actions, _ = in_flight.pop(g)
            result = env.recv(g)
            now = time.perf_counter()
            for j in np.flatnonzero(result.stepped):
                chunk = self._chunks[result.games[j]]
                chunk.observations.append(result.obs[j])
                chunk.infos.append(result.infos[j])
                chunk.actions.append(int(actions[j]))
                chunk.rewards.append(float(result.rewards[j]))
                chunk.seq_nos.append(seq_no)
                chunk.last_step_time = now
                ts += 1
            for j in np.flatnonzero(result.terminated | result.truncated):
                i = int(result.games[j])
                episode = self._chunks[i].episode(self, bool(result.terminated[j]),
                                                  bool(result.truncated[j]))
                self._make_episode_end_callback(episode, i)
                done.append(episode)
                eps += 1
                self._chunks[i] = None  # until the next game starts
            for j in np.flatnonzero(result.started):
                self._chunks[result.games[j]] = _Chunk(result.obs[j], result.infos[j])
        if num_episodes is not None:
            # As RLlib's runner: the first `num_episodes` to end; a reset next time.
            done = done[:num_episodes]
            self._needs_initial_reset = True
            ongoing = []
        else:
            ongoing = []
            for i, chunk in enumerate(self._chunks):
                if chunk is None or not chunk.actions:
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
