"""Rainbow DQN: every component's knob (multi-step, atoms, noise, PER)."""

from ray import tune

SPACE = {
    "lr": tune.loguniform(1e-5, 1e-3),
    # At most the sweep's rollout_fragment_length (4): RLlib refuses more.
    "n_step": tune.choice([1, 2, 3, 4]),
    "num_atoms": tune.choice([21, 51, 101]),
    "sigma0": tune.uniform(0.1, 1.0),
    # None: no clipping, as Dopamine (the reference); 40 is RLlib's default.
    "grad_clip": tune.choice([None, 10.0, 40.0]),
    "target_network_update_freq": tune.choice([500, 2000, 8000]),
    "per_alpha": tune.uniform(0.3, 0.8),
    "per_beta": tune.uniform(0.3, 0.7),
    "conv_filters": tune.choice(["nature", "small", "wide"]),
}

# What PBT and PB2 may change while a trial trains (ranges: the space's).
MUTABLE = ("lr",)
