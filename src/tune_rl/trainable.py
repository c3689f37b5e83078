"""The Tune trainable of a sweep: the RLlib algorithm, configured per trial.

Tune hands each trial only the searched values (`{"lr": 3e-4, "conv_filters":
"small"}`); this class turns them into the full RLlib config. Keeping Tune's
view of the config that small is what makes its progress table, trial names
and result files readable: the RLlib config has hundreds of keys.
"""

from __future__ import annotations

import math
from typing import Any

import ray
from ray.tune.result import TRIAL_INFO

from tune_rl.config import TrialSettings, build_config
from tune_rl.envs import SCORE_KEY, EnvChoice
from tune_rl.presets import Preset

ENV_STEPS = "num_env_steps_sampled_lifetime"
SCORE = "score"  # the real game score, mean over the last 100 episodes
EVAL_SCORE = "eval_score"
DIVERGED = "diverged"  # set, with the name of what went non-finite, when a trial diverges
# Numbers that turn NaN or infinite when learning diverges.
WATCHED = [("learners", "default_policy", k) for k in
           ("total_loss", "qf_loss", "policy_loss", "vf_loss", "pi_loss")]
WATCHED.append(("env_runners", "episode_return_mean"))


def lookup(result: dict, path: tuple[str, ...]) -> Any:
    """`result[a][b]...` for path (a, b, ...), or None where a key is missing."""
    value: Any = result
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def non_finite(result: dict) -> str | None:
    """The first watched value of `result` that is NaN or infinite, by name."""
    for path in WATCHED:
        value = lookup(result, path)
        if isinstance(value, (int, float)) and not math.isfinite(value):
            return path[-1]
    return None


def make_trainable(preset: Preset, env: EnvChoice, settings: TrialSettings, torch_threads: int):
    algo_cls = preset.algorithm_class

    class SweepTrial(algo_cls):
        def __init__(self, config: dict[str, Any] | None = None, **kwargs):
            import torch

            # Concurrent trials would each take every core otherwise.
            torch.set_num_threads(torch_threads)
            env.register()
            config = config or {}
            trial_info = config.get(TRIAL_INFO)
            # Tune adds its own "__trial_info__", "__stdout_file__", ...
            searched = {k: v for k, v in config.items() if not k.startswith("__")}
            self._searched = searched
            super().__init__(config=build_config(preset, env, searched, settings), **kwargs)
            self._trial_info = trial_info  # so results carry the real trial id
            # Which node runs this trial, for sweeps on a cluster.
            self._node_id = ray.get_runtime_context().get_node_id()

        @classmethod
        def default_resource_request(cls, config):
            if isinstance(config, dict):
                config = build_config(preset, env, config, settings)
            return super().default_resource_request(config)

        def step(self) -> dict:
            result = super().step()
            score = result.get("env_runners", {}).get(SCORE_KEY)
            # NaN until the first episode ends; ASHA and Optuna skip NaN.
            result[SCORE] = float(score) if score is not None else math.nan
            evaluation = result.get("evaluation", {}).get("env_runners", {})
            if SCORE_KEY in evaluation:
                result[EVAL_SCORE] = float(evaluation[SCORE_KEY])
            # A diverged trial stops here, recorded as such, rather than crash
            # later or feed the search a meaningless score.
            result["node_id"] = self._node_id
            bad = non_finite(result)
            if bad:
                result[DIVERGED] = bad
                result["done"] = True
            return result

        def get_auto_filled_metrics(self, *args, **kwargs) -> dict:
            metrics = super().get_auto_filled_metrics(*args, **kwargs)
            metrics["config"] = self._searched  # not the whole RLlib config
            return metrics

    # Tune registers trainables by class name; "DQN" would replace RLlib's own.
    SweepTrial.__name__ = SweepTrial.__qualname__ = f"{preset.name}_trial"
    return SweepTrial
