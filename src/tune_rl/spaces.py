"""Loads an algorithm's search space and checks it before any trial starts.

A space is a dict of Ray Tune sampling primitives (see search_spaces/). The
check catches what would otherwise fail inside a trial, minutes in: a name
the algorithm does not take, a parameter its preset does not use (num_atoms
without a distributional head, say), a value RLlib rejects, or a filter
stack that does not fit the 84x84 observation. A sweep's fixed `training:`
values are checked the same way, and what RLlib itself lets through is
stopped by stated ranges: RLlib 2.60 validates neither gamma (a PPO config
with 1.5 validates, and trains) nor num_atoms (0 validates and even builds
a network, with an empty output layer; the trial crashes once it runs),
and its replay buffers take **kwargs, so a misspelt buffer setting is
silently ignored (replay.py).
"""

from __future__ import annotations

import importlib
import inspect
import math
import random
import sys
from typing import Any

from ray.tune.search.sample import Categorical, Domain, Float, Integer

from tune_rl.config import (
    LR_SCHEDULE,
    MODEL_PARAMS,
    REPLAY_PARAMS,
    TrialSettings,
    build_config,
    env_steps_per_update,
    stated_update_period,
)
from tune_rl.envs import EnvChoice
from tune_rl.errors import UsageError, unknown
from tune_rl.presets import CONV_FILTERS, FCNET_HIDDENS, HEAD_HIDDENS, LR_SCHEDULES, Preset
from tune_rl.replay import merged_buffer_config
from tune_rl.spec import PROJECT_ROOT

OBS_SIZE = 84


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _integer(value: Any) -> bool:
    return _number(value) and int(value) == value


def _schedule(value_ok) -> Any:
    """RLlib's [[env_step, value], ...]: from step 0, steps not going back."""
    def test(value: Any) -> bool:
        if not isinstance(value, list) or len(value) < 2:
            return False
        if not all(isinstance(p, list) and len(p) == 2 and _integer(p[0]) and value_ok(p[1])
                   for p in value):
            return False
        steps = [p[0] for p in value]
        return steps[0] == 0 and steps == sorted(steps)
    return test


def _positive(v):
    return _number(v) and v > 0


def _at_least(n):
    return lambda v: _integer(v) and v >= n


def _between(low, high):
    return lambda v: _integer(v) and low <= v <= high


def _unit(v):
    return _number(v) and 0 <= v <= 1


