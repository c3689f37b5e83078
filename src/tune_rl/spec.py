"""SweepSpec: what one sweep runs, loaded from YAML plus overrides, validated.

A sweep file names the algorithm and env, and holds profiles (`quick`,
`full`) whose keys override the file's top-level defaults:

    algo: Rainbow_DQN
    env: breakout
    max_concurrent: 0
    profiles:
      quick: {trials: 4, max_env_steps: 12000}
      full:  {trials: 32, max_env_steps: 2000000}

Every error names the field, the bad value and what is allowed, and is raised
before Ray starts.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tune_rl.envs import get_env
from tune_rl.errors import UsageError, unknown
from tune_rl.presets import PRESETS
from tune_rl.search import SCHEDULERS, SEARCHERS
from tune_rl.selection import SELECT_RULES
from tune_rl.storage import Storage

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SWEEPS_DIR = PROJECT_ROOT / "sweeps"
PROFILES = ("quick", "full")
# A sweep's name becomes a folder under storage_path and an MLflow run name:
# one plain path component, short enough for every filesystem and MLflow.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SEED_LIMIT = 2**32  # Optuna's and NumPy's seeds are unsigned 32-bit


@dataclass
class SweepSpec:
    algo: str
    env: str = "breakout"
    profile: str = "quick"
    name: str = ""  # sweep folder and MLflow parent run; default from algo/env/time
    experiment: str = ""  # MLflow experiment; default "<env>-<algo>"
    trials: int = 4
    max_env_steps: int = 20000  # per trial: the stop criterion and ASHA's max_t
    min_env_steps_per_iteration: int = 1000  # one reported result per this many steps
    # ASHA stops nothing before this many steps; 0: the env's progress steps
    # (envs.py) or a tenth of the budget, whichever is larger, at most the budget.
    grace_env_steps: int = 0
    reduction_factor: int = 2  # ASHA keeps the best 1/reduction_factor at each rung
    search: str = "tpe"  # what proposes trials: search.SEARCHERS
    early_stopping: str = "asha"  # what stops them early: search.SCHEDULERS
    # PBT and PB2 (search: pbt|pb2): env steps between perturbations; 0: a
    # tenth of max_env_steps.
    perturbation_env_steps: int = 0
    # Stops the whole sweep once a trial's score reaches it (a proxy task
    # such as CartPole, "solved" at 450); none: every trial runs.
    target_score: float | None = None
    max_concurrent: int = 0  # 0: as many as the CPUs (or cluster) allow
    seed: int = 0
    # What chooses the winner, everywhere (selection.py): "eval", the greedy
    # evaluation of complete games, or "train", the last 100 training games.
    select: str = "eval"
    # Also evaluate every 10 iterations (the notebook's), for the curves; with
    # select: eval, trials are evaluated at ASHA's rungs, at each checkpoint
    # and at their end whatever this says.
    evaluation: bool = True
    eval_episodes: int = 5  # complete games per evaluation
    # Iterations between checkpoints (also one at the end); 0: about a tenth of
    # max_env_steps, so that a kill loses at most that much of a trial.
    checkpoint_every: int = 0
    keep_checkpoints: int = 1  # per trial, best by score
    max_failures: int = 1  # retries of a crashed trial, from its checkpoint
    torch_threads: int = 1  # per trial, so concurrent trials share the cores
    env_runners: int = 0  # 0: sample inside the trial's own process
    envs_per_env_runner: int = 1
    cpus_per_env_runner: int = 1
    rollout_fragment_length: str = "auto"  # or an integer; "auto" lets RLlib size it
    gpus_per_learner: float = 0
    # Multiplies the DQN presets' schedules in env steps (epsilon decay,
    # learning starts): quick profiles shrink them to their small budgets.
    schedule_scale: float = 1.0
    env_config: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)  # fixed preset overrides
    # Fixed values of the searched parameters (what `tune-rl best` writes):
    # nothing is searched, one trial runs them with `seed` as its RLlib seed.
    params: dict[str, Any] = field(default_factory=dict)
    storage_path: str = "ray_results"
    # MLflow's own MLFLOW_TRACKING_URI, when set, else the embedded SQLite store.
    tracking_uri: str = field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    # Where the Optuna study is kept (study.py): an RDB URL (postgresql://...)
    # or a journal file; empty: a journal beside the sweep's folder.
    optuna_storage: str = ""
    spec_file: str = ""
    profile_from: str = ""  # which part of the sweep file gave the profile

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.algo not in PRESETS:
            raise unknown("algorithm", self.algo, PRESETS)
        get_env(self.env)
        if self.profile not in PROFILES:
            raise unknown("profile", self.profile, PROFILES)
        if self.select not in SELECT_RULES:
            raise unknown("select", self.select, SELECT_RULES)
        if self.grace_env_steps == 0 and isinstance(self.max_env_steps, int):
            self.grace_env_steps = min(self.max_env_steps, max(
                get_env(self.env).progress_env_steps, self.max_env_steps // 10))
        for name in ("trials", "max_env_steps", "min_env_steps_per_iteration",
                     "grace_env_steps", "keep_checkpoints", "eval_episodes",
                     "torch_threads", "envs_per_env_runner", "cpus_per_env_runner"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("max_concurrent", "max_failures", "env_runners", "gpus_per_learner",
                     "checkpoint_every"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.rollout_fragment_length != "auto":
            if not str(self.rollout_fragment_length).isdigit() or int(
                    self.rollout_fragment_length) < 1:
                raise UsageError("rollout_fragment_length must be 'auto' or an integer >= 1, "
                                 f"got {self.rollout_fragment_length!r}")
        fragment = (1 if self.rollout_fragment_length == "auto"
                    else int(self.rollout_fragment_length))
        per_round = fragment * self.envs_per_env_runner * max(self.env_runners, 1)
        if per_round > self.max_env_steps:
            raise UsageError(
                f"one sampling round (rollout_fragment_length {self.rollout_fragment_length} x "
                f"envs_per_env_runner {self.envs_per_env_runner} x env_runners "
                f"{max(self.env_runners, 1)}) is {per_round} env steps, more than "
                f"max_env_steps {self.max_env_steps}: make it smaller")
        if not 0 <= self.seed < SEED_LIMIT:
            raise UsageError(f"seed must be an integer in [0, {SEED_LIMIT - 1}], got {self.seed}")
        get_env(self.env).check_config(self.env_config)
        if self.search not in SEARCHERS:
            raise unknown("search", self.search, SEARCHERS)
        if self.early_stopping not in SCHEDULERS:
            raise unknown("early_stopping", self.early_stopping, SCHEDULERS)
        if self.target_score is not None and (
                isinstance(self.target_score, bool)
                or not isinstance(self.target_score, (int, float))):
            raise UsageError(f"target_score must be a number, got {self.target_score!r}")
        if not 0 < self.schedule_scale <= 1:
            raise UsageError(f"schedule_scale must be in (0, 1], got {self.schedule_scale}")
        if self.reduction_factor < 2:
            raise UsageError(f"reduction_factor must be >= 2, got {self.reduction_factor}")
        if self.early_stopping == "asha" and self.grace_env_steps > self.max_env_steps:
            raise UsageError(
                f"grace_env_steps ({self.grace_env_steps}) must not exceed "
                f"max_env_steps ({self.max_env_steps})"
            )
        if self.params and self.trials != 1:
            raise UsageError(f"params fixes one configuration: trials must be 1, got "
                             f"{self.trials} (tune-rl confirm runs a configuration on "
                             "several seeds)")
        if not self.name:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            self.name = f"{self.algo}-{self.env}-{self.profile}-{stamp}"
        if not NAME_PATTERN.fullmatch(self.name) or ".." in self.name:
            raise UsageError(f"name {self.name!r} is not a plain sweep name: use up to 100 "
                             "letters, digits, '.', '_' and '-', starting with a letter or "
                             "digit, without '..'")
        if self.perturbation_env_steps < 0:
            raise UsageError(f"perturbation_env_steps must be >= 0, got "
                             f"{self.perturbation_env_steps}")
        if not self.perturbation_env_steps:
            self.perturbation_env_steps = max(self.min_env_steps_per_iteration,
                                              self.max_env_steps // 10)
        if not self.checkpoint_every:
            iterations = self.max_env_steps // self.min_env_steps_per_iteration
            self.checkpoint_every = max(1, iterations // 10)
        if not self.experiment:
            self.experiment = f"{self.env}-{self.algo}"

    @functools.cached_property
    def storage(self) -> Storage:
        # Once per spec: for a cloud URI, pyarrow builds a client each time.
        return Storage(self.storage_path)

    @property
    def sweep_location(self) -> str:
        """The sweep's folder (or URI), as shown to people."""
        return self.storage.location(self.name)


