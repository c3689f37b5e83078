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

# CartPole, the cheap proxy: the ranges the peers search for PPO on classic
# control (rl-baselines3-zoo's sample_ppo_params: discount, GAE lambda,
# rollout and minibatch sizes, epochs, lr, clip, entropy, value-loss weight,
# the MLP's width). It holds rl-baselines3-zoo's tuned CartPole-v1 point
# (hyperparams/ppo.yml: 8 envs x 32 steps = 256 per rollout, gamma 0.98,
# lambda 0.8, 20 epochs, lr 1e-3) and RLlib's tuned example
# (tuned_examples/ppo/cartpole_ppo.py: lr 3e-4, 6 epochs, vf_loss_coeff
# 0.01). No encoder: there is no image.
SPACES = {
    "cartpole": {
        "lr": tune.loguniform(1e-4, 3e-3),
        "gamma": tune.choice([0.95, 0.98, 0.99, 0.995, 0.999]),
        "lambda_": tune.uniform(0.8, 1.0),
        "train_batch_size_per_learner": tune.choice([256, 512, 1024, 2048]),
        "minibatch_size": tune.choice([64, 128, 256]),
        "num_epochs": tune.randint(3, 21),
        "clip_param": tune.uniform(0.1, 0.4),
        "entropy_coeff": tune.loguniform(1e-5, 1e-2),
        "vf_loss_coeff": tune.loguniform(1e-3, 1.0),
        "fcnet": tune.choice(["64x64", "256x256"]),
    },
}

# What PBT and PB2 may change while a trial trains (their ranges are the
# space's): never the network's shape.
MUTABLE = ("lr", "entropy_coeff", "clip_param")
