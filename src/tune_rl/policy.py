"""A trained policy as an MLflow model: observations in, greedy actions out.

The model wraps the RLModule saved in an RLlib checkpoint
(`learner_group/learner/rl_module/default_policy`). Its input is a batch of
observations as the env gives them with the frames stacked: for Breakout,
(N, 84, 84, 4) arrays, uint8 for the DQN family and float32 in [0, 1] for
PPO, IMPALA and APPO (the model's signature says which).

    model = mlflow.pyfunc.load_model("models:/breakout-Rainbow_DQN/latest")
    actions = model.predict(observations)   # int64 array of shape (N,)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np

MODULE_IN_CHECKPOINT = Path("learner_group", "learner", "rl_module", "default_policy")


class PolicyModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from ray.rllib.core.rl_module.rl_module import RLModule

        self.module = RLModule.from_checkpoint(context.artifacts["rl_module"])
        self.module.eval()

    # Typed so that MLflow knows the input is an array (it checks it against
    # the saved signature) rather than advising type hints at every save.
    def predict(self, context: Any, model_input: np.ndarray,
                params: dict[str, Any] | None = None) -> np.ndarray:
        import torch

        from tune_rl.evaluation import greedy_actions  # what evaluation plays

        # The dtype is the signature's: the DQN network scales uint8 frames itself.
        obs = torch.as_tensor(np.asarray(model_input))
        return np.asarray(greedy_actions(self.module, obs), dtype=np.int64)


def module_path(checkpoint: str | Path) -> Path:
    return Path(checkpoint) / MODULE_IN_CHECKPOINT