# name -> (test, what is allowed): the values tune-rl takes for a parameter,
# searched or fixed in a sweep's `training:`. RLlib's own validation runs on
# top of these (check_space): what it lets through silently (gamma 1.5, say)
# or only fails on inside a trial (num_atoms 0) is stopped here.
_VALUE_RULES = {
    "lr": (lambda v: _positive(v) or _schedule(lambda x: _number(x) and x >= 0)(v),
           "a number > 0, or a schedule [[0, lr], [env_step, lr], ...] of numbers >= 0"),
    "epsilon": (lambda v: _unit(v) or _schedule(_unit)(v),
                "a number in [0, 1], or a schedule [[0, epsilon], [env_step, epsilon], ...] "
                "of numbers in [0, 1]"),
    "gamma": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "tau": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "lambda_": (_unit, "a number in [0, 1]"),
    "grad_clip": (lambda v: v is None or _positive(v), "a number > 0, or null (no clipping)"),
    "adam_epsilon": (_positive, "a number > 0"),
    "sigma0": (_positive, "a number > 0"),
    # Upper bounds where a value is a size: the network is built at the
    # space's extremes before launch, and num_atoms 10**9 would take all memory.
    "num_atoms": (_between(1, 1001), "an integer >= 1 and at most 1001"),
    "n_step": (_between(1, 100), "an integer >= 1 and at most 100"),
    "v_min": (_number, "a number (below v_max)"),
    "v_max": (_number, "a number (above v_min)"),
    "target_network_update_freq": (_at_least(1), "an integer >= 1"),
    "num_steps_sampled_before_learning_starts": (_at_least(0), "an integer >= 0"),
    "train_batch_size": (_at_least(1), "an integer >= 1"),
    "train_batch_size_per_learner": (_at_least(1), "an integer >= 1"),
    "training_intensity": (_positive, "a number > 0"),
    "hiddens": (lambda v: isinstance(v, list) and len(v) <= 8
                and all(_between(1, 4096)(n) for n in v),
                "a list of integers >= 1 (up to 8 layer sizes, each at most 4096)"),
    "per_alpha": (_unit, "a number in [0, 1]"),
    "per_beta": (_unit, "a number in [0, 1]"),
    "clip_param": (_positive, "a number > 0"),
    "vf_clip_param": (_positive, "a number > 0"),
    "kl_coeff": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "kl_target": (_positive, "a number > 0"),
    "entropy_coeff": (lambda v: (_number(v) and v >= 0)
                      or _schedule(lambda x: _number(x) and x >= 0)(v),
                      "a number >= 0, or a schedule of numbers >= 0"),
    "vf_loss_coeff": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "minibatch_size": (_at_least(1), "an integer >= 1"),
    "num_epochs": (_at_least(1), "an integer >= 1"),
}
# `.training()` arguments a sweep may not set: tune-rl sets them itself
# (learner, connectors, the replay buffer's checkpoints: trainable.py), they
# belong to RLlib's old API stack, or RLlib 2.60 moved them to `.learners()`
# and only warns (num_aggregator_actors_per_learner 10**9 then asks Ray for
# a billion actors' resources).
NOT_SETTABLE = {"self", "kwargs", "model", "learner_class", "learner_connector",
                "add_default_connectors_to_learner_pipeline", "before_learn_on_batch",
                "optimizer", "store_buffer_in_checkpoints", "learner_config_dict",
                "num_aggregator_actors_per_learner",
                "max_requests_in_flight_per_aggregator_actor"}


def space_module_name(algo: str) -> str:
    return f"search_spaces.{algo.lower()}"


def _space_module(preset: Preset):
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    module_name = space_module_name(preset.name)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise UsageError(
            f"no search space for {preset.name}: expected "
            f"{PROJECT_ROOT / 'search_spaces' / (preset.name.lower() + '.py')}"
        ) from err


def space_source(preset: Preset, env: EnvChoice) -> str:
    """Where the space comes from: the module's space for the env, or its default."""
    module = _space_module(preset)
    where = f"search_spaces/{preset.name.lower()}.py"
    if env.name in getattr(module, "SPACES", {}):
        return f"{where} SPACES[{env.name!r}]"
    return f"{where} SPACE" + ("" if env.atari else " (conv_filters dropped: no image)")


def load_space(preset: Preset, env: EnvChoice) -> dict[str, Domain]:
    """The algorithm's space for `env`: the module's `SPACES[env]` where it
    gives one, else its `SPACE` minus conv_filters where the env has no image."""
    module = _space_module(preset)
    space = dict(getattr(module, "SPACES", {}).get(env.name) or getattr(module, "SPACE", {}))
    if not space:
        raise UsageError(f"{module.__file__} defines no SPACE dict")
    if not env.atari:
        space.pop("conv_filters", None)
    return space


def load_mutable(preset: Preset, env: EnvChoice) -> dict[str, Domain]:
    """What PBT and PB2 may change while a trial trains, with the space's own
    ranges: the module's `MUTABLE` names that this env's space searches as
    numbers. Structural choices (encoders, atoms, heads) never change mid-trial."""
    module, space = _space_module(preset), load_space(preset, env)
    names = getattr(module, "MUTABLE", ())
    mutable = {n: space[n] for n in names if isinstance(space.get(n), (Float, Integer))}
    if not mutable:
        raise UsageError(f"search_spaces/{preset.name.lower()}.py names no MUTABLE parameter "
                         f"that its {env.name} space searches as a number: PBT and PB2 need "
                         "at least one (e.g. MUTABLE = (\"lr\",))")
    return mutable


