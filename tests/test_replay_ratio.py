"""The replay ratio is the preset's whatever the sampling shape, or the plan refuses.

RLlib's DQN alternates `store` sampling rounds and `train` updates by integer
round-robin weights (dqn.py calculate_rr_weights), so one update per 4 env
steps is exact only for some shapes of env runners x envs x fragment. Each
case asks RLlib's own function, on the config a trial really gets, how many
env steps it samples per update of 32.
"""

from __future__ import annotations

import pytest
from ray.rllib.algorithms.dqn.dqn import calculate_rr_weights

from tune_rl.cli import main
from tune_rl.config import TrialSettings, build_config
from tune_rl.envs import ENVS
from tune_rl.errors import UsageError
from tune_rl.plan import resolve_plan
from tune_rl.presets import PRESETS
from tune_rl.spec import load_spec

PERIOD = 4  # Dopamine's update_period: one batch of 32 per 4 env steps


def rllibs_env_steps_per_update(config) -> float:
    """Env steps sampled per update, by RLlib's weights on the built config:
    each sampling round is one sample() per remote env runner (the local one
    without remote runners, rollout_ops.synchronous_parallel_sample), each
    fragment x envs env steps."""
    store, train = calculate_rr_weights(config)
    sampled = (store * config.get_rollout_fragment_length() * config.num_envs_per_env_runner
               * max(config.num_env_runners, 1))
    return sampled / train


def trial_config(plan, n_step: int | None = None):
    params = {"n_step": n_step} if n_step else {}
    return build_config(plan.preset, plan.env, params, plan.settings)


# (algo, env runners, envs per runner, fragment): shapes the plan accepts.
EXACT = [
    ("DQN", 0, 1, "auto"), ("DQN", 0, 1, "1"), ("DQN", 0, 1, "2"), ("DQN", 0, 5, "4"),
    ("DQN", 0, 8, "4"), ("DQN", 3, 8, "4"), ("DQN", 2, 1, "2"), ("DQN", 0, 5, "auto"),
    ("Rainbow_DQN", 0, 1, "auto"), ("Rainbow_DQN", 0, 8, "4"), ("Rainbow_DQN", 4, 3, "auto"),
]


@pytest.mark.parametrize("algo, runners, envs, fragment", EXACT)
def test_accepted_shapes_train_every_4_env_steps_by_rllibs_own_weights(
        algo, runners, envs, fragment):
    plan = resolve_plan(load_spec(algo, env_runners=runners, envs_per_env_runner=envs,
                                  rollout_fragment_length=fragment))
    # Every n_step the space may pick (RLlib's "auto" fragment is n_step).
    for n_step in ([1, 2, 3, 4] if "n_step" in plan.space else [None]):
        config = trial_config(plan, n_step)
        assert rllibs_env_steps_per_update(config) == PERIOD, (
            n_step, config.rollout_fragment_length)


@pytest.mark.parametrize("algo, runners, envs, fragment, rllib_would", [
    ("DQN", 0, 1, "3", 3),  # weights 0.75 round to [1, 1]: every 3
    ("DQN", 0, 5, "1", 5),  # 1.25 round to [1, 1]: every 5
    ("DQN", 3, 3, "1", 4.5),  # 3 runners x 3 envs = 9 a round, 2 updates
    ("DQN", 0, 6, "1", 3),  # 1.5 rounds (half to even) to 2 updates per 6 env steps
])
def test_inexact_shapes_are_refused_with_the_shapes_that_work(
        algo, runners, envs, fragment, rllib_would):
    spec = load_spec(algo, env_runners=runners, envs_per_env_runner=envs,
                     rollout_fragment_length=fragment)
    settings = TrialSettings(env_runners=runners, envs_per_env_runner=envs,
                             rollout_fragment_length=int(fragment))
    assert rllibs_env_steps_per_update(
        build_config(PRESETS[algo], ENVS["breakout"], {}, settings)) == rllib_would
    with pytest.raises(UsageError) as refused:
        resolve_plan(spec)
    message = str(refused.value)
    assert f"RLlib would train every {rllib_would:g} env steps, not every 4" in message
    # Each shape it offers is exact by RLlib's own weights.
    offered = message.split("Exact: rollout_fragment_length ")[1].split(" with")[0]
    for length in map(int, offered.split(", ")):
        exact = resolve_plan(load_spec(algo, env_runners=runners, envs_per_env_runner=envs,
                                       rollout_fragment_length=str(length)))
        assert rllibs_env_steps_per_update(trial_config(exact)) == PERIOD, length


def test_auto_fragment_is_resolved_to_an_exact_one():
    """RLlib's "auto" is n_step: 3 for Rainbow, an update every 3 env steps."""
    plan = resolve_plan(load_spec("Rainbow_DQN", envs_per_env_runner=1,
                                  rollout_fragment_length="auto"))
    config = trial_config(plan, n_step=3)
    assert config.get_rollout_fragment_length() == 4
    rllibs_auto = config.copy(copy_frozen=False).env_runners(rollout_fragment_length="auto")
    assert rllibs_env_steps_per_update(rllibs_auto) == 3


def test_dry_run_shows_env_steps_per_update(tmp_path, capsys):
    code = main(["sweep", "--algo", "Rainbow_DQN", "--dry-run",
                 "--storage-path", str(tmp_path / "ray_results"),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert code == 0
    assert ('"updates": "one update of 32 every 4 env steps: RLlib samples 1 round(s) of '
            '4 steps x 8 envs x 1 runner(s), then trains 8 time(s)"') in capsys.readouterr().out
