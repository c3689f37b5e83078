"""Turns a preset, an env and one trial's searched values into an RLlib config.

Built with RLlib's own builder API (`.environment().training()...`), never by
editing its dictionaries, so RLlib validates every value itself.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from tune_rl.envs import (
    EnvChoice,
    ScoreCallback,
    frame_stack_env_to_module,
    frame_stack_learner,
)
from tune_rl.learner import TuneRLDQNLearner
from tune_rl.networks import TuneRLDQNModule
from tune_rl.presets import (
    CONV_FILTERS,
    FCNET_HIDDENS,
    HEAD_HIDDENS,
    SCHEDULED,
    Preset,
)
from tune_rl.replay import BETA_ANNEALING_TYPES, merged_buffer_config
from tune_rl.search import SEED

# Searched names that are not `.training()` keyword arguments.
REPLAY_PARAMS = {"per_alpha": "alpha", "per_beta": "beta"}
MODEL_PARAMS = {"conv_filters", "head_hiddens", "fcnet"}
LR_SCHEDULE = "lr_schedule"  # searched by name (presets.LR_SCHEDULES), not a .training() kwarg


@dataclass(frozen=True)
class TrialSettings:
    """What the sweep spec fixes for every trial (the searched values aside)."""

    seed: int = 0
    env_runners: int = 0  # 0: sample in the trial's own process
    envs_per_env_runner: int = 1
    cpus_per_env_runner: int = 1
    rollout_fragment_length: int | str = "auto"
    gpus_per_learner: float = 0
    min_env_steps_per_iteration: int = 1000
    # Multiplies the preset's schedules given in env steps (epsilon decay,
    # learning starts): a quick profile shrinks the Atari values to its budget.
    schedule_scale: float = 1.0
    # The trial's budget: PER's beta reaches 1 at its end.
    max_env_steps: int = 12_500_000  # Hessel et al. 2018: 50M frames
    # When the trial evaluates itself (trainable.py, evaluation.py): every
    # so many iterations (each interval listed), on the first result at or
    # past each env-step milestone (ASHA's rungs), and at its end.
    eval_every_iterations: tuple[int, ...] = ()
    eval_at_env_steps: tuple[int, ...] = ()
    eval_at_end: bool = False
    eval_episodes: int = 5
    env_config: dict[str, Any] = field(default_factory=dict)
    # Fixed `.training()` overrides from the spec (e.g. a smaller PPO batch
    # for quick runs); searched values still win over these.
    training: dict[str, Any] = field(default_factory=dict)
    # The DQN family's replay buffer in every checkpoint, not only the latest
    # (trainable.py): for PBT and PB2, which restore from other trials'.
    replay_in_every_checkpoint: bool = False
    # The DQN family samples Breakout through VectorEnvRunner (env_runner.py)
    # where it plays the env_config; False keeps RLlib's own env runner.
    vector_env_runner: bool = True


def build_config(
    preset: Preset,
    env: EnvChoice,
    params: dict[str, Any],
    settings: TrialSettings | None = None,
) -> AlgorithmConfig:
    """The RLlib config of one trial: preset, then spec overrides, then `params`."""
    settings = settings or TrialSettings()
    training = _scaled(copy.deepcopy(preset.training), settings.schedule_scale)
    overrides = copy.deepcopy(settings.training)
    if preset.is_dqn and "replay_buffer_config" in overrides:
        # Merged, not replaced: RLlib would fill what a partial dict leaves
        # out from its own default, the prioritized buffer (replay.py).
        overrides["replay_buffer_config"] = merged_buffer_config(
            training["replay_buffer_config"], overrides["replay_buffer_config"])
    training.update(overrides)
    model: dict[str, Any] = {}
    lr_schedule = "constant"
    seed = settings.seed
    for name, value in params.items():
        if name == SEED:  # each trial's own (search.SeededTrials)
            seed = int(value)
        elif name == "conv_filters":
            model["conv_filters"] = CONV_FILTERS[value]
        elif name == "head_hiddens":
            model["head_fcnet_hiddens"] = list(HEAD_HIDDENS[value])
        elif name == "fcnet":
            model["fcnet_hiddens"] = list(FCNET_HIDDENS[value])
        elif name == LR_SCHEDULE:
            lr_schedule = value
        elif name in REPLAY_PARAMS:
            buffer = training.setdefault("replay_buffer_config", {})
            buffer[REPLAY_PARAMS[name]] = value
        else:
            training[name] = value
    lr = training.get("lr", preset.algorithm_class.get_default_config().lr)
    if lr_schedule == "linear" and not isinstance(lr, list):
        # RLlib steps a [[env_step, lr], ...] schedule by lifetime env steps
        # sampled, after each update (Learner.after_gradient_based_update).
        # A schedule given whole (a reference's, over its published run's
        # length: references.py) is kept as it is.
        training["lr"] = [[0, lr], [settings.max_env_steps, 0.0]]
    if env.atari:
        model.setdefault("conv_filters", CONV_FILTERS["nature"])
        model["conv_activation"] = "relu"
    module_spec, learner_class = None, None
    if preset.is_dqn:
        # `hiddens` and `noisy` are old-stack keys that RLlib's new-stack
        # DQN never reads: our module (networks.py) reads them from the model
        # config. DQNConfig passes sigma0 on itself, as `std_init`.
        model["head_fcnet_hiddens"] = list(training.pop("hiddens", []))
        model["noisy"] = bool(training.get("noisy", False))
        module_spec = RLModuleSpec(module_class=TuneRLDQNModule)
        learner_class = TuneRLDQNLearner
        if settings.env_runners > 0 and training.get("training_intensity"):
            # RLlib's calculate_rr_weights (dqn.py) counts the local env
            # runner as sampling too (num_env_runners + 1), but with remote
            # runners it does not sample: scaled, the ratio of env steps
            # trained to sampled is the preset's.
            training["training_intensity"] *= settings.env_runners / (settings.env_runners + 1)
        buffer = training.get("replay_buffer_config", {})
        if buffer.get("type") in BETA_ANNEALING_TYPES:  # RLlib's own takes a fixed beta
            buffer["beta_anneal_env_steps"] = settings.max_env_steps
    # See envs.py: DQN's replay buffers cannot feed RLlib's frame stacking.
    stack_in_connectors = env.atari and not preset.is_dqn
    env_config = {**settings.env_config, "stack_frames_in_env": env.atari and preset.is_dqn}

    config = (
        preset.algorithm_class
        .get_default_config()
        .environment(env.registered_name, env_config=env_config)
        .framework("torch")
        .env_runners(
            num_env_runners=settings.env_runners,
            num_envs_per_env_runner=settings.envs_per_env_runner,
            num_cpus_per_env_runner=settings.cpus_per_env_runner,
            rollout_fragment_length=settings.rollout_fragment_length,
            # The DQN family's replay buffer appends each sampled chunk to the
            # stored episode. As numpy arrays (RLlib's default) every append
            # copies the whole episode so far, twice (np.delete of the shared
            # boundary, then np.concatenate): quadratic in the game's length.
            # Kept as lists, an append copies only the chunk.
            episodes_to_numpy=not preset.is_dqn,
            env_to_module_connector=frame_stack_env_to_module if stack_in_connectors else None,
        )
        .learners(
            num_gpus_per_learner=settings.gpus_per_learner,
            learner_connector=frame_stack_learner if stack_in_connectors else None,
            learner_class=learner_class,
        )
        # RLlib's default scans every gradient for NaN before each step (and
        # zeroes it, hiding a diverging trial): about 40 ms of Rainbow's update
        # on CPU. The trainable watches losses, gradient norm and weights
        # instead and stops a diverged trial (trainable.py).
        .framework(torch_skip_nan_gradients=True)
        .training(**training)
        # RLlib's model defaults, then ours: a plain dict would leave out
        # DefaultModelConfig's own defaults (vf_share_layers=True among them:
        # PPO would build two encoders), and "noisy" is no field of it.
        .rl_module(rl_module_spec=module_spec,
                   model_config={**dataclasses.asdict(DefaultModelConfig()), **model})
        .callbacks(ScoreCallback)
        # RLlib's own recovery: a crashed env runner is restarted, not fatal.
        .fault_tolerance(restart_failed_env_runners=True)
        # Iterations are sized in env steps, the unit ASHA compares trials in;
        # IMPALA's and APPO's default 10-second floor would make them time-sized.
        .reporting(min_sample_timesteps_per_iteration=settings.min_env_steps_per_iteration,
                   min_time_s_per_iteration=0)
        .debugging(seed=seed)
    )
    runner = env_runner_class(preset, env, env_config, settings)
    if runner is not None:
        config.env_runners(env_runner_cls=runner)
    if preset.is_dqn and settings.rollout_fragment_length == "auto":
        fragment = exact_fragment_length(config)
        if fragment is not None:
            config.env_runners(rollout_fragment_length=fragment)
    return config


def env_runner_class(preset: Preset, env: EnvChoice, env_config: dict[str, Any],
                     settings: TrialSettings):
    """VectorEnvRunner for the DQN family on Breakout, where it plays the
    env_config as make_breakout does (vector_breakout.supports); None keeps
    RLlib's SingleAgentEnvRunner (noop_max, terminal_on_life_loss, PPO's
    connector frame stacking, CartPole)."""
    from tune_rl.vector_breakout import supports

    if not (settings.vector_env_runner and preset.is_dqn and env.name == "breakout"
            and supports(env_config)):
        return None
    from tune_rl.env_runner import VectorEnvRunner

    return VectorEnvRunner


def stated_update_period(config: AlgorithmConfig) -> float | None:
    """Env steps per update that the config asks for: its batch over its
    training_intensity (Dopamine's update_period 4 for the presets), before
    build_config's scaling for remote env runners; None without one."""
    intensity = config.training_intensity
    if not intensity:
        return None
    runners = config.num_env_runners
    if runners > 0:
        intensity *= (runners + 1) / runners
    return config.total_train_batch_size / intensity


def env_steps_per_update(config: AlgorithmConfig, fragment: int | None = None,
                         envs: int | None = None) -> float:
    """Env steps RLlib's DQN really samples per update with this config.

    RLlib (dqn.py, `_training_step_new_api_stack`) alternates sampling and
    updating by the integer round-robin weights of `calculate_rr_weights`:
    `store` sampling rounds, each one `sample()` per env runner (the local
    one without remote runners), fragment x envs env steps each, then
    `train` updates. The weights are rounded, so the replay ratio is exact
    only for some shapes: with rollout_fragment_length "auto" (RLlib's is
    n_step) Rainbow's n_step 3 and one env give an update every 3 env steps,
    not 4; 5 envs with a fragment of 1 give one every 5. Computed by RLlib's
    own function, for the config's shape or the one given.
    """
    from types import SimpleNamespace

    from ray.rllib.algorithms.dqn.dqn import calculate_rr_weights

    fragment = fragment or config.get_rollout_fragment_length()
    envs = envs or config.num_envs_per_env_runner
    shape = SimpleNamespace(
        training_intensity=config.training_intensity,
        total_train_batch_size=config.total_train_batch_size,
        get_rollout_fragment_length=lambda: fragment,
        num_envs_per_env_runner=envs,
        num_env_runners=config.num_env_runners,
    )
    store, train = calculate_rr_weights(shape)
    return store * fragment * envs * max(config.num_env_runners, 1) / train


def exact_fragment_length(config: AlgorithmConfig, longest: int = 64) -> int | None:
    """The shortest rollout fragment, at least n_step (RLlib requires it),
    with which RLlib updates exactly every stated_update_period env steps."""
    period = stated_update_period(config)
    if period is None:
        return None
    return next((f for f in range(max(1, int(config.n_step)), longest + 1)
                 if math.isclose(env_steps_per_update(config, fragment=f), period)), None)


def _scaled(training: dict[str, Any], scale: float) -> dict[str, Any]:
    """The preset's env-step schedules (SCHEDULED) multiplied by `scale`."""
    if scale == 1.0:
        return training
    for key in SCHEDULED:
        value = training.get(key)
        if isinstance(value, list):  # [[env_step, value], ...]
            training[key] = [[int(step * scale), v] for step, v in value]
        elif isinstance(value, int):
            training[key] = int(value * scale)
    return training


def describe_network(preset: Preset, env: EnvChoice, params: dict[str, Any] | None = None,
                     settings: TrialSettings | None = None) -> dict[str, Any]:
    """The network RLlib really builds for a trial: layers, sizes, parameter count.

    Read off the built module, not the config: on RLlib's new stack some
    config keys are never read (networks.py), and this is where that shows.
    """
    from tune_rl.networks import describe_module

    config = build_config(preset, env, params or {}, settings)
    return describe_module(build_module(preset, env, config))


def build_module(preset: Preset, env: EnvChoice, config: AlgorithmConfig):
    """The RL module a trial of `config` trains, built here on the CPU."""
    spaces = (policy_observation_space(preset, env), _action_space(env))
    return config.get_rl_module_spec(spaces={"default_policy": spaces},
                                     inference_only=False).build()


_ACTION_SPACES: dict[str, Any] = {}


def _action_space(env: EnvChoice):
    if env.name not in _ACTION_SPACES:  # making an ALE env loads the ROM: once
        sample_env = env.make({})
        try:
            _ACTION_SPACES[env.name] = sample_env.action_space
        finally:
            sample_env.close()
    return _ACTION_SPACES[env.name]


def policy_observation_space(preset: Preset, env: EnvChoice):
    """What the trained network takes: for Breakout, four stacked 84x84 frames,
    uint8 for the DQN family (stacked in the env, envs.py), float32 in [0, 1]
    for the others (stacked by RLlib's connectors)."""
    import gymnasium as gym
    import numpy as np

    if not env.atari:
        return gym.spaces.Box(-np.inf, np.inf, env.policy_obs_shape, np.float32)
    if preset.is_dqn:
        return gym.spaces.Box(0, 255, env.policy_obs_shape, np.uint8)
    return gym.spaces.Box(0.0, 1.0, env.policy_obs_shape, np.float32)
