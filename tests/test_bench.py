"""`make bench` runs end to end and writes every figure it promises.

Tiny amounts of work: this checks the plumbing (each figure measured, with
its reference and target, written as JSON and Markdown), never the speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIGURES = {
    "env_raw_ale_steps_per_s", "env_wrapped_steps_per_s", "env_ale_vector_8_steps_per_s",
    "mlflow_ms_per_result", "rainbow_update_plain_pytorch_ms", "rainbow_update_rllib_ms",
    "dqn_sampling_1_env_steps_per_s", "dqn_sampling_8_env_steps_per_s",
    "dqn_sampling_8_rllib_runner_env_steps_per_s", "dqn_q_network_ms_per_8_steps",
    "dqn_sampling_8_greedy_bound_env_steps_per_s", "dqn_sampling_8_greedy_env_steps_per_s",
    "rainbow_learning_env_steps_per_s", "replay_bytes_per_transition",
    "replay_prioritized_bytes_per_transition",
    "ppo_bare_rllib_env_steps_per_s", "ppo_sweep_trial_env_steps_per_s",
    "ppo_sweep_startup_to_first_result_s", "rainbow_dqn_bare_rllib_env_steps_per_s",
    "rainbow_dqn_sweep_trial_env_steps_per_s", "rainbow_dqn_sweep_startup_to_first_result_s",
    "rainbow_1_concurrent_total_env_steps_per_s", "rainbow_update_rllib_k_calls_ms",
    "rainbow_learning_k_calls_env_steps_per_s",
}


@pytest.mark.slow
def test_bench_writes_every_figure(tmp_path):
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "benchmarks/run.py", "--tiny", "--out", str(tmp_path)],
                          cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert set(report["figures"]) == FIGURES
    assert report["machine"]["versions"]["ray"].startswith("2.60")
    for name, figure in report["figures"].items():
        assert figure["value"] is not None and figure["unit"], name
    # Frames stored once: at least one 84x84 frame per stored transition;
    # in 64 steps of 8 envs, each episode's first stack whole is a large
    # share, still below one whole stack.
    for name in ("replay_bytes_per_transition", "replay_prioritized_bytes_per_transition"):
        assert 84 * 84 <= report["figures"][name]["value"] <= 84 * 84 * 4, name
    table = (tmp_path / "latest.md").read_text()
    assert all(f"| {name} |" in table for name in FIGURES)


@pytest.mark.slow
def test_profile_timing_runs_a_real_sweep_and_keeps_other_rows(tmp_path):
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "profiles.json").write_text(json.dumps({"DQN/quick": {
        "algo": "DQN", "profile": "quick", "wall_minutes": 9.0, "exit_code": 1,
        "error": "an earlier run"}}))
    done = subprocess.run([sys.executable, "benchmarks/profiles.py", "--algos", "PPO",
                           "--env", "cartpole", "--trials", "1", "--max-env-steps", "2000",
                           "--out", str(tmp_path)], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((tmp_path / "profiles.json").read_text())
    assert set(rows) == {"DQN/quick", "PPO/quick"}
    ppo = rows["PPO/quick"]
    assert ppo["trials"] == 1 and ppo["statuses"] == {"FINISHED": 1}
    assert ppo["env_steps"] >= 2000 and ppo["wall_minutes"] > 0
    assert "| PPO | quick |" in (tmp_path / "profiles.md").read_text()


def test_search_steps_count_every_trial_up_to_the_first_to_reach_the_target():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from search import figures

    def rows(*results):
        return [{"t": t, "steps": s, "eval": e} for t, s, e in results]

    a = rows((1, 1000, 20.0), (3, 2000, None), (5, 3000, 90.0))
    b = rows((2, 1000, 30.0), (4, 2000, 480.0), (6, 3000, 500.0))
    # b reaches 475 at t=4, when a had reported 2,000 steps: 2,000 + 2,000;
    # both ran the 3,000-step budget and only b's last evaluation is at 475.
    both = figures([a, b], steps=3000)
    assert both["env_steps_to_475"] == 4000
    assert (both["ran_whole_budget"], both["at_475"], both["best_eval"]) == (2, 1, 500.0)
    assert figures([a], steps=3000)["env_steps_to_475"] == float("inf")


@pytest.mark.slow
def test_search_bench_writes_a_row_per_sweep(tmp_path):
    """`make bench-search`'s plumbing at a tiny size, on tune-rl's random
    search (the stock script's RLlib evaluation of 5 whole games every
    iteration takes minutes even at this size: `make bench-search` runs it)."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "benchmarks/search.py", "--size", "tiny",
                           "--methods", "random", "--out", str(tmp_path)],
                          cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "search-tiny.json").read_text())
    (row,) = report["rows"]
    assert row["method"] == "random" and row["trials"] == 2 and row["ran_whole_budget"] == 2
    assert row["best_eval"] is not None and row["wall_s"] > 0
    assert "| random | 0 | " in (tmp_path / "search-tiny.md").read_text()


def test_search_bench_counts_steps_to_the_first_evaluation_at_475():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from search import figures

    a = [{"t": 1, "steps": 1000, "eval": None}, {"t": 3, "steps": 2000, "eval": 480.0}]
    b = [{"t": 2, "steps": 1000, "eval": 200.0}, {"t": 4, "steps": 2000, "eval": 500.0}]
    c = [{"t": 2, "steps": 1000, "eval": 10.0}]  # stopped early
    found = figures([a, b, c], steps=2000)
    # a reaches 475 at t=3, when b and c had reported 1,000 steps each.
    assert found["env_steps_to_475"] == 4000
    assert found["at_475"] == 2 and found["ran_whole_budget"] == 2
    assert found["best_eval"] == 500.0


GPU_FIGURES = {
    "rainbow_update_plain_pytorch_ms", "rainbow_update_rllib_ms",
    "rainbow_learning_env_steps_per_s", "rainbow_full_profile_alone_env_steps_per_s",
    "rainbow_full_profile_at_once_per_trial_env_steps_per_s",
    "rainbow_full_profile_at_once_total_env_steps_per_s", "ppo_full_profile_env_steps_per_s",
}


@pytest.mark.slow
def test_gpu_bench_plumbing_writes_every_figure(tmp_path):
    """`make bench-gpu`'s figures, run on this CPU (`--tiny`): the full
    profiles' sweeps really run, two Rainbow trials at once on two cores."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "benchmarks/gpu.py", "--tiny", "--out", str(tmp_path)],
                          cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert report["errors"] == {}
    assert set(report["figures"]) == GPU_FIGURES
    total = report["figures"]["rainbow_full_profile_at_once_total_env_steps_per_s"]
    assert total["compared_to"] == "one trial alone" and total["ratio"] > 0
    assert "2 trials together" in total["unit"]
    assert "| GPU busy % |" in (tmp_path / "gpu.md").read_text()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_gpu_bench_without_a_gpu_says_so(tmp_path):
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "benchmarks/gpu.py", "--out", str(tmp_path)],
                          cwd=root, capture_output=True, text=True)
    assert done.returncode == 2
    assert "no CUDA GPU" in done.stderr and "make bench" in done.stderr
    assert not (tmp_path / "gpu.json").exists()
