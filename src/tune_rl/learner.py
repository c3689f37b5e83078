"""The DQN-family learner: RLlib's, with the optimiser the preset asks for.

RLlib's TorchLearner (Ray 2.60) builds `torch.optim.Adam(params)` with torch's
defaults, so DQNConfig's `adam_epsilon` is never read on the new stack: the
notebook's and Dopamine's Adam epsilon silently became 1e-8. It also takes
torch's per-tensor Adam on CPU; the fused kernel does the same step in one
pass over the parameters (measured: benchmarks/run.py, learner update).
"""

from __future__ import annotations

import torch
from ray.rllib.algorithms.dqn.torch.dqn_torch_learner import DQNTorchLearner


class TuneRLDQNLearner(DQNTorchLearner):
    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        params = self.get_parameters(self._module[module_id])
        optimizer = torch.optim.Adam(params, eps=config.adam_epsilon, fused=True)
        self.register_optimizer(module_id=module_id, optimizer=optimizer, params=params,
                                lr_or_lr_schedule=config.lr)