def training_args(preset: Preset) -> set[str]:
    """The `.training()` arguments of the preset's RLlib config that a sweep may set."""
    config = preset.algorithm_class.get_default_config()
    # An argument that is no attribute of the config is a deprecated one
    # (num_sgd_iter, ...), which RLlib only warns about.
    return {
        name
        for cls in type(config).__mro__
        if "training" in vars(cls)
        for name in inspect.signature(cls.training).parameters
        if hasattr(config, name)
    } - NOT_SETTABLE


def allowed_params(preset: Preset) -> set[str]:
    allowed = (training_args(preset) | MODEL_PARAMS | {LR_SCHEDULE}) - {"replay_buffer_config"}
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
    """The values a domain can produce that matter for checking: its ends or
    choices, numbers smallest first (the first and last are its extremes)."""
    if isinstance(domain, Categorical):
        values = list(domain.categories)
        return sorted(values) if all(_number(v) for v in values) else values
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
    """Raises UsageError naming the parameter if any value of `space`, or of
    the sweep's fixed `training:` values (settings.training), would fail.

    Each value is checked against its stated range (_VALUE_RULES) or the type
    of RLlib's default; then RLlib validates the whole config, with the
    training values applied, at the space's two extremes (every parameter at
    its smallest, then at its largest) and a few random points, and for the
    DQN family the network is built at both extremes: a value the module
    cannot take fails here, on the CPU, before Ray starts.
    """
    settings = settings or TrialSettings()
    check_training(preset, settings)
    allowed = allowed_params(preset)
    candidates = {}
    for name, domain in space.items():
        if name not in allowed:
            raise unknown(f"search parameter for {preset.name}:", name, sorted(allowed))
        candidates[name] = candidate_values(name, domain)
        for value in candidates[name]:
            _check_value(preset, name, value, settings, f"search parameter {name}")
    rng = random.Random(0)
    corners = [{n: values[i] for n, values in candidates.items()} for i in (0, -1)]
    randoms = [{n: (d.sample(random_state=rng.randrange(2**31)) if isinstance(d, Domain) else d)
                for n, d in space.items()} for _ in range(samples)]
    for index, params in enumerate(corners + randoms):
        try:
            config = build_config(preset, env, params, settings)
            config.validate()
        # RLlib's validation refuses values with ValueError (AlgorithmConfig.
        # _value_error, deprecation_warning); anything else is a bug, shown as one.
        except ValueError as err:
            raise UsageError(f"RLlib rejects {preset.name} with {_where(params, settings)}: "
                             f"{_one_line(err)}") from None
        _check_relations(config, params, settings)
        if preset.is_dqn:
            _check_replay_ratio(config)
        if preset.is_dqn and index < len(corners):
            _build_module(preset, env, config, params, settings)


def check_training(preset: Preset, settings: TrialSettings) -> None:
    """The sweep's fixed `training:` values: known names, each of its type and range."""
    allowed = training_args(preset)
    for name, value in settings.training.items():
        if name not in allowed:
            raise unknown(f"training key for {preset.name} (RLlib {preset.rllib_algo}):", name,
                          sorted(allowed))
        if name == "replay_buffer_config":
            if not isinstance(value, dict):
                raise UsageError(f"training.replay_buffer_config must be a mapping of the "
                                 f"replay buffer's settings, got {value!r}")
            merged_buffer_config(preset.training["replay_buffer_config"], value)
            continue
        _check_value(preset, name, value, settings, f"training.{name}")


def _where(params: dict[str, Any], settings: TrialSettings) -> str:
    parts = [f"{params}"] if params else []
    if settings.training:
        parts.append(f"training {settings.training}")
    return " and ".join(parts) or "its preset"


def _check_relations(config, params: dict[str, Any], settings: TrialSettings) -> None:
    """What holds between values, which RLlib does not check itself."""
    if getattr(config, "num_atoms", 1) > 1 and not config.v_min < config.v_max:
        raise UsageError(f"v_min ({config.v_min}) must be below v_max ({config.v_max}) "
                         f"with {_where(params, settings)}")


