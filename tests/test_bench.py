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
    "rainbow_learning_env_steps_per_s", "replay_bytes_per_transition",
    "ppo_bare_rllib_env_steps_per_s", "ppo_sweep_trial_env_steps_per_s",
    "ppo_sweep_startup_to_first_result_s", "rainbow_dqn_bare_rllib_env_steps_per_s",
    "rainbow_dqn_sweep_trial_env_steps_per_s", "rainbow_dqn_sweep_startup_to_first_result_s",
    "rainbow_1_concurrent_total_env_steps_per_s", "search_random_no_stopping_env_steps_to_450",
    "search_tpe_asha_env_steps_to_450",
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
    # The uint8 frames: one 84x84x4 observation per stored transition, plus
    # each stored episode chunk's last observation.
    replay = report["figures"]["replay_bytes_per_transition"]["value"]
    assert 84 * 84 * 4 <= replay <= 2 * 84 * 84 * 4
    table = (tmp_path / "latest.md").read_text()
    assert all(f"| {name} |" in table for name in FIGURES)
