"""The ten algorithm presets of the original notebook, as data.

A preset is the RLlib algorithm plus the keyword arguments its `.training()`
call gets. Search spaces override some of these per trial; everything else
stays exactly as the notebook had it (see DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The notebook's encoder for every algorithm: the Nature-DQN stack.
NATURE_CONV_FILTERS = [[32, [8, 8], 4], [64, [4, 4], 2], [64, [3, 3], 1]]

# Filter stacks searched by name: Optuna's categorical choices must be plain
# values, so spaces name a stack and `build_config` resolves the name.
# Entries are [channels, kernel, stride(, padding)]; RLlib pads "same" when
# the padding is left out (84 -> 21 -> 11 -> 11 for "nature").
CONV_FILTERS: dict[str, list] = {
    "nature": NATURE_CONV_FILTERS,
    # Mnih et al. 2013 (the NIPS DQN): two layers, a quarter of the compute.
    "small": [[16, [8, 8], 4], [32, [4, 4], 2]],
    # Nature stack, twice the channels: more capacity, about 3x the compute.
    "wide": [[64, [8, 8], 4], [128, [4, 4], 2], [128, [3, 3], 1]],
}

PER_BUFFER = {
    "type": "PrioritizedEpisodeReplayBuffer",
    "capacity": 60000,
    "alpha": 0.5,
    "beta": 0.5,
}

# RLlib's DQNConfig turns double_q, dueling and prioritized replay on by
# default; "DQN" must turn them off or the variants would not differ from it.
# The uniform buffer keeps RLlib's default capacity.
_UNIFORM_BUFFER = {"type": "EpisodeReplayBuffer", "capacity": 50000}
_PLAIN_DQN = {
    "double_q": False,
    "dueling": False,
    "noisy": False,
    "num_atoms": 1,
    "n_step": 1,
    "replay_buffer_config": _UNIFORM_BUFFER,
}


@dataclass(frozen=True)
class Preset:
    """One algorithm of the notebook: the RLlib class and its training kwargs."""

    name: str
    rllib_algo: str  # name in RLlib's registry: "PPO", "IMPALA", "APPO", "DQN"
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def algorithm_class(self) -> type:
        """RLlib's class, imported directly: Tune's name registry can be overwritten."""
        from ray.rllib.algorithms import appo, dqn, impala, ppo

        classes = {"PPO": ppo.PPO, "IMPALA": impala.IMPALA, "APPO": appo.APPO, "DQN": dqn.DQN}
        return classes[self.rllib_algo]

    @property
    def is_dqn(self) -> bool:
        return self.rllib_algo == "DQN"

    @property
    def distributional(self) -> bool:
        return self.training.get("num_atoms", 1) > 1

    @property
    def noisy(self) -> bool:
        return bool(self.training.get("noisy", False))

    @property
    def prioritized_replay(self) -> bool:
        buffer = self.training.get("replay_buffer_config", {})
        return buffer.get("type") == "PrioritizedEpisodeReplayBuffer"


def _dqn(name: str, **on: Any) -> Preset:
    return Preset(name, "DQN", {**_PLAIN_DQN, **on})


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("PPO", "PPO"),
        Preset("IMPALA", "IMPALA"),
        Preset("APPO", "APPO", {"grad_clip": 30.0}),
        _dqn("DQN"),
        _dqn("Double_DQN", double_q=True),
        _dqn("Dueling_DQN", dueling=True),
        _dqn("DQN_PER", replay_buffer_config=dict(PER_BUFFER)),
        _dqn("Noisy_DQN", noisy=True),
        _dqn("DQN_C51", num_atoms=51, v_min=-10.0, v_max=10.0),
        _dqn(
            "Rainbow_DQN",
            target_network_update_freq=500,
            replay_buffer_config=dict(PER_BUFFER),
            epsilon=[[0, 1.0], [1000000, 0.1]],
            adam_epsilon=1e-8,
            grad_clip=40.0,
            num_steps_sampled_before_learning_starts=10000,
            tau=1.0,
            num_atoms=51,
            v_min=-10.0,
            v_max=10.0,
            noisy=True,
            sigma0=0.5,
            dueling=True,
            hiddens=[512],
            double_q=True,
            n_step=3,
        ),
    ]
}

# The notebook evaluated every 10 training iterations over 3 episodes.
EVALUATION = {"evaluation_interval": 10, "evaluation_duration": 3,
              "evaluation_duration_unit": "episodes"}
