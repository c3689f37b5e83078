"""Noisy-net DQN: the DQN space plus the initial noise scale sigma0."""

from ray import tune

from search_spaces.dqn import SPACE as DQN_SPACE

SPACE = {**DQN_SPACE, "sigma0": tune.uniform(0.1, 1.0)}

# What PBT and PB2 may change while a trial trains (ranges: the space's).
MUTABLE = ("lr",)
