"""The ten presets carry exactly the notebook's values (DESIGN.md)."""

from __future__ import annotations

import pytest

from tune_rl.config import build_config
from tune_rl.envs import ENVS
from tune_rl.presets import CONV_FILTERS, EVALUATION, PRESETS

PER = {"type": "PrioritizedEpisodeReplayBuffer", "capacity": 60000, "alpha": 0.5, "beta": 0.5}
PLAIN = {"double_q": False, "dueling": False, "noisy": False, "num_atoms": 1, "n_step": 1}

# What the built RLlib config must hold, per preset (DESIGN.md's table).
EXPECTED = {
    "PPO": ("PPO", {}),
    "IMPALA": ("IMPALA", {}),
    "APPO": ("APPO", {"grad_clip": 30.0}),
    "DQN": ("DQN", PLAIN),
    "Double_DQN": ("DQN", {**PLAIN, "double_q": True}),
    "Dueling_DQN": ("DQN", {**PLAIN, "dueling": True}),
    "DQN_PER": ("DQN", {**PLAIN, "replay_buffer_config": PER}),
    "Noisy_DQN": ("DQN", {**PLAIN, "noisy": True}),
    "DQN_C51": ("DQN", {**PLAIN, "num_atoms": 51, "v_min": -10.0, "v_max": 10.0}),
    "Rainbow_DQN": ("DQN", {
        "target_network_update_freq": 500, "replay_buffer_config": PER,
        "epsilon": [[0, 1.0], [1000000, 0.1]], "adam_epsilon": 1e-8, "grad_clip": 40.0,
        "num_steps_sampled_before_learning_starts": 10000, "tau": 1.0, "num_atoms": 51,
        "v_min": -10.0, "v_max": 10.0, "noisy": True, "sigma0": 0.5, "dueling": True,
        "hiddens": [512], "double_q": True, "n_step": 3,
    }),
}


def test_there_are_exactly_the_ten_algorithms():
    assert list(PRESETS) == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_built_config_holds_the_preset_values(name):
    rllib_algo, values = EXPECTED[name]
    preset = PRESETS[name]
    assert preset.rllib_algo == rllib_algo
    config = build_config(preset, ENVS["breakout"], {})
    for key, value in values.items():
        assert getattr(config, key) == value, key
    assert config.model_config["conv_filters"] == [[32, [8, 8], 4], [64, [4, 4], 2],
                                                   [64, [3, 3], 1]]
    assert config.evaluation_interval == EVALUATION["evaluation_interval"] == 10
    assert config.evaluation_duration == 3
    assert config.evaluation_duration_unit == "episodes"


def test_plain_dqn_differs_from_every_variant():
    """RLlib turns dueling, double_q and PER on by default; plain DQN has none."""
    config = build_config(PRESETS["DQN"], ENVS["breakout"], {})
    assert not config.dueling and not config.double_q and not config.noisy
    assert config.replay_buffer_config["type"] == "EpisodeReplayBuffer"
    built = {name: build_config(PRESETS[name], ENVS["breakout"], {}).to_dict()
             for name in PRESETS if PRESETS[name].is_dqn}
    dicts = [str(sorted(d.items())) for d in built.values()]
    assert len(set(dicts)) == len(dicts)


def test_conv_filters_names_include_the_notebooks_and_two_others():
    assert CONV_FILTERS["nature"] == [[32, [8, 8], 4], [64, [4, 4], 2], [64, [3, 3], 1]]
    assert len(CONV_FILTERS) >= 3