def _check_replay_ratio(config) -> None:
    """RLlib's update period, after its rounding, must be the one the config states."""
    period = stated_update_period(config)
    if period is None:
        return
    actual = env_steps_per_update(config)
    if math.isclose(actual, period):
        return
    runners, envs = config.num_env_runners, config.num_envs_per_env_runner
    fragment = config.get_rollout_fragment_length()
    fragments = [f for f in range(max(1, int(config.n_step)), 65)
                 if math.isclose(env_steps_per_update(config, fragment=f), period)][:6]
    env_counts = [e for e in range(1, 65)
                  if math.isclose(env_steps_per_update(config, envs=e), period)][:6]
    shapes = []
    if fragments:
        shapes.append(f"rollout_fragment_length {', '.join(map(str, fragments))} with "
                      f"{envs} envs per runner")
    if env_counts:
        shapes.append(f"envs_per_env_runner {', '.join(map(str, env_counts))} with "
                      f"rollout_fragment_length {fragment}")
    raise UsageError(
        f"RLlib would train every {actual:g} env steps, not every {period:g} (batches of "
        f"{config.total_train_batch_size} at training_intensity "
        f"{config.total_train_batch_size / period:g}): it rounds its sample/train "
        f"weights to integers (dqn.py calculate_rr_weights) and samples {fragment} steps x "
        f"{envs} envs x {max(runners, 1)} runner(s) a round. "
        + (f"Exact: {'; or '.join(shapes)}" if shapes else
           "No shape is exact: make the batch size over training_intensity a whole number"))


def _build_module(preset: Preset, env: EnvChoice, config, params: dict[str, Any],
                  settings: TrialSettings) -> None:
    from tune_rl.config import build_module

    try:
        build_module(preset, env, config)
    # Torch refuses impossible layer shapes with ValueError or RuntimeError.
    except (ValueError, RuntimeError) as err:
        raise UsageError(f"the {preset.name} network cannot be built with "
                         f"{_where(params, settings)}: {_one_line(err)}") from None


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())  # RLlib's messages span lines; ours are one


def _check_value(preset: Preset, name: str, value: Any, settings: TrialSettings,
                 where: str) -> None:
    if name == "conv_filters":
        if value not in CONV_FILTERS:
            raise unknown("conv_filters name", value, CONV_FILTERS)
        if not filters_fit(CONV_FILTERS[value]):
            raise UsageError(f"conv_filters {value!r} does not fit the "
                             f"{OBS_SIZE}x{OBS_SIZE} observation")
        return
    names = {"head_hiddens": HEAD_HIDDENS, "fcnet": FCNET_HIDDENS,
             LR_SCHEDULE: LR_SCHEDULES}.get(name)
    if names is not None:
        if value not in names:
            raise unknown(f"{name} name", value, names)
        return
    rule = _VALUE_RULES.get(name) or _default_type_rule(preset, name)
    if rule and not rule[0](value):
        raise UsageError(f"{where}={value!r} is not allowed: {name} must be {rule[1]}")
    if name == "n_step":
        fragment = settings.rollout_fragment_length
        if isinstance(fragment, int) and value > fragment:
            raise UsageError(f"{where}={value} is larger than "
                             f"rollout_fragment_length={fragment}")


def _default_type_rule(preset: Preset, name: str):
    """A value of the type of RLlib's default for `name`, where tune-rl states no range."""
    default = getattr(preset.algorithm_class.get_default_config(), name, None)
    if isinstance(default, bool):
        return (lambda v: isinstance(v, bool)), "true or false"
    if isinstance(default, int):
        return _integer, "an integer"
    if isinstance(default, float):
        return _number, "a number"
    for kind, what in ((str, "a string"), (dict, "a mapping"), (list, "a list")):
        if isinstance(default, kind):
            return (lambda v, kind=kind: isinstance(v, kind)), what
    return None


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
