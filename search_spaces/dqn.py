"""Plain DQN: learning rate, target-network period, gradient clip, encoder."""

from ray import tune

SPACE = {
    "lr": tune.loguniform(1e-5, 1e-3),
    "target_network_update_freq": tune.choice([500, 2000, 8000]),
    # None: no clipping, as Dopamine (the reference); 40 is RLlib's default.
    "grad_clip": tune.choice([None, 10.0, 40.0]),
    "conv_filters": tune.choice(["nature", "small", "wide"]),
}

# What PBT and PB2 may change while a trial trains (ranges: the space's).
MUTABLE = ("lr",)
