"""APPO: the IMPALA space plus the clip of APPO's PPO-style surrogate loss."""

from ray import tune

from search_spaces.impala import SPACE as IMPALA_SPACE

SPACE = {**IMPALA_SPACE, "clip_param": tune.uniform(0.1, 0.4)}

# What PBT and PB2 may change while a trial trains (ranges: the space's).
MUTABLE = ("lr", "entropy_coeff")
