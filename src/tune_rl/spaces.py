"""Loads an algorithm's search space and checks it before any trial starts.

A space is a dict of Ray Tune sampling primitives (see search_spaces/). The
check catches what would otherwise fail inside a trial, minutes in: a name
the algorithm does not take, a parameter its preset does not use (num_atoms
without a distributional head, say), a value RLlib rejects, or a filter
stack that does not fit the 84x84 observation.
"""

from __future__ import annotations

import importlib
import inspect
import math
import random
import sys
from typing import Any

from ray.tune.search.sample import Categorical, Domain, Float, Integer

from tune_rl.config import LR_SCHEDULE, MODEL_PARAMS, REPLAY_PARAMS, TrialSettings, build_config
from tune_rl.envs import EnvChoice
from tune_rl.errors import UsageError, unknown
from tune_rl.presets import CONV_FILTERS, HEAD_HIDDENS, LR_SCHEDULES, Preset
from tune_rl.spec import PROJECT_ROOT

OBS_SIZE = 84

# name -> (test, what is allowed)
_VALUE_RULES = {
    "lr": (lambda v: v > 0, "a number > 0"),
    "grad_clip": (lambda v: v > 0, "a number > 0"),
    "sigma0": (lambda v: v > 0, "a number > 0"),
    "num_atoms": (lambda v: int(v) == v and v >= 1, "an integer >= 1"),
    "n_step": (lambda v: int(v) == v and v >= 1, "an integer >= 1"),
    "target_network_update_freq": (lambda v: v >= 1, "an integer >= 1"),
    "per_alpha": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "per_beta": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "clip_param": (lambda v: v > 0, "a number > 0"),
    "entropy_coeff": (lambda v: v >= 0, "a number >= 0"),
    "vf_loss_coeff": (lambda v: v >= 0, "a number >= 0"),
    "minibatch_size": (lambda v: v >= 1, "an integer >= 1"),
    "num_epochs": (lambda v: v >= 1, "an integer >= 1"),
}


def space_module_name(algo: str) -> str:
    return f"search_spaces.{algo.lower()}"


def load_space(preset: Preset, env: EnvChoice) -> dict[str, Domain]:
    """The algorithm's SPACE, minus conv_filters where the env has no image."""
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    module_name = space_module_name(preset.name)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise UsageError(
            f"no search space for {preset.name}: expected "
            f"{PROJECT_ROOT / 'search_spaces' / (preset.name.lower() + '.py')}"
        ) from err
    space = dict(getattr(module, "SPACE", {}))
    if not space:
        raise UsageError(f"{module.__file__} defines no SPACE dict")
    if not env.atari:
        space.pop("conv_filters", None)
    return space


def allowed_params(preset: Preset) -> set[str]:
    config_cls = type(preset.algorithm_class.get_default_config())
    training_args = {
        name
        for cls in config_cls.__mro__
        if "training" in vars(cls)
        for name in inspect.signature(cls.training).parameters
    }
    not_searchable = {"self", "kwargs", "replay_buffer_config", "model", "learner_class",
                      "learner_connector", "add_default_connectors_to_learner_pipeline"}
    allowed = (training_args | MODEL_PARAMS | {LR_SCHEDULE}) - not_searchable
    if preset.is_dqn:
        allowed -= {"head_hiddens"}  # the DQN family's head is its `hiddens`
    if preset.prioritized_replay:
        allowed |= set(REPLAY_PARAMS)
    # Parameters of components the preset leaves off would do nothing, or
    # silently turn the component on: both make a misleading sweep.
    if not preset.distributional:
        allowed -= {"num_atoms", "v_min", "v_max"}
    if not preset.noisy:
        allowed -= {"sigma0"}
    return allowed


def candidate_values(name: str, domain: Any) -> list[Any]:
    """The values a domain can produce that matter for checking: its ends or choices."""
    if isinstance(domain, Categorical):
        return list(domain.categories)
    if isinstance(domain, Integer):
        return [domain.lower, domain.upper - 1]
    if isinstance(domain, Float):
        return [domain.lower, domain.upper]
    if isinstance(domain, Domain):
        raise UsageError(f"search parameter {name!r}: {type(domain).__name__} is not supported "
                         "by Optuna; use tune.choice, uniform, loguniform, randint, quniform")
    return [domain]


