"""What a trial asks Ray for, and how many trials run at once.

The GPU side is checked on resource requests only: CI has no GPU, and a
request is what Ray schedules by (a GPU run is `make bench-gpu` on a GPU
machine; benchmarks/results/gpu.md has one).
"""

from __future__ import annotations

import pytest

from tune_rl.errors import UsageError
from tune_rl.estimate import trials_at_once
from tune_rl.plan import resolve_plan, resources_per_trial
from tune_rl.spec import load_spec
from tune_rl.trainable import make_trainable


def request_of(algo: str, **overrides) -> dict[str, float]:
    plan = resolve_plan(load_spec(algo, **overrides))
    trainable = make_trainable(plan.preset, plan.env, plan.settings, 1)
    return resources_per_trial(trainable, plan.space)


def test_a_fractional_gpu_reaches_rllibs_resource_request():
    # RLlib's own request for a trial with a local learner on a quarter GPU
    # and three env runners: the main process (1 CPU, 0.25 GPU) plus 3 CPUs.
    request = request_of("Rainbow_DQN", gpus_per_learner=0.25, env_runners=3)
    assert request == {"CPU": 4.0, "GPU": 0.25}


def test_full_dqn_profiles_put_eight_trials_on_one_gpu_of_a_16_core_machine():
    # Each samples in its own process: 1 CPU and an eighth of the GPU.
    for algo in ("DQN", "Double_DQN", "Dueling_DQN", "DQN_PER", "Noisy_DQN", "DQN_C51",
                 "Rainbow_DQN"):
        request = request_of(algo, profile="full")
        assert request == {"CPU": 1.0, "GPU": 0.125}, algo
        assert trials_at_once(request, {"CPU": 16, "GPU": 1}) == 8


def test_full_ppo_profile_samples_with_most_of_a_16_core_machine():
    # 12 env runners and the trial's own process, with the whole GPU.
    request = request_of("PPO", profile="full")
    assert request == {"CPU": 13.0, "GPU": 1.0}
    assert trials_at_once(request, {"CPU": 16, "GPU": 1}) == 1


@pytest.mark.parametrize("per_trial, cluster, expected", [
    ({"CPU": 1, "GPU": 0}, {"CPU": 2}, 2),             # CPUs only
    ({"CPU": 3, "GPU": 0.25}, {"CPU": 16, "GPU": 1}, 4),  # the GPU's share bounds
    ({"CPU": 4, "GPU": 0.1}, {"CPU": 16, "GPU": 1}, 4),   # the CPUs bound
    ({"CPU": 1, "GPU": 0.1}, {"CPU": 64, "GPU": 1}, 10),  # not 9 from 1.0 // 0.1
    ({"CPU": 4, "GPU": 0}, {"CPU": 2}, 1),             # at least one
])
def test_trials_at_once(per_trial, cluster, expected):
    assert trials_at_once(per_trial, cluster) == expected


def test_a_gpu_trial_on_a_cluster_without_gpu_is_refused():
    with pytest.raises(UsageError, match="gpus_per_learner is 0.25, but the Ray cluster has "
                                         "no GPU"):
        trials_at_once({"CPU": 1, "GPU": 0.25}, {"CPU": 2})
