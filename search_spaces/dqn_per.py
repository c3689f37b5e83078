"""DQN with prioritized replay: the DQN space plus PER's alpha and beta."""

from ray import tune

from search_spaces.dqn import SPACE as DQN_SPACE

SPACE = {
    **DQN_SPACE,
    "per_alpha": tune.uniform(0.3, 0.8),
    "per_beta": tune.uniform(0.3, 0.7),
}

# What PBT and PB2 may change while a trial trains (ranges: the space's).
MUTABLE = ("lr",)