def conv_output_sides(filters: list, size: int = OBS_SIZE) -> list[int]:
    """The side of the feature map after each layer of a filter stack."""
    sides = []
    for spec in filters:
        kernel, stride = spec[1], spec[2]
        padding = spec[3] if len(spec) > 3 else "same"  # RLlib's default
        k = kernel[0] if isinstance(kernel, (list, tuple)) else kernel
        s = stride[0] if isinstance(stride, (list, tuple)) else stride
        size = math.ceil(size / s) if padding == "same" else (size - k) // s + 1
        sides.append(size)
    return sides


def filters_fit(filters: list, size: int = OBS_SIZE) -> bool:
    return min(conv_output_sides(filters, size)) >= 1


def conv_output_size(name: str) -> int:
    """Features after the named stack on the 84x84 observation ("nature": 3,136)."""
    filters = CONV_FILTERS[name]
    return conv_output_sides(filters)[-1] ** 2 * filters[-1][0]


def check_space(
    preset: Preset,
    env: EnvChoice,
    space: dict[str, Any],
    settings: TrialSettings | None = None,
    samples: int = 3,
) -> None:
    """Raises UsageError naming the parameter if any value of `space` would fail."""
    settings = settings or TrialSettings()
    allowed = allowed_params(preset)
    candidates = {}
    for name, domain in space.items():
        if name not in allowed:
            raise unknown(f"search parameter for {preset.name}:", name, sorted(allowed))
        candidates[name] = candidate_values(name, domain)
        for value in candidates[name]:
            _check_value(preset, name, value, settings)
    # RLlib's own validation on the space's corners and a few random points.
    rng = random.Random(0)
    corners = [{n: values[i % len(values)] for n, values in candidates.items()} for i in (0, 1)]
    randoms = [{n: (d.sample(random_state=rng.randrange(2**31)) if isinstance(d, Domain) else d)
                for n, d in space.items()} for _ in range(samples)]
    for params in corners + randoms:
        try:
            build_config(preset, env, params, settings).validate()
        # RLlib's validation refuses values with ValueError (AlgorithmConfig.
        # _value_error, deprecation_warning); anything else is a bug, shown as one.
        except ValueError as err:
            raise UsageError(f"RLlib rejects {preset.name} with {params}: {err}") from None


def _check_value(preset: Preset, name: str, value: Any, settings: TrialSettings) -> None:
    if name == "conv_filters":
        if value not in CONV_FILTERS:
            raise unknown("conv_filters name", value, CONV_FILTERS)
        if not filters_fit(CONV_FILTERS[value]):
            raise UsageError(f"conv_filters {value!r} does not fit the "
                             f"{OBS_SIZE}x{OBS_SIZE} observation")
        return
    names = {"head_hiddens": HEAD_HIDDENS, LR_SCHEDULE: LR_SCHEDULES}.get(name)
    if names is not None:
        if value not in names:
            raise unknown(f"{name} name", value, names)
        return
    rule = _VALUE_RULES.get(name)
    if rule and not (isinstance(value, (int, float)) and rule[0](value)):
        raise UsageError(f"search parameter {name}={value!r} is not allowed: "
                         f"{name} must be {rule[1]}")
    if name == "n_step":
        fragment = settings.rollout_fragment_length
        if isinstance(fragment, int) and value > fragment:
            raise UsageError(f"search parameter n_step={value} is larger than "
                             f"rollout_fragment_length={fragment}")


def space_summary(space: dict[str, Any]) -> dict[str, str]:
    """Readable one-liners per parameter, for --dry-run and MLflow."""
    out = {}
    for name, d in space.items():
        if isinstance(d, Categorical):
            out[name] = f"choice {list(d.categories)}"
        elif isinstance(d, (Float, Integer)):
            log = "log" if type(d.sampler).__name__ == "_LogUniform" else ""
            kind = "randint" if isinstance(d, Integer) else f"{log}uniform"
            out[name] = f"{kind} [{d.lower}, {d.upper}{')' if isinstance(d, Integer) else ']'}"
        else:
            out[name] = repr(d)
    return out
