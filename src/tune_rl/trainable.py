"""The Tune trainable of a sweep: the RLlib algorithm, configured per trial.

Tune hands each trial only the searched values (`{"lr": 3e-4, "conv_filters":
"small"}`); this class turns them into the full RLlib config. Keeping Tune's
view of the config that small is what makes its progress table, trial names
and result files readable: the RLlib config has hundreds of keys.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import time
from collections import deque
from typing import Any

import ray
from ray import tune
from ray.tune.result import TRIAL_INFO

from tune_rl.config import TrialSettings, build_config
from tune_rl.cost import COST, actor_cost
from tune_rl.envs import SCORE_KEY, EnvChoice
from tune_rl.evaluation import MAX_FRAMES_PER_GAME
from tune_rl.presets import Preset
from tune_rl.search import SEED

ENV_STEPS = "num_env_steps_sampled_lifetime"
SCORE = "score"  # the real game score, mean over the last SCORE_WINDOW finished episodes
SCORE_WINDOW = 100
GAMES_ENDED = "games_ended"  # in result["env_runners"]: games that ended this iteration
EVAL_SCORE = "eval_score"  # this iteration's evaluation (evaluation.py), else NaN
LEARNER_VALUES = "learner_values"  # lr and loss settings as the learner held them
COPIED_FROM = "copied_from"  # after a PBT exploit: the donor trial and its env steps
LAST_EVAL_SCORE = "last_eval_score"  # the latest evaluation, for the progress table only
# In every checkpoint: the scores it was saved with, the trial's seed and params.
CHECKPOINT_RECORD_FILE = "tune_rl_checkpoint.json"
DIVERGED = "diverged"  # set, with the name of what went non-finite, when a trial diverges
# Numbers that turn NaN or infinite when learning diverges. Episode returns
# are not among them: they are NaN whenever no episode ended, which is normal
# (a good Breakout game outlasts a short iteration).
WATCHED = [("learners", "default_policy", k) for k in
           ("total_loss", "qf_loss", "policy_loss", "vf_loss", "pi_loss",
            "gradients_default_optimizer_global_norm")]
RECENT_SCORES_FILE = "tune_rl_recent_scores.json"
# RLlib's new stack checkpoints no replay buffer (only the old stack's
# `store_buffer_in_checkpoints` does): a restored DQN trial would start empty
# and, since learning starts are judged on lifetime env steps, train at once
# on the few transitions sampled since. So the DQN family's latest checkpoint
# holds the buffer. Its size per transition, in memory and in a checkpoint,
# measured over 8,000 random-action steps of whole games into full buffers
# (benchmarks/measure.py's held_bytes_per_transition; pickle's size of
# get_state() beside it): on Breakout, with each frame stored once
# (replay.py), 7,578 bytes uniform and 7,874 prioritized in memory, 7,395 and
# 7,485 pickled (RLlib's buffers, whole stacks: 29,692 and 28,609); so a
# 1,000,000-transition buffer is about 7.9 GB. CartPole: 555 and 847 in
# memory, 138 and 226 pickled. The larger figure of each env serves both the
# memory check and the disk estimate (plan.py). Not uploaded to MLflow. Only
# a restore needs it, and Tune restores a trial (retry, --resume) from its
# latest checkpoint, never a trial that ended (ReplayBuffersEndWithTrial):
# each save removes it from the trial's older checkpoints, which keep the
# weights (a best checkpoint is for evaluation, `best` and `confirm`), and
# the end of the trial from all of them.
REPLAY_BUFFER_FILE = "tune_rl_replay_buffer.pkl"
REPLAY_BYTES_PER_TRANSITION = {"breakout": 7_900, "cartpole": 850}


def drop_replay_buffers(latest, keep_latest: bool = True) -> list[str]:
    """Removes the replay buffer from the checkpoints of `latest`'s trial (a
    persisted ray.tune.Checkpoint), `latest` itself unless `keep_latest`, on
    its own filesystem (local or cloud); returns the files removed."""
    import pyarrow.fs

    fs, latest_path = latest.filesystem, latest.path.rstrip("/")
    trial_dir = os.path.dirname(latest_path)
    removed = []
    for info in fs.get_file_info(pyarrow.fs.FileSelector(trial_dir)):
        if (info.type != pyarrow.fs.FileType.Directory
                or (keep_latest and info.path.rstrip("/") == latest_path)
                or not os.path.basename(info.path).startswith("checkpoint_")):
            continue
        buffer = f"{info.path.rstrip('/')}/{REPLAY_BUFFER_FILE}"
        try:
            if fs.get_file_info(buffer).type == pyarrow.fs.FileType.File:
                fs.delete_file(buffer)
                removed.append(buffer)
        except OSError:  # Tune deleted that checkpoint meanwhile (keep_checkpoints)
            continue
    return removed


class ReplayBuffersEndWithTrial(tune.Callback):
    """Removes a DQN-family trial's replay buffer from all its checkpoints
    when the trial ends: Tune never restores a trial that ended.

    Tune calls `on_trial_complete` for a trial that reached its budget and
    for one ASHA stopped, once the trial's last checkpoint is saved (Tune
    holds the STOP until that save is processed). Recorded on a real sweep
    (DQN, CartPole, 4 trials of 600 env steps, ASHA's rung at 200, one trial
    crashing once at about 215 env steps): the crashed trial got
    `on_trial_recover` (PENDING, buffer kept), was restored and ran to 645
    env steps, then got `on_checkpoint` and `on_trial_complete`; each of the
    three ASHA stopped at 205-218 got `on_checkpoint`, then
    `on_trial_complete`. By Tune 2.60's TuneController: a trial whose retries
    are spent gets `on_trial_error` instead and keeps its buffer (--resume
    restores it: resume_errored); Ctrl-C, and the stop of every trial once
    one reaches the target score, stop trials with neither hook, so a trial
    then running keeps its buffer.
    """

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        if trial.checkpoint is not None:
            drop_replay_buffers(trial.checkpoint, keep_latest=False)


def _local_learner_call(algo, fn) -> Any:
    """`fn(learner)` on the algorithm's local learner; None with remote learners."""
    group = algo.learner_group
    if not group.is_local:
        return None
    (value,) = [r.get() for r in group.foreach_learner(fn)]
    return value


