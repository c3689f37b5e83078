"""Every search space builds configs RLlib accepts; bad values are refused early."""

from __future__ import annotations

import random

import pytest
from ray import tune

from tune_rl.config import TrialSettings, build_config
from tune_rl.envs import ENVS
from tune_rl.errors import UsageError
from tune_rl.presets import CONV_FILTERS, FCNET_HIDDENS, HEAD_HIDDENS, PRESETS
from tune_rl.spaces import check_space, filters_fit, load_space


@pytest.mark.parametrize("env", ["breakout", "cartpole"])
@pytest.mark.parametrize("algo", list(PRESETS))
def test_sampled_spaces_pass_rllib_validation(algo, env):
    preset, env_choice = PRESETS[algo], ENVS[env]
    space = load_space(preset, env_choice)
    check_space(preset, env_choice, space)
    rng = random.Random(algo)
    for _ in range(5):
        params = {k: d.sample(random_state=rng.randrange(2**31)) for k, d in space.items()}
        config = build_config(preset, env_choice, params)
        config.validate()
        if "conv_filters" in params:
            assert config.model_config["conv_filters"] == CONV_FILTERS[params["conv_filters"]]
        if "head_hiddens" in params:
            assert (config.model_config["head_fcnet_hiddens"]
                    == HEAD_HIDDENS[params["head_hiddens"]])
        if params.get("lr_schedule") == "linear":  # [[0, lr], [budget, 0.0]]
            assert config.lr == [[0, params["lr"]], [TrialSettings().max_env_steps, 0.0]]
        if "fcnet" in params:
            assert config.model_config["fcnet_hiddens"] == FCNET_HIDDENS[params["fcnet"]]
        named = {"conv_filters", "head_hiddens", "fcnet", "lr_schedule", "per_alpha",
                 "per_beta"}
        if params.get("lr_schedule") == "linear":
            named.add("lr")
        for name in params.keys() - named:
            assert getattr(config, name) == params[name]
        if "per_alpha" in params:
            assert config.replay_buffer_config["alpha"] == params["per_alpha"]


@pytest.mark.parametrize("algo", list(PRESETS))
def test_space_holds_only_what_the_algorithm_uses(algo):
    preset = PRESETS[algo]
    space = load_space(preset, ENVS["breakout"])
    assert {"lr", "grad_clip", "conv_filters"} <= set(space)
    assert ("num_atoms" in space) == preset.distributional
    assert ("sigma0" in space) == preset.noisy
    assert ("per_alpha" in space) == preset.prioritized_replay
    assert ("n_step" in space) == (preset.training.get("n_step", 1) > 1)
    assert "conv_filters" not in load_space(preset, ENVS["cartpole"])


@pytest.mark.parametrize("algo, param, domain, expected", [
    ("DQN_C51", "num_atoms", tune.choice([0, 51]), "num_atoms must be an integer >= 1"),
    ("Noisy_DQN", "sigma0", tune.uniform(0.0, 1.0), "sigma0 must be a number > 0"),
    ("DQN", "grad_clip", tune.choice([-1.0]), "grad_clip must be a number > 0"),
    ("DQN", "conv_filters", tune.choice(["nature", "huge"]), "unknown conv_filters name 'huge'"),
    ("DQN", "num_atoms", tune.choice([51]), "unknown search parameter for DQN: 'num_atoms'"),
    ("PPO", "sigma0", tune.choice([0.5]), "unknown search parameter for PPO: 'sigma0'"),
])
def test_bad_space_values_name_the_parameter(algo, param, domain, expected):
    preset = PRESETS[algo]
    space = {**load_space(preset, ENVS["breakout"]), param: domain}
    with pytest.raises(UsageError, match=expected):
        check_space(preset, ENVS["breakout"], space)


def test_n_step_larger_than_the_rollout_fragment_is_refused():
    preset = PRESETS["Rainbow_DQN"]
    settings = TrialSettings(rollout_fragment_length=2)  # Rainbow's space: n_step in 1, 3, 5
    with pytest.raises(UsageError, match="n_step=3 is larger than rollout_fragment_length=2"):
        check_space(preset, ENVS["breakout"], load_space(preset, ENVS["breakout"]), settings)


def test_a_filter_stack_that_does_not_fit_84x84_is_refused(monkeypatch):
    too_deep = [[32, 8, 4, "valid"], [64, 8, 4, "valid"], [64, 8, 4, "valid"]]
    assert not filters_fit(too_deep)
    assert all(filters_fit(f) for f in CONV_FILTERS.values())
    monkeypatch.setitem(CONV_FILTERS, "too_deep", too_deep)
    preset = PRESETS["DQN"]
    space = {**load_space(preset, ENVS["breakout"]), "conv_filters": tune.choice(["too_deep"])}
    with pytest.raises(UsageError, match="'too_deep' does not fit the 84x84 observation"):
        check_space(preset, ENVS["breakout"], space)


def test_a_value_only_rllib_rejects_is_refused_with_rllibs_reason():
    preset = PRESETS["PPO"]
    space = {**load_space(preset, ENVS["breakout"]), "minibatch_size": tune.choice([10**6])}
    with pytest.raises(UsageError, match="RLlib rejects PPO with .*'minibatch_size': 1000000"):
        check_space(preset, ENVS["breakout"], space)


def test_a_bug_while_checking_a_space_is_not_passed_off_as_rllibs_refusal(monkeypatch):
    def broken(*args, **kwargs):
        raise TypeError("a bug in build_config")

    monkeypatch.setattr("tune_rl.spaces.build_config", broken)
    preset = PRESETS["PPO"]
    with pytest.raises(TypeError, match="a bug in build_config"):
        check_space(preset, ENVS["breakout"], load_space(preset, ENVS["breakout"]))
