"""C51 (distributional DQN): the DQN space plus the number of atoms."""

from ray import tune

from search_spaces.dqn import SPACE as DQN_SPACE

SPACE = {**DQN_SPACE, "num_atoms": tune.choice([21, 51, 101])}

# What PBT and PB2 may change while a trial trains (ranges: the space's).
MUTABLE = ("lr",)