def learner_values(algo) -> dict[str, float] | None:
    """The learning rate the learner's optimizer holds and the loss settings
    its config holds: what the next update really uses."""
    def read(learner) -> dict[str, float]:
        values = {"lr": float(learner.get_optimizer().param_groups[0]["lr"])}
        for name in ("entropy_coeff", "clip_param", "gamma", "vf_loss_coeff"):
            value = getattr(learner.config, name, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[name] = float(value)
        return values

    return _local_learner_call(algo, read)


def apply_config_lr(algo, env_steps: int) -> None:
    """Sets the optimizers' learning rate to the config's after a restore.

    RLlib 2.60 restores the optimizer's state dict with its param_groups, so
    a trial restored from a checkpoint (PBT's exploit, resuming) first trains
    with the lr saved there, not its config's, until RLlib's scheduler sets it
    after the first update (Learner.after_gradient_based_update). Measured:
    PPO on CartPole with lr 5e-4 in its config, restored from a checkpoint
    of lr 1e-3, held 1e-3 until one iteration had trained with it; the loss
    settings (entropy_coeff) were the config's. This is ray#62173's trap on
    the new stack. RLlib's own scheduler gives the value at `env_steps`.
    """
    def apply(learner) -> None:
        for optimizer, schedule in learner._optimizer_lr_schedules.items():
            lr = schedule.update(timestep=env_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr

    algo.learner_group.foreach_learner(apply)


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


def non_finite_weights(module) -> str | None:
    """The first parameter of `module` holding NaN or infinity, by name."""
    import torch

    for name, param in module.named_parameters():
        if not torch.isfinite(param).all():
            return f"weights {name}"
    return None


def games_ended(series: Any) -> list[float]:
    """The scores ScoreCallback logged as a series.

    RLlib reports a list, a bare number when one game ended, NaN when none did.
    """
    if isinstance(series, (list, tuple, deque)):
        return [float(x) for x in series]
    if isinstance(series, (int, float)) and math.isfinite(series):
        return [float(series)]
    return []


def mean_or_nan(values) -> float:
    return float(sum(values) / len(values)) if values else math.nan


def make_trainable(preset: Preset, env: EnvChoice, settings: TrialSettings, torch_threads: int):
    algo_cls = preset.algorithm_class

    class SweepTrial(algo_cls):
        def __init__(self, config: dict[str, Any] | None = None, **kwargs):
            self._started = time.time()  # GPU seconds count from here (cost.py)
            import torch

            # Concurrent trials would each take every core otherwise.
            torch.set_num_threads(torch_threads)
            env.register()
            config = config or {}
            trial_info = config.get(TRIAL_INFO)
            # Tune adds its own "__trial_info__", "__stdout_file__", ...
            searched = {k: v for k, v in config.items() if not k.startswith("__")}
            self._searched = searched
            # RLlib's windowed means are cleared every iteration, so the
            # window of the last 100 games is kept here, across iterations
            # and (through the checkpoint) across restores.
            self._recent_scores: deque[float] = deque(maxlen=SCORE_WINDOW)
            self._seed = int(searched.get(SEED, settings.seed))
            self._env_steps = 0  # lifetime env steps at the last result
            self._last_eval: dict[str, Any] = {}
            self._last_result: dict[str, Any] = {}
            self._copied_from: str | None = None  # "trial@env_steps" after a PBT exploit
            super().__init__(config=build_config(preset, env, searched, settings), **kwargs)
            self._trial_info = trial_info  # so results carry the real trial id
            # Which node runs this trial, for sweeps on a cluster.
            self._node_id = ray.get_runtime_context().get_node_id()
            # What Ray reserved for the whole trial (its placement group).
            self._gpus = float(type(self).default_resource_request(
                self.config).required_resources.get("GPU", 0))

        @classmethod
        def default_resource_request(cls, config):
            if isinstance(config, dict):
                config = build_config(preset, env, config, settings)
            return super().default_resource_request(config)

        def step(self) -> dict:
            in_use = learner_values(self)  # what this iteration's updates start with
            result = super().step()
            if in_use:
                result[LEARNER_VALUES] = in_use
            if self._copied_from:
                result[COPIED_FROM] = self._copied_from
                self._copied_from = None
            runners = result.get("env_runners", {})
            finished = games_ended(runners.get(SCORE_KEY))
            self._recent_scores.extend(finished)
            # Carried forward while no game ends; NaN (skipped by ASHA and
            # Optuna) only until the first game ends.
            result[SCORE] = mean_or_nan(self._recent_scores)
            runners[SCORE_KEY] = mean_or_nan(finished)
            runners[GAMES_ENDED] = len(finished)
            steps = int(result.get(ENV_STEPS, 0) or 0)
            # Fresh or NaN, never carried: a checkpoint's eval_score is an
            # evaluation of its own weights (selection.py).
            result[EVAL_SCORE] = math.nan
            if self._evaluation_due(self.iteration + 1, steps):
                self._evaluate(result, steps)
            result[LAST_EVAL_SCORE] = self._last_eval.get(EVAL_SCORE, math.nan)
            self._env_steps = steps
            result["node_id"] = self._node_id
            # A diverged trial stops here, recorded as such, rather than crash
            # later or feed the search a meaningless score.
            module = self.get_module()  # None where no local env runner holds one
            bad = non_finite(result) or (module is not None and non_finite_weights(module))
            if bad:
                result[DIVERGED] = bad
                result["done"] = True
            self._last_result = {SCORE: result[SCORE], EVAL_SCORE: result[EVAL_SCORE],
                                 ENV_STEPS: steps, "iteration": self.iteration + 1}
            result[COST] = actor_cost(self, self._started, self._gpus)  # evaluation included
            return result

        def _evaluation_due(self, iteration: int, steps: int) -> bool:
            """At the settings' intervals, on the first result past each
            milestone (ASHA's rungs) and at the end of the budget."""
            return (any(iteration % n == 0 for n in settings.eval_every_iterations)
                    or any(self._env_steps < m <= steps for m in settings.eval_at_env_steps)
                    or (settings.eval_at_end and steps >= settings.max_env_steps))

        def _evaluate(self, result: dict, steps: int) -> None:
            from tune_rl.evaluation import evaluate, evaluation_seed, policy_module

            cap = settings.env_config.get("max_frames_per_episode", MAX_FRAMES_PER_GAME)
            ev = evaluate(policy_module(self), preset, env, episodes=settings.eval_episodes,
                          seed=evaluation_seed(self._seed, steps), max_frames_per_game=cap,
                          env_config=settings.env_config)
            result[EVAL_SCORE] = ev.mean
            # Its cost is its own: RLlib's counters (training env steps) never see it.
            result["evaluation"] = {
                "scores": list(ev.scores), "env_steps": ev.env_steps, "seconds": ev.seconds,
                "capped_games": ev.capped, "cap": f"{ev.cap} {ev.cap_unit}", "seed": ev.seed,
                "interval_low": ev.interval[0], "interval_high": ev.interval[1]}
            self._last_eval = {EVAL_SCORE: ev.mean, "scores": list(ev.scores),
                               ENV_STEPS: steps, "seed": ev.seed}

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            super().save_checkpoint(checkpoint_dir)
            with open(os.path.join(checkpoint_dir, RECENT_SCORES_FILE), "w") as f:
                json.dump(list(self._recent_scores), f)
            # The scores this checkpoint was saved with (those of the result
            # Tune checkpoints after), its trial's seed and searched values:
            # what `best`, `confirm` and the registry read back; what trained
            # it, for `evaluate` (saved_policy.py).
            with open(os.path.join(checkpoint_dir, CHECKPOINT_RECORD_FILE), "w") as f:
                json.dump({**self._last_result, "seed": self._seed,
                           "algo": preset.name, "env": env.name,
                           "env_config": settings.env_config,
                           "trial_id": self._trial_info and self._trial_info.trial_id,
                           "params": {k: v for k, v in self._searched.items() if k != SEED},
                           "last_evaluation": self._last_eval}, f, default=str)
            if preset.is_dqn:
                with open(os.path.join(checkpoint_dir, REPLAY_BUFFER_FILE), "wb") as f:
                    pickle.dump(self.local_replay_buffer.get_state(), f,
                                protocol=pickle.HIGHEST_PROTOCOL)

        def save(self, checkpoint_dir: str | None = None):
            result = super().save(checkpoint_dir)
            # Persisted (by Tune's storage) only when run by Tune.
            if (preset.is_dqn and not settings.replay_in_every_checkpoint
                    and self._storage is not None and result.checkpoint is not None):
                drop_replay_buffers(result.checkpoint)
            return result

        def load_checkpoint(self, checkpoint_dir: str) -> None:
            super().load_checkpoint(checkpoint_dir)
            path = os.path.join(checkpoint_dir, CHECKPOINT_RECORD_FILE)
            if os.path.exists(path):
                with open(path) as f:
                    record = json.load(f)
                self._env_steps = int(record.get(ENV_STEPS, 0))
                self._last_eval = record.get("last_evaluation") or {}
                donor = record.get("trial_id")
                if donor and self._trial_info and donor != self._trial_info.trial_id:
                    # PBT's exploit: another trial's weights, this trial's new values.
                    self._copied_from = f"{donor}@{self._env_steps}"
            apply_config_lr(self, self._env_steps)
            path = os.path.join(checkpoint_dir, RECENT_SCORES_FILE)
            if os.path.exists(path):
                with open(path) as f:
                    self._recent_scores.clear()
                    self._recent_scores.extend(json.load(f))
            path = os.path.join(checkpoint_dir, REPLAY_BUFFER_FILE)
            if preset.is_dqn and os.path.exists(path):
                with open(path, "rb") as f:
                    state = pickle.load(f)
                # RLlib's set_state keeps the episodes of a buffer that holds
                # some (a trial restored in place): start from an empty one.
                self.local_replay_buffer = self._create_local_replay_buffer_if_necessary(
                    self.config)
                self.local_replay_buffer.set_state(state)

        def get_auto_filled_metrics(self, *args, **kwargs) -> dict:
            metrics = super().get_auto_filled_metrics(*args, **kwargs)
            metrics["config"] = self._searched  # not the whole RLlib config
            return metrics

    # Tune registers trainables by class name; "DQN" would replace RLlib's own.
    SweepTrial.__name__ = SweepTrial.__qualname__ = f"{preset.name}_trial"
    return SweepTrial
