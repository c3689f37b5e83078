"""Dueling DQN: the plain DQN space (dueling changes the head, not the knobs)."""

from search_spaces.dqn import SPACE as DQN_SPACE

SPACE = dict(DQN_SPACE)

# What PBT and PB2 may change while a trial trains (ranges: the space's).
MUTABLE = ("lr",)