FIELDS = {f.name: f for f in dataclasses.fields(SweepSpec)}
_FILE_ONLY = {"profiles", "envs"}


def default_spec_file(algo: str) -> Path:
    return SWEEPS_DIR / f"{algo.lower()}.yaml"


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"sweep file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"sweep file {str(path)!r} is not valid YAML{where}: "
                         f"{getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise UsageError(f"sweep file {str(path)!r} must be a YAML mapping of fields")
    return data


def _check_keys(data: dict[str, Any], where: str) -> None:
    for key in data:
        if key not in FIELDS and key not in _FILE_ONLY:
            raise unknown(f"field in {where}:", key, [*FIELDS, *_FILE_ONLY])


def _coerce(name: str, value: Any) -> Any:
    """Types the YAML and CLI values by the dataclass field's annotation.

    Refuses, rather than converts, what only looks like the type: a list or
    a mapping where a number or a name belongs (int([1, 2]) is a TypeError,
    str([1, 2]) a folder named "[1, 2]"), true/false as a number, NaN or
    infinity, a float with a fraction where an integer belongs.
    """
    kind = FIELDS[name].type
    try:
        if kind.startswith("dict"):
            if not isinstance(value, dict):
                raise ValueError
            return value
        if kind == "float | None" and value is None:
            return None
        if isinstance(value, (dict, list, tuple, set)) or value is None:
            raise ValueError
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind in ("float", "float | None"):
            if isinstance(value, bool) or not math.isfinite(float(value)):
                raise ValueError
            return float(value)
        if kind == "bool":
            if isinstance(value, str):
                return {"true": True, "false": False, "1": True, "0": False}[value.lower()]
            if value not in (0, 1):  # True, False, 0 or 1, nothing else
                raise ValueError
            return bool(value)
        if kind == "str":
            if isinstance(value, bool):
                raise ValueError
            return str(value)
    except (ValueError, KeyError, TypeError, OverflowError):
        raise UsageError(f"{name} must be of type {kind}, got {value!r}") from None
    return value


