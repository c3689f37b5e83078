"""The DQN-family learner: RLlib's, with the optimiser the preset asks for.

RLlib's TorchLearner (Ray 2.60) builds `torch.optim.Adam(params)` with torch's
defaults, so DQNConfig's `adam_epsilon` is never read on the new stack: the
notebook's and Dopamine's Adam epsilon silently became 1e-8. It also takes
torch's per-tensor Adam on CPU; the fused kernel does the same step in one
pass over the parameters (measured: benchmarks/run.py, learner update).

On CPU, Adam's second-moment estimates of rarely-updated weights decay into
subnormal floats, which x86 processes dozens of times slower than normal
ones. Measured on Rainbow (2 cores): after 4,000 env steps 1.5 million of
Adam's 13.5 million state values were subnormal and its step took 46 ms
instead of 8; the whole update slowed from 80 to 117 ms and kept slowing.
The learner therefore flushes subnormals to zero. A value below 1.2e-38 in
the second moment (its square root below 1.1e-19) is far under Adam's
epsilon (Dopamine's 1.5e-4 in the DQN presets, the notebook's 1e-8 for
Rainbow), so the step is the same; GPUs are not affected.

RLlib's DQNLearner keeps the env step of each module's last target-network
update (`last_update_ts_by_mid`, dqn_learner.py) outside its state, and
syncs the target once the lifetime env steps are `target_network_update_freq`
past it. A learner restored from a checkpoint starts that clock at 0, so its
first update hard-syncs the target, however recently it was synced before
the checkpoint. The clock is kept in this learner's state, and so in every
checkpoint: a restored trial syncs when it would have without the restore.

RLlib's Learner.update, given a batch and a minibatch size, logs each
minibatch's env steps trained as the whole batch's (MiniBatchCyclicIterator
hands every minibatch the batch's `env_steps`): one call of 8 minibatches of
32 reported 8 x 256 env steps trained (measured: 3,968 for 496 updates of
32). The learner counts each minibatch's own rows instead; with one module
(the DQN family's) they are its env steps.
"""

from __future__ import annotations

import torch
from ray.rllib.algorithms.dqn.torch.dqn_torch_learner import DQNTorchLearner
from ray.rllib.policy.sample_batch import MultiAgentBatch

# In the learner's state: env step of the last target update, by module id.
TARGET_UPDATE_CLOCK = "tune_rl_last_target_update_env_step"


class TuneRLDQNLearner(DQNTorchLearner):
    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        params = self.get_parameters(self._module[module_id])
        optimizer = torch.optim.Adam(params, eps=config.adam_epsilon, fused=True)
        self.register_optimizer(module_id=module_id, optimizer=optimizer, params=params,
                                lr_or_lr_schedule=config.lr)

    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict:
        state = super().get_state(components, not_components=not_components, **kwargs)
        state[TARGET_UPDATE_CLOCK] = dict(self.last_update_ts_by_mid)
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if TARGET_UPDATE_CLOCK in state:
            self.last_update_ts_by_mid.update(state[TARGET_UPDATE_CLOCK])

    def apply_gradients(self, gradients_dict) -> None:
        # Per call, not once: the flag belongs to the calling thread, and
        # which thread runs the update is RLlib's and Ray's choice.
        torch.set_flush_denormal(True)
        super().apply_gradients(gradients_dict)

    def _log_steps_trained_metrics(self, batch: MultiAgentBatch) -> None:
        if len(batch.policy_batches) == 1:
            rows = len(next(iter(batch.policy_batches.values())))
            batch = MultiAgentBatch(batch.policy_batches, env_steps=rows)
        super()._log_steps_trained_metrics(batch)
