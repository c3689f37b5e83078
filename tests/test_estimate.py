"""`--dry-run` estimates a sweep's wall time from `make bench`'s figures."""

from __future__ import annotations

import json

import pytest

from tune_rl.estimate import asha_env_steps, estimate
from tune_rl.spec import load_spec


@pytest.mark.parametrize("trials, grace, max_t, factor, expected", [
    (4, 3000, 6000, 2, 4 * 3000 + 2 * 3000),
    (8, 1000, 4000, 2, 8 * 1000 + 4 * 1000 + 2 * 2000),
    (1, 5000, 5000, 2, 5000),
])
def test_asha_spends_grace_on_every_trial_then_a_fraction_per_rung(
        trials, grace, max_t, factor, expected):
    assert asha_env_steps(trials, grace, max_t, factor) == expected
    assert asha_env_steps(trials, grace, max_t, factor, "none") == trials * max_t


def test_estimate_reads_the_bench_figures(tmp_path):
    bench = tmp_path / "latest.json"
    assert "make bench-quick" in estimate(load_spec("PPO"), "PPO", {"CPU": 1}, bench)
    figures = {"ppo_sweep_trial_env_steps_per_s": {"value": 100.0},
               "ppo_sweep_startup_to_first_result_s": {"value": 0.0}}
    bench.write_text(json.dumps({"machine": {"cpus": 2}, "measured_at": "now",
                                 "figures": figures}))
    spec = load_spec("PPO", trials=4, max_env_steps=6000, grace_env_steps=3000,
                     max_concurrent=2)
    result = estimate(spec, "PPO", {"CPU": 1}, bench)
    # 18,000 env steps at 2 trials x 100 env steps/s.
    assert result["env_steps"] == 18000 and result["minutes"] == pytest.approx(1.5)
    assert "measures no DQN trial" in estimate(spec, "DQN", {"CPU": 1}, bench)


def test_a_gpu_sweep_is_estimated_from_the_gpu_bench(tmp_path):
    bench = tmp_path / "gpu.json"
    spec = load_spec("Rainbow_DQN", profile="full", trials=16, max_env_steps=4000,
                     grace_env_steps=4000)
    per_trial = {"CPU": 1, "GPU": 0.125}
    machine = {"CPU": 16, "GPU": 1}
    assert "make bench-gpu" in estimate(spec, "DQN", per_trial, bench, machine)
    figures = {"rainbow_full_profile_alone_env_steps_per_s": {"value": 100.0},
               "rainbow_full_profile_at_once_per_trial_env_steps_per_s": {"value": 50.0}}
    bench.write_text(json.dumps({"machine": {"cpus": 16}, "measured_at": "now",
                                 "figures": figures}))
    result = estimate(spec, "DQN", per_trial, bench, machine)
    # 16 trials x 4,000 steps, 8 at a time (0.125 GPU each) at 50 env steps/s each.
    assert result["trials_at_once"] == 8
    assert result["minutes"] == pytest.approx(16 * 4000 / (8 * 50) / 60, abs=0.1)
    assert "has none" in estimate(spec, "DQN", per_trial, bench, {"CPU": 16, "GPU": 0})
