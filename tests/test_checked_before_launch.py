"""Every value of a sweep file is checked before launch: a bad one exits 2
with the field, the value and what is allowed, and nothing is written.

The shipped sweep files (sweeps/*.yaml) are mutated at random, with a seeded
generator, at every level a person can write: the top level, a profile, a
`training:` section, `env_config:` and the replay buffer's settings. Each
case is planned as `tune-rl sweep --dry-run` would: it plans (exit 0) or is
refused (exit 2), never a traceback.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import yaml

from tune_rl.cli import main
from tune_rl.presets import PRESETS
from tune_rl.spaces import training_args
from tune_rl.spec import FIELDS, SWEEPS_DIR

SWEEP_FILES = sorted(SWEEPS_DIR.glob("*.yaml"))
CASES = 60
# What a person gets wrong: a list or a mapping where a number belongs, a
# name where a number belongs, true/false, a blank, out-of-range numbers.
BAD_VALUES = [[1, 2], {"a": 1}, "many", True, None, -1, 0, 0.5, 1.5, -0.25, 10**9, 1e-9,
              math.nan, math.inf, "auto", [[0, 1.0], [100, 0.5]]]
UNKNOWN_KEYS = ["trails", "gama", "x", "capcity"]


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*"))}


def mutate(data: dict, rng: random.Random) -> tuple[str, str]:
    """Changes one value (or adds an unknown key) somewhere in a sweep file's
    data; returns the profile to run and where, for the failure message."""
    algo = data["algo"]
    profile_name = rng.choice(["quick", "full"])
    profile = data["profiles"][profile_name]
    level = rng.choice(["top", "profile", "training", "profile training", "env_config",
                        "replay_buffer_config"])
    if level == "top":
        target, keys = data, list(FIELDS)
    elif level == "profile":
        target, keys = profile, list(FIELDS)
    elif level in ("training", "profile training"):
        owner = data if level == "training" else profile
        target = owner.setdefault("training", {}) or {}
        owner["training"] = target
        keys = sorted(training_args(PRESETS[algo]))
    elif level == "env_config":
        target = data.setdefault("env_config", {})
        keys = ["repeat_action_probability", "max_frames_per_episode", "terminal_on_life_loss"]
    else:
        target = data.setdefault("training", {}) or {}
        data["training"] = target
        target = target.setdefault("replay_buffer_config", {})
        keys = ["type", "capacity", "alpha", "beta"]
    key = rng.choice(keys + UNKNOWN_KEYS)
    if key in ("algo", "spec_file", "name"):  # a wrong algo or name is tested elsewhere
        key = "trials"
    target[key] = rng.choice(BAD_VALUES)
    return profile_name, f"{level}.{key}={target[key]!r}"


def test_randomly_broken_sweep_files_plan_or_are_refused_never_a_traceback(tmp_path, capsys):
    rng = random.Random(20)
    store = ["--storage-path", str(tmp_path / "ray_results"),
             "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    outcomes = {0: 0, 2: 0}
    for case in range(CASES):
        source = rng.choice(SWEEP_FILES)
        data = yaml.safe_load(source.read_text())
        profile, what = mutate(data, rng)
        path = tmp_path / f"case{case}_{source.name}"
        path.write_text(yaml.safe_dump(data))
        before = snapshot(tmp_path)
        try:
            code = main(["sweep", "--spec", str(path), "--profile", profile, "--dry-run",
                         *store])
        except Exception as err:  # noqa: BLE001 - the point is that none escapes
            pytest.fail(f"{source.name} {profile} with {what}: {type(err).__name__}: {err}")
        out, err = capsys.readouterr()
        assert code in (0, 2), (source.name, profile, what, err)
        if code == 2:
            assert err.startswith("tune-rl: error: ") and err.count("\n") == 1, err
            assert snapshot(tmp_path) == before, (what, "refused, yet wrote")
        outcomes[code] += 1
    # The mutations are bad often enough that most cases are refusals, yet
    # some still plan (an unused profile, a value in range).
    assert outcomes[2] > CASES // 2 and outcomes[0] > 0, outcomes


@pytest.mark.parametrize("yaml_text, message", [
    ("algo: PPO\ntraining: {gamma: 1.5}", "training.gamma=1.5 is not allowed: gamma must be a "
                                          "number in (0, 1]"),
    ("algo: DQN\ntraining: {adam_epsilon: 0}",
     "training.adam_epsilon=0 is not allowed: adam_epsilon must be a number > 0"),
    ("algo: DQN\ntraining: {epsilon: [[5, 1.0], [10, 0.1]]}",
     "epsilon must be a number in [0, 1], or a schedule [[0, epsilon]"),
    ("algo: DQN\ntraining: {n_step: 0}", "n_step must be an integer >= 1"),
    ("algo: DQN\ntraining: {hiddens: 512}", "hiddens must be a list of integers >= 1"),
    ("algo: DQN\ntraining: {double_q: 'yes'}", "double_q must be true or false"),
    ("algo: DQN\ntraining: {gama: 0.9}", "unknown training key for DQN (RLlib DQN): 'gama'"),
    ("algo: DQN_C51\ntraining: {v_min: 5, v_max: -5}", "v_min (5) must be below v_max (-5)"),
    ("algo: PPO\ntraining: {learner_class: x}", "unknown training key for PPO"),
    ("algo: DQN\ncheckpoint_every: {a: 1}", "checkpoint_every must be of type int, got {'a': 1}"),
    ("algo: DQN\ngrace_env_steps: [1, 2]", "grace_env_steps must be of type int, got [1, 2]"),
    ("algo: DQN\nevaluation: 3", "evaluation must be of type bool, got 3"),
    ("algo: DQN\nexperiment: [a]", "experiment must be of type str, got ['a']"),
    ("algo: DQN\nenv: [1, 2]", "env must be of type str, got [1, 2]"),
    # Sizes with bounds: the plan builds the network, and 10**9 atoms would
    # take all memory before any message.
    ("algo: DQN_C51\ntraining: {num_atoms: 1000000000}",
     "num_atoms must be an integer >= 1 and at most 1001"),
    ("algo: DQN\ntraining: {hiddens: [1000000000]}", "each at most 4096"),
    ("algo: DQN\nrollout_fragment_length: 100000", "one sampling round (rollout_fragment_length "
                                                    "100000 x envs_per_env_runner 1 x env_runners "
                                                    "1) is 100000 env steps, more than "
                                                    "max_env_steps 20000"),
    ("algo: PPO\ntraining: {num_aggregator_actors_per_learner: 1000000000}",
     "unknown training key for PPO"),
    ("algo: DQN\ngpus_per_learner: .nan", "gpus_per_learner must be of type float, got nan"),
])
def test_a_bad_value_exits_2_naming_the_field_the_value_and_what_is_allowed(
        tmp_path, capsys, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"{yaml_text}\nprofiles:\n  quick:\n    trials: 2\n")
    before = snapshot(tmp_path)
    code = main(["sweep", "--spec", str(path), "--dry-run",
                 "--storage-path", str(tmp_path / "ray_results"),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert snapshot(tmp_path) == before


def test_a_profile_that_is_not_a_mapping_is_refused(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("algo: DQN\nprofiles:\n  quick: [1, 2]\n")
    assert main(["sweep", "--spec", str(path), "--dry-run"]) == 2
    assert "profile 'quick' in bad.yaml must be a mapping of fields" in capsys.readouterr().err
