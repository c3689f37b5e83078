"""The DQN family's algorithm: RLlib's DQN, its K updates in one learner call.

RLlib's DQN (Ray 2.60, dqn.py `_training_step_new_api_stack`) samples, then
makes K = `calculate_rr_weights(config)[1]` updates (8 with 8 envs, a
fragment of 4 and training_intensity 8), each its own round trip: sample 32
from replay, `learner_group.update(episodes=...)` (learner connectors on 32
transitions, one optimizer step, the learner's metrics reduced), then the
32 priorities written back. With `updates_in_one_learner_call` (the default)
this class samples K x 32 at once and makes one call with
`minibatch_size=32, num_epochs=1`: the connectors run once on the whole
batch, the metrics are reduced once, and there are still K optimizer steps,
on the K minibatches in the order sampled.

What RLlib does in that call, read in its source and checked by
tests/test_learner_calls.py:
- `Learner.update` slices the batch with `MiniBatchCyclicIterator` in order;
  it shuffles only when `num_epochs > 1` (learner.py,
  `shuffle_batch_per_epoch and (num_epochs > 1)`).
- DQNTorchLearner logs each minibatch's TD errors with
  `reduce="item_series"`: the call returns K arrays in minibatch order,
  which concatenate to the K x 32 sampled indices' order
  (`PrioritizedEpisodeReplayBuffer._last_sampled_indices`).
- `after_gradient_based_update` (target-network sync, lr schedule) runs once
  per call instead of once per update. RLlib passes the same lifetime env
  step to all K of its calls, so its lr is the same for the K updates either
  way, and its target sync fires in at most one of them: here it fires after
  the K-th update instead of after the first, at most K - 1 updates later
  in a period of thousands of env steps.

The trade-off: prioritized replay's priorities are refreshed after K
updates, not after each. The K batches are drawn from the same priorities,
so a transition that the first minibatch's update has just made less
surprising can be drawn again in the same call; with RLlib's order it would
already carry its new priority. Its effect on learning is measured on
CartPole in benchmarks/per_refresh.py (results/per_refresh.md).

Measured on 2 loaded CPU cores (Rainbow, Breakout, 8 envs x 4): training
steps alternating the two ways in one trial took 1.48 s (one call) and
1.65 s (K calls) in the median of 20 each, 1.03x in the mean: on CPU the
update is torch's arithmetic. The gain is meant for a GPU, where RLlib's
Rainbow update took 16 ms around 7 ms of arithmetic (README); not yet
measured there.

Several learners (num_learners > 1) shard the batch between them, and the
shards' TD errors would have to be put back in sampled order: those configs,
and stateful modules, keep RLlib's path, as does K = 1.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.dqn.dqn import DQN, DQNConfig, calculate_rr_weights
from ray.rllib.core import ALL_MODULES
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    REPLAY_BUFFER_ADD_DATA_TIMER,
    REPLAY_BUFFER_RESULTS,
    REPLAY_BUFFER_SAMPLE_TIMER,
    REPLAY_BUFFER_UPDATE_PRIOS_TIMER,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TD_ERROR_KEY,
    TIMERS,
)
from ray.rllib.utils.numpy import convert_to_numpy
from ray.rllib.utils.replay_buffers.utils import update_priorities_in_episode_replay_buffer

# Logged each training step: how many updates the step's learner calls made
# together, so that RLlib's `learner_update_timer` (per call) can be read per
# update.
UPDATES_PER_LEARNER_CALL = "tune_rl_updates_per_learner_call"


class TuneRLDQNConfig(DQNConfig):
    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or TuneRLDQN)
        self.updates_in_one_learner_call = True

    def training(self, *, updates_in_one_learner_call=NotProvided, **kwargs):
        """RLlib's DQN settings, and `updates_in_one_learner_call`: the K
        updates of a training step in one learner call (True) or in K (RLlib)."""
        super().training(**kwargs)
        if updates_in_one_learner_call is not NotProvided:
            self.updates_in_one_learner_call = bool(updates_in_one_learner_call)
        return self


class TuneRLDQN(DQN):
    @classmethod
    def get_default_config(cls) -> TuneRLDQNConfig:
        return TuneRLDQNConfig()

    def _training_step_new_api_stack(self):
        store_weight, updates = calculate_rr_weights(self.config)
        if (not self.config.updates_in_one_learner_call or updates == 1
                or self.config.num_learners > 1 or self._module_is_stateful):
            self.metrics.log_value(UPDATES_PER_LEARNER_CALL, 1, window=1)
            return super()._training_step_new_api_stack()
        self.metrics.log_value(UPDATES_PER_LEARNER_CALL, updates, window=1)

        # Sampling as RLlib's: `store_weight` rounds into the replay buffer
        # (inline in RLlib's method, so repeated here).
        for _ in range(store_weight):
            self._sample_into_replay()
        current_ts = self.metrics.peek(
            (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0)
        if self.config.count_steps_by == "agent_steps":
            current_ts = sum(self.metrics.peek(
                (ENV_RUNNER_RESULTS, NUM_AGENT_STEPS_SAMPLED_LIFETIME), default={}).values())
        if current_ts < self.config.num_steps_sampled_before_learning_starts:
            return

        batch_size = self.config.total_train_batch_size
        # Differs from RLlib: one sample of K batches, not K samples of one.
        with self.metrics.log_time((TIMERS, REPLAY_BUFFER_SAMPLE_TIMER)):
            episodes = self.local_replay_buffer.sample(
                num_items=updates * batch_size,
                n_step=self.config.n_step,
                gamma=self.config.gamma,
                beta=self.config.replay_buffer_config.get("beta"),
                sample_episodes=True,
            )
            self.metrics.aggregate([self.local_replay_buffer.get_metrics()],
                                   key=REPLAY_BUFFER_RESULTS)

        # Differs from RLlib: one call, K minibatches in the sampled order.
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            learner_results = self.learner_group.update(
                episodes=episodes,
                minibatch_size=batch_size,
                num_epochs=1,
                shuffle_batch_per_epoch=False,
                timesteps={
                    NUM_ENV_STEPS_SAMPLED_LIFETIME: self.metrics.peek(
                        (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME)),
                    NUM_AGENT_STEPS_SAMPLED_LIFETIME: self.metrics.peek(
                        (ENV_RUNNER_RESULTS, NUM_AGENT_STEPS_SAMPLED_LIFETIME)),
                },
            )
            # As RLlib: the TD errors out of the results (too large to log).
            td_errors = defaultdict(list)
            for result in learner_results:
                for module_id, module_results in result.items():
                    if TD_ERROR_KEY in module_results:
                        td_errors[module_id].extend(
                            convert_to_numpy(module_results.pop(TD_ERROR_KEY).peek()))
            td_errors = {module_id: {TD_ERROR_KEY: np.concatenate(errors, axis=0)}
                         for module_id, errors in td_errors.items()}
            self.metrics.aggregate(learner_results, key=LEARNER_RESULTS)

        # All K x 32 priorities at once, after the K updates.
        with self.metrics.log_time((TIMERS, REPLAY_BUFFER_UPDATE_PRIOS_TIMER)):
            update_priorities_in_episode_replay_buffer(
                replay_buffer=self.local_replay_buffer, td_errors=td_errors)

        with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            self.env_runner_group.sync_weights(
                from_worker_or_learner_group=self.learner_group,
                policies=set(learner_results[0].keys()) - {ALL_MODULES},
                global_vars=None,
                inference_only=True,
            )

    def _sample_into_replay(self) -> None:
        """One of RLlib's sampling rounds (dqn.py), unchanged."""
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            episodes, env_runner_results = synchronous_parallel_sample(
                worker_set=self.env_runner_group,
                concat=True,
                sample_timeout_s=self.config.sample_timeout_s,
                _uses_new_env_runners=True,
                _return_metrics=True,
            )
        self.metrics.aggregate(env_runner_results, key=ENV_RUNNER_RESULTS)
        with self.metrics.log_time((TIMERS, REPLAY_BUFFER_ADD_DATA_TIMER)):
            self.local_replay_buffer.add(episodes)