def _mapping(value: Any, what: str) -> dict[Any, Any]:
    """A YAML section that must be a mapping of fields (an empty one may be blank)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a mapping of fields, got {value!r}")
    return value


def load_spec(
    algo: str | None = None,
    spec_file: str | Path | None = None,
    profile: str = "quick",
    **overrides: Any,
) -> SweepSpec:
    """The spec of one sweep: the sweep file's profile, then `overrides`.

    >>> load_spec("PPO", env="cartpole", trials=2).max_concurrent
    0
    """
    if spec_file is None:
        if algo is None:
            raise UsageError("give an algorithm (--algo) or a sweep file (--spec)")
        if algo not in PRESETS:
            raise unknown("algorithm", algo, PRESETS)
        spec_file = default_spec_file(algo)
    path = Path(spec_file)
    if not path.is_absolute() and not path.exists() and (PROJECT_ROOT / path).exists():
        # `--spec sweeps/x.yaml` from anywhere: a job's driver or a cron line
        # may not start in the project folder.
        path = PROJECT_ROOT / path
    data = _read_yaml(path)
    _check_keys(data, path.name)
    profiles = _mapping(data.pop("profiles", None), f"profiles in {path.name}")
    per_env = _mapping(data.pop("envs", None), f"envs in {path.name}")
    env = _coerce("env", overrides.get("env") or data.get("env", FIELDS["env"].default))
    if env in per_env:
        # The env's own profiles (budget, sampling shape) replace the file's:
        # a CartPole sweep is sized for CartPole, a Breakout one unchanged.
        profiles = _mapping(per_env[env], f"envs.{env} in {path.name}")
        data["profile_from"] = f"{path.name} envs.{env}.{profile}"
    if profile not in PROFILES:
        raise unknown("profile", profile, PROFILES)
    if profile not in profiles:
        raise UsageError(f"sweep file {path.name!r} has no profile {profile!r}; "
                         f"it has: {', '.join(map(str, profiles)) or 'none'}")
    chosen = _mapping(profiles[profile], f"profile {profile!r} in {path.name}")
    _check_keys(chosen, f"{path.name} profile {profile!r}")
    merged = {"profile_from": f"{path.name} profiles.{profile}", **data, **chosen,
              "profile": profile, "spec_file": str(path)}
    if algo is not None:
        merged["algo"] = algo
    given = {k: v for k, v in overrides.items() if v is not None}
    merged.update(given)
    if "max_env_steps" in given:
        # A smaller budget from the command line shrinks what is sized by it,
        # unless those were given too.
        for key in ("grace_env_steps", "min_env_steps_per_iteration"):
            if key not in given and key in merged:
                merged[key] = min(_coerce(key, merged[key]),
                                  _coerce("max_env_steps", given["max_env_steps"]))
    if "algo" not in merged:
        raise UsageError(f"sweep file {path.name!r} names no algo; add `algo:` or pass --algo")
    for key in merged:
        if key not in FIELDS:
            raise unknown("field", key, FIELDS)
    return SweepSpec(**{k: _coerce(k, v) for k, v in merged.items()})
