"""Sweep files: profiles, overrides and errors that say what to fix."""

from __future__ import annotations

import pytest

from tune_rl.errors import UsageError
from tune_rl.presets import PRESETS
from tune_rl.spec import default_spec_file, load_spec


@pytest.mark.parametrize("algo", list(PRESETS))
@pytest.mark.parametrize("profile", ["quick", "full"])
def test_every_algorithm_has_a_sweep_file_with_both_profiles(algo, profile):
    spec = load_spec(algo, profile=profile)
    assert spec.algo == algo and spec.env == "breakout" and spec.profile == profile
    assert spec.grace_env_steps <= spec.max_env_steps
    assert default_spec_file(algo).is_file()


def test_full_profile_is_sized_for_real_tuning():
    quick, full = load_spec("Rainbow_DQN"), load_spec("Rainbow_DQN", profile="full")
    assert full.max_env_steps >= 100 * quick.max_env_steps // 10
    assert full.trials > quick.trials


def test_overrides_win_and_a_small_budget_shrinks_the_grace_period():
    spec = load_spec("Rainbow_DQN", env="cartpole", trials=2, max_env_steps=300, seed=7)
    assert (spec.env, spec.trials, spec.max_env_steps, spec.seed) == ("cartpole", 2, 300, 7)
    assert spec.grace_env_steps == 300 and spec.min_env_steps_per_iteration == 300
    assert spec.experiment == "cartpole-Rainbow_DQN"


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_spec(spec_file=tmp_path / "nope.yaml")


def test_not_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("algo: DQN\nprofiles:\n  quick: {trials: [1,\n")
    with pytest.raises(UsageError, match="is not valid YAML at line"):
        load_spec(spec_file=path)


def test_unknown_key_suggests_the_closest(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("algo: DQN\nprofiles:\n  quick:\n    trails: 3\n")
    with pytest.raises(UsageError, match="unknown field in typo.yaml profile 'quick': 'trails'"
                                         ".*did you mean 'trials'"):
        load_spec(spec_file=path)


def test_wrong_type_is_named(tmp_path):
    path = tmp_path / "typed.yaml"
    path.write_text("algo: DQN\nprofiles:\n  quick:\n    trials: many\n")
    with pytest.raises(UsageError, match="trials must be of type int, got 'many'"):
        load_spec(spec_file=path)


@pytest.mark.parametrize("algo", list(PRESETS))
@pytest.mark.parametrize("profile", ["quick", "full"])
def test_a_kill_loses_at_most_a_tenth_of_a_trial(algo, profile):
    spec = load_spec(algo, profile=profile)
    steps_between_checkpoints = spec.checkpoint_every * spec.min_env_steps_per_iteration
    assert steps_between_checkpoints <= max(spec.max_env_steps // 10,
                                            spec.min_env_steps_per_iteration)


def test_checkpoints_follow_the_budget_unless_given():
    assert load_spec("PPO", max_env_steps=50_000, min_env_steps_per_iteration=1000
                     ).checkpoint_every == 5
    assert load_spec("PPO", max_env_steps=3000).checkpoint_every == 1
    assert load_spec("PPO", checkpoint_every=7).checkpoint_every == 7


def test_ashas_first_cut_waits_for_the_env_to_show_progress(tmp_path):
    # Unset, grace is the env's progress steps or a tenth of the budget, at
    # most the budget: no cut before a working configuration can show it.
    (tmp_path / "s.yaml").write_text("algo: PPO\nprofiles:\n  quick: {trials: 2}\n")
    grace = {(env, steps): load_spec(spec_file=tmp_path / "s.yaml", env=env,
                                     max_env_steps=steps).grace_env_steps
             for env in ("breakout", "cartpole") for steps in (50_000, 5_000_000)}
    assert grace == {("breakout", 50_000): 50_000, ("breakout", 5_000_000): 500_000,
                     ("cartpole", 50_000): 10_000, ("cartpole", 5_000_000): 500_000}
    given = load_spec(spec_file=tmp_path / "s.yaml", max_env_steps=50_000,
                      grace_env_steps=2_000)
    assert given.grace_env_steps == 2_000
