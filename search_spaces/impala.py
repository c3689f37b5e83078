"""IMPALA: learning rate, entropy bonus, value-loss weight, gradient clip, encoder."""

from ray import tune

SPACE = {
    "lr": tune.loguniform(1e-5, 2e-3),
    "entropy_coeff": tune.loguniform(1e-4, 5e-2),
    "vf_loss_coeff": tune.uniform(0.25, 1.0),
    "grad_clip": tune.loguniform(5.0, 100.0),
    "conv_filters": tune.choice(["nature", "small", "wide"]),
}

# What PBT and PB2 may change while a trial trains (ranges: the space's).
MUTABLE = ("lr", "entropy_coeff")
