"""PPO: learning rate, clipping, entropy bonus, SGD shape, encoder."""

from ray import tune

SPACE = {
    "lr": tune.loguniform(1e-5, 1e-3),
    "clip_param": tune.uniform(0.1, 0.3),
    "entropy_coeff": tune.loguniform(1e-4, 3e-2),
    "minibatch_size": tune.choice([64, 128, 256]),
    "num_epochs": tune.randint(3, 11),
    "grad_clip": tune.loguniform(0.5, 40.0),
    "conv_filters": tune.choice(["nature", "small", "wide"]),
}
