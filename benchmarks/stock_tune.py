"""The outside reference for `make bench-search`: a sweep written the way
Ray Tune's documentation shows it, with no tune-rl code.

OptunaSearch (TPE) and ASHA over RLlib's PPO on CartPole-v1, a space of the
same ranges as tune-rl's CartPole space (search_spaces/ppo.py SPACES), the
metric RLlib reports (the mean training return), each trial stopped at its
env-step budget. RLlib's own evaluation (greedy, one env, 5 games) runs every
iteration so that the benchmark can count trials reaching 475 by evaluation,
as it does for tune-rl's sweeps.
"""

from __future__ import annotations

from ray import tune
from ray.rllib.algorithms.ppo import PPOConfig
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

ENV_STEPS = "num_env_steps_sampled_lifetime"
RETURN = "env_runners/episode_return_mean"
EVAL_RETURN = "evaluation/env_runners/episode_return_mean"


def run_stock(seed: int, trials: int, max_env_steps: int, storage: str, name: str,
              at_once: int = 2) -> str:
    """Runs the stock sweep; returns its experiment folder."""
    config = (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=8)
        .training(
            lr=tune.loguniform(1e-4, 3e-3),
            gamma=tune.choice([0.95, 0.98, 0.99, 0.995, 0.999]),
            lambda_=tune.uniform(0.8, 1.0),
            train_batch_size_per_learner=tune.choice([256, 512, 1024, 2048]),
            minibatch_size=tune.choice([64, 128, 256]),
            num_epochs=tune.randint(3, 21),
            clip_param=tune.uniform(0.1, 0.4),
            entropy_coeff=tune.loguniform(1e-5, 1e-2),
            vf_loss_coeff=tune.loguniform(1e-3, 1.0),
        )
        .rl_module(model_config={"fcnet_hiddens": tune.choice([[64, 64], [256, 256]])})
        .reporting(min_sample_timesteps_per_iteration=1000)
        .evaluation(evaluation_interval=1, evaluation_duration=5,
                    evaluation_duration_unit="episodes", evaluation_num_env_runners=0,
                    evaluation_config={"explore": False, "num_envs_per_env_runner": 1})
        .debugging(seed=seed)
    )
    tuner = tune.Tuner(
        "PPO",
        param_space=config,
        tune_config=tune.TuneConfig(
            metric=RETURN, mode="max", num_samples=trials, max_concurrent_trials=at_once,
            search_alg=OptunaSearch(seed=seed),
            scheduler=ASHAScheduler(time_attr=ENV_STEPS, max_t=max_env_steps,
                                    grace_period=max(1000, max_env_steps // 5)),
        ),
        run_config=tune.RunConfig(name=name, storage_path=storage,
                                  stop={ENV_STEPS: max_env_steps}, verbose=0),
    )
    return tuner.fit().experiment_path
