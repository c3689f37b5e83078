"""PPO: learning rate and its schedule, clipping, entropy bonus, GAE lambda,
SGD shape, encoder and head.

Every value of the PPO reference (CleanRL's ppo_atari.py, references.py) lies
inside these ranges: lr 2.5e-4 linear, clip 0.1, entropy 0.01, lambda 0.95,
minibatch 256, 4 epochs, grad clip 0.5, the Nature encoder with a 512 head.
"""

from ray import tune

SPACE = {
    "lr": tune.loguniform(1e-5, 1e-3),
    "lr_schedule": tune.choice(["constant", "linear"]),
    "clip_param": tune.uniform(0.05, 0.3),
    "entropy_coeff": tune.loguniform(1e-4, 3e-2),
    "lambda_": tune.uniform(0.9, 1.0),
    "minibatch_size": tune.choice([64, 128, 256]),
    "num_epochs": tune.randint(3, 11),
    "grad_clip": tune.loguniform(0.1, 40.0),
    "conv_filters": tune.choice(["nature", "small", "wide"]),
    "head_hiddens": tune.choice(["none", "512"]),
}
