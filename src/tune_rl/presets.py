"""The ten algorithm presets of the original notebook, as data.

A preset is the RLlib algorithm plus the keyword arguments its `.training()`
call gets. Search spaces override some of these per trial; everything else
stays exactly as the notebook had it (see DESIGN.md). What the notebook left
to RLlib's CartPole-sized DQN defaults comes from one named reference per
preset, Dopamine's gin file for its agent (`_dopamine`), and each such value
carries its source (Preset.sources, shown by --dry-run).

Evaluation epsilon: tune-rl evaluates fully greedily (epsilon 0, noisy
layers' noise off; evaluation.py), where Dopamine evaluates with
epsilon_eval 0.001. Rainbow keeps the notebook's Adam epsilon 1e-8 and
gradient clipping at 40; the other DQN presets take Dopamine's 1.5e-4
(c51.gin: 3.125e-4) and clip nothing, as Dopamine does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tune_rl.replay import FRAME_BUFFER_TYPE, FRAME_PER_BUFFER_TYPE

# Filter stacks searched by name: Optuna's categorical choices must be plain
# values, so spaces name a stack and `build_config` resolves the name.
# Entries are [channels, kernel, stride, padding]. The padding is stated:
# RLlib pads "same" when it is left out, which made "nature" 7,744 features
# wide instead of Nature's 3,136 (84 -> 20 -> 9 -> 7 with "valid").
CONV_FILTERS: dict[str, list] = {
    # Mnih et al. 2015 (Nature DQN), the notebook's encoder for every
    # algorithm: 84 -> 20 -> 9 -> 7, 7x7x64 = 3,136 features.
    "nature": [[32, [8, 8], 4, "valid"], [64, [4, 4], 2, "valid"], [64, [3, 3], 1, "valid"]],
    # Mnih et al. 2013 (the NIPS DQN): 84 -> 20 -> 9, 9x9x32 = 2,592 features.
    "small": [[16, [8, 8], 4, "valid"], [32, [4, 4], 2, "valid"]],
    # The Nature stack with twice the channels: 7x7x128 = 6,272 features.
    "wide": [[64, [8, 8], 4, "valid"], [128, [4, 4], 2, "valid"], [128, [3, 3], 1, "valid"]],
}
NATURE_CONV_FILTERS = CONV_FILTERS["nature"]

# Hidden layers between the encoder and the policy and value outputs, searched
# by name like the filter stacks. RLlib's PPO, IMPALA and APPO modules put them
# in each head (a 512 layer for the policy and another for the value; the
# Nature network and CleanRL share one); "none" leaves linear heads over the
# encoder's features (RLlib's default for image observations).
HEAD_HIDDENS: dict[str, list[int]] = {"none": [], "512": [512]}
# The MLP over vector observations (CartPole), by name: RLlib's default
# [256, 256] and the peers' small one (rl-baselines3-zoo's "small", 64x64).
FCNET_HIDDENS: dict[str, list[int]] = {"64x64": [64, 64], "256x256": [256, 256]}
# Learning-rate schedules by name: "linear" anneals lr to 0 over the trial's
# env steps (CleanRL's and openai/baselines' PPO on Atari), as RLlib's
# [[env_step, lr], ...] schedule.
LR_SCHEDULES = ("constant", "linear")

PER_BUFFER = {
    # RLlib's prioritized buffer, beta annealed to 1, each frame kept once (replay.py)
    "type": FRAME_PER_BUFFER_TYPE,
    # Dopamine's (rainbow.gin: replay_capacity 1000000), where the notebook's
    # 60,000 was what fitted in memory with whole stacks stored.
    "capacity": 1_000_000,
    "alpha": 0.5,
    "beta": 0.5,
}

# Where the notebook left a value to RLlib's DQN defaults, those are sized
# for CartPole (epsilon to 0.05 in 10,000 steps, learning after 1,000 steps,
# target update every 500, a 50,000-step buffer, gradients clipped at 40).
# These are the Atari values of one named reference instead, Dopamine's gin
# file for the preset's agent (google/dopamine, dopamine/jax/agents/*/configs:
# c51.gin for DQN_C51, rainbow.gin for Rainbow_DQN, dqn.gin for the others,
# which Dopamine has no files of); steps are env (agent) steps, each 4 frames.
#
# Where tune-rl departs from Dopamine, on purpose:
# - Evaluation is fully greedy (epsilon 0, noise off: evaluation.py), where
#   Dopamine evaluates with epsilon_eval 0.001.
# - The loss stays RLlib's Huber (td_error_loss_fn), Mnih et al. 2015's
#   clipping of the TD error to [-1, 1]; Dopamine's JAX DQN defaults to MSE
#   (dqn_agent.py, loss_type). C51 and Rainbow use the distributional loss.
def _dopamine(gin: str) -> dict[str, tuple[Any, str]]:
    src = f"Dopamine {gin}"
    values: dict[str, tuple[Any, str]] = {
        # linearly_decaying_epsilon (dopamine/jax/agents/dqn/dqn_agent.py):
        # 1.0 until min_replay_history steps, then linearly to epsilon_train
        # over epsilon_decay_period; RLlib's piecewise-linear schedule says
        # the same with three points.
        "epsilon": ([[0, 1.0], [20_000, 1.0], [270_000, 0.01]],
                    f"{src}: linearly_decaying_epsilon, 1.0 until min_replay_history 20000, "
                    "then to epsilon_train 0.01 over epsilon_decay_period 250000"),
        "num_steps_sampled_before_learning_starts": (
            20_000, f"{src}: min_replay_history 20000"),
        "target_network_update_freq": (8_000, f"{src}: target_update_period 8000"),
        "tau": (1.0, f"{src}: the target network is copied whole (_sync_weights)"),
        "lr": (6.25e-5, f"{src}: create_optimizer.learning_rate 6.25e-5 (Adam)"),
        "adam_epsilon": (1.5e-4, f"{src}: create_optimizer.eps 1.5e-4"),
        # Dopamine's optimizer is optax.adam alone (create_optimizer): no
        # gradient clipping. RLlib's DQNConfig clips at 40 by default.
        # Unclipped, RLlib reports no gradient norm (the trainable's
        # divergence watch then has losses and weights): it computes it only
        # to clip, or with `log_gradients`, which in Ray 2.60 must stay off:
        # with grad_clip None it drops every gradient (Learner.
        # postprocess_gradients' log-only branch never adds them to the dict
        # it returns; measured: an empty dict, so nothing would learn).
        "grad_clip": (None, f"{src}: no gradient clipping (create_optimizer is optax.adam "
                            "alone)"),
        "gamma": (0.99, f"{src}: gamma 0.99"),
        "train_batch_size": (32, f"{src}: ReplayBuffer.batch_size 32"),
        # RLlib's ratio of env steps trained to env steps sampled: one batch of
        # 32 per 4 env steps. RLlib rounds it per sampling shape: the plan
        # resolves or refuses the shapes where it would not be exact
        # (config.env_steps_per_update).
        "training_intensity": (8, f"{src}: update_period 4 with batch_size 32"),
        "td_error_loss_fn": ("huber", "Mnih et al. 2015: the TD error clipped to [-1, 1]"),
        "hiddens": ([512], "Mnih et al. 2015: one 512-unit hidden layer after the convolutions"),
        # Each frame kept once, a transition costs about 7.6 KB (prioritized
        # 7.9; replay.py): Dopamine's million is about 7.9 GB a trial, checked
        # against the machine's memory before a sweep starts (plan.py). A quick profile's
        # buffer holds no more than its trials sample.
        "replay_buffer_config": ({"type": FRAME_BUFFER_TYPE, "capacity": 1_000_000},
                                 f"{src}: replay_capacity 1000000 (uniform, frames stored "
                                 "once as in Dopamine's circular buffer)"),
    }
    if gin == "c51.gin":  # "Note these parameters are different from C51's" (rainbow.gin)
        values["lr"] = (2.5e-4, f"{src}: create_optimizer.learning_rate 0.00025 (Adam)")
        values["adam_epsilon"] = (3.125e-4, f"{src}: create_optimizer.eps 0.0003125")
    return values


ATARI_DQN = _dopamine("dqn.gin")
# With noisy nets the noise explores: Hessel et al. 2018 (and RLlib's
# pong-rainbow example) set epsilon to 0. This overrides the notebook's
# Rainbow schedule, which would act at random for the first million steps.
NOISY_EPSILON = (0.0, "Hessel et al. 2018: epsilon 0 with noisy nets")
# Schaul et al. 2016: beta anneals linearly to 1 by the end of learning.
BETA_ANNEALING = "Schaul et al. 2016: PER beta annealed linearly to 1 over the trial's env steps"

# RLlib's DQNConfig turns double_q, dueling and prioritized replay on by
# default; "DQN" must turn them off or the variants would not differ from it.
_PLAIN_DQN = {
    "double_q": False,
    "dueling": False,
    "noisy": False,
    "num_atoms": 1,
    "n_step": 1,
}
# Schedules in env steps that a sweep's `schedule_scale` shrinks to its budget.
SCHEDULED = ("epsilon", "num_steps_sampled_before_learning_starts")


@dataclass(frozen=True)
class Preset:
    """One algorithm of the notebook: the RLlib class and its training kwargs."""

    name: str
    rllib_algo: str  # name in RLlib's registry: "PPO", "IMPALA", "APPO", "DQN"
    training: dict[str, Any] = field(default_factory=dict)
    # Where each value not set by the notebook comes from, by key.
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def algorithm_class(self) -> type:
        """RLlib's class, imported directly: Tune's name registry can be overwritten.
        The DQN family's is RLlib's DQN making a training step's updates in
        one learner call (algorithm.py)."""
        from ray.rllib.algorithms import appo, impala, ppo

        from tune_rl.algorithm import TuneRLDQN

        classes = {"PPO": ppo.PPO, "IMPALA": impala.IMPALA, "APPO": appo.APPO, "DQN": TuneRLDQN}
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
        return is_prioritized(self.training.get("replay_buffer_config", {}))

    def components(self) -> dict[str, Any]:
        """The DQN components this preset turns on, for `tune-rl list` and --dry-run."""
        if not self.is_dqn:
            return {}
        t = self.training
        return {"double_q": t["double_q"], "dueling": t["dueling"], "noisy": t["noisy"],
                "prioritized_replay": self.prioritized_replay, "n_step": t["n_step"],
                "num_atoms": t["num_atoms"], "hiddens": t["hiddens"]}


def is_prioritized(buffer_config: dict[str, Any]) -> bool:
    """RLlib's prioritized buffer or ours (replay.py), named by type string."""
    return "Prioritized" in str(buffer_config.get("type"))


def _dqn(name: str, gin: str = "dqn.gin", **notebook: Any) -> Preset:
    """A DQN-family preset: plain DQN, its Dopamine values, then the notebook's."""
    reference = _dopamine(gin)
    training = {**_PLAIN_DQN, **{k: v for k, (v, _) in reference.items()}, **notebook}
    sources = {k: src for k, (_, src) in reference.items() if k not in notebook}
    if training["noisy"]:
        training["epsilon"], sources["epsilon"] = NOISY_EPSILON
    if is_prioritized(training["replay_buffer_config"]):
        sources["replay_buffer_config.beta"] = BETA_ANNEALING
    return Preset(name, "DQN", training, sources)


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
        _dqn("DQN_C51", "c51.gin", num_atoms=51, v_min=-10.0, v_max=10.0),
        _dqn(
            "Rainbow_DQN",
            "rainbow.gin",
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

# The notebook evaluated every 10 training iterations over 3 episodes (with
# RLlib's evaluation; tune-rl plays its own whole games, evaluation.py).
EVALUATION = {"evaluation_interval": 10, "evaluation_duration": 3,
              "evaluation_duration_unit": "episodes"}
