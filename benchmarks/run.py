"""`make bench` (and `make bench-quick`): tune-rl's speed on this machine.

Writes benchmarks/results/latest.json and latest.md: the machine, the
versions, and each figure with what it is compared to, measured in the same
run, the ratio and the target from issue 11. `--quick` measures the same
keys over smaller samples (about 5 minutes on 2 cores). Tests run the
plumbing with tiny amounts (`--tiny`); speed is never asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import measure  # noqa: E402

RESULTS = Path(__file__).with_name("results")

# Work per figure: full, quick (<= 5 min on 2 cores), tiny (tests: plumbing only).
# What search finds for its budget is `make bench-search`'s (search.py), not
# a speed figure: it left this file with its 16 x 50,000 sweeps on 3 seeds.
SIZES = {
    "full": dict(env=20000, sample=16000, learn=2000, updates=50, replay=4000, results=300,
                 ppo=20000, rainbow=3000, concurrent=(1, 2)),
    "quick": dict(env=4000, sample=1000, learn=512, updates=10, replay=1000, results=100,
                  ppo=4000, rainbow=1024, concurrent=(1, 2)),
    "tiny": dict(env=64, sample=64, learn=64, updates=2, replay=64, results=5, ppo=512,
                 rainbow=256, concurrent=(1,)),
}
# PPO's batch must fit the budget: a result every batch.
PPO_TRAINING = {"train_batch_size_per_learner": 1000}


def figure(value, unit, reference=None, reference_name="", target=None, target_text="",
           higher_is_better=True) -> dict:
    ratio = value / reference if reference else None
    met = None
    if target is not None:
        compared = ratio if ratio is not None else value
        met = compared >= target if higher_is_better else compared <= target
    return {"value": _round(value), "unit": unit, "compared_to": reference_name or None,
            "reference": _round(reference), "ratio": _round(ratio), "target": target_text or None,
            "met": met}


def _round(x):
    return None if x is None else (x if not isinstance(x, float) or math.isinf(x)
                                   else round(x, 3 if abs(x) < 10 else 1))


def measure_all(size: dict) -> dict:
    import ray

    figures: dict[str, dict] = {}
    raw = measure.raw_ale_steps_per_s(size["env"])
    figures["env_raw_ale_steps_per_s"] = figure(raw, "agent steps/s")
    figures["env_wrapped_steps_per_s"] = figure(
        measure.wrapped_env_steps_per_s(size["env"]), "agent steps/s", raw, "raw ALE")
    figures["env_ale_vector_8_steps_per_s"] = figure(
        measure.vector_env_steps_per_s(size["env"]), "agent steps/s", raw, "raw ALE")
    figures["mlflow_ms_per_result"] = figure(measure.mlflow_ms_per_result(size["results"]),
                                             "ms per trial result (SQLite)")
    plain_ms = measure.plain_pytorch_rainbow_update_ms(size["updates"])
    figures["rainbow_update_plain_pytorch_ms"] = figure(plain_ms, "ms per update of 32")
    bound = 1000 * measure.ENV_STEPS_PER_UPDATE / plain_ms

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    try:
        figures["dqn_sampling_1_env_steps_per_s"] = figure(
            measure.dqn_sampling_steps_per_s(1, size["sample"]), "env steps/s", raw,
            "raw ALE", 0.5, ">= 0.5 of raw ALE")
        # The vector env just before, with as many envs on the same cores:
        # the emulator's speed is the yardstick for sampling.
        vector = measure.vector_env_steps_per_s(size["env"])
        figures["dqn_sampling_8_env_steps_per_s"] = figure(
            measure.dqn_sampling_steps_per_s(8, size["sample"]), "env steps/s", vector,
            "AtariVectorEnv, 8 envs", 0.5, ">= 0.5 of the vector env")
        figures["dqn_sampling_8_rllib_runner_env_steps_per_s"] = figure(
            measure.dqn_sampling_steps_per_s(8, size["sample"], vector_env_runner=False),
            "env steps/s", vector, "AtariVectorEnv, 8 envs")
        # Epsilon 0.01: the Q-network runs for 99% of the steps. Its forward
        # pass and the emulator share the cores: the rate if the two
        # overlapped perfectly, the emulator on both cores and nothing else
        # to do, bounds sampling.
        forward_ms = measure.q_network_ms_per_8_steps(size["updates"] * 10)
        figures["dqn_q_network_ms_per_8_steps"] = figure(forward_ms, "ms of one core")
        cores = os.cpu_count() or 1
        sampling_bound = cores / (cores / vector + forward_ms / 8000)  # CPU seconds per step
        figures["dqn_sampling_8_greedy_bound_env_steps_per_s"] = figure(
            sampling_bound, "env steps/s", vector, "AtariVectorEnv, 8 envs")
        figures["dqn_sampling_8_greedy_env_steps_per_s"] = figure(
            measure.dqn_sampling_steps_per_s(8, size["sample"], epsilon=0.01), "env steps/s",
            vector, "AtariVectorEnv, 8 envs", 0.5, ">= 0.5 of the vector env")
        # RLlib's K learner calls per training step, then tune-rl's one, back to back.
        k_calls = measure.rainbow_learning(size["learn"], one_call=False)
        rainbow = measure.rainbow_learning(size["learn"])
        figures["rainbow_update_rllib_ms"] = figure(
            rainbow["update_ms"], "ms per update of 32", plain_ms, "plain PyTorch update",
            1 / 0.6, "<= 1/0.6 of plain PyTorch", higher_is_better=False)
        figures["rainbow_learning_env_steps_per_s"] = figure(
            rainbow["env_steps_per_s"], "env steps/s", bound,
            "plain-PyTorch bound (4 env steps per update)", 0.6, ">= 0.6 of the bound")
        figures["rainbow_update_rllib_k_calls_ms"] = figure(
            k_calls["update_ms"], "ms per update of 32", rainbow["update_ms"],
            "one learner call per K updates", higher_is_better=False)
        figures["rainbow_learning_k_calls_env_steps_per_s"] = figure(
            k_calls["env_steps_per_s"], "env steps/s", rainbow["env_steps_per_s"],
            "one learner call per K updates")
        for key, algo in (("replay", "DQN"), ("replay_prioritized", "DQN_PER")):
            figures[f"{key}_bytes_per_transition"] = figure(
                measure.replay_bytes_per_transition(size["replay"], algo), "bytes",
                target=8192, target_text="<= 8 KB", higher_is_better=False)
        for algo, steps, training in (("PPO", size["ppo"], PPO_TRAINING),
                                      ("Rainbow_DQN", size["rainbow"], {})):
            iteration = 1000 if algo == "PPO" else 256
            swept = measure.sweep_trial(algo, steps, iteration, training)
            # The same params as the swept trial, which Optuna chose.
            bare = measure.bare_loop_env_steps_per_s(algo, steps, iteration, training,
                                                     swept["params"])
            key = algo.lower()
            figures[f"{key}_bare_rllib_env_steps_per_s"] = figure(bare, "env steps/s")
            figures[f"{key}_sweep_trial_env_steps_per_s"] = figure(
                swept["per_trial_env_steps_per_s"], "env steps/s", bare, "bare RLlib loop",
                0.95, "overhead <= 5% (ratio >= 0.95)")
            figures[f"{key}_sweep_startup_to_first_result_s"] = figure(swept["startup_s"], "s")
    finally:
        ray.shutdown()
    one = None
    for processes in size["concurrent"]:
        total = measure.concurrent_rainbow_steps_per_s(processes, size["learn"])
        one = one or total
        figures[f"rainbow_{processes}_concurrent_total_env_steps_per_s"] = figure(
            total, "env steps/s", one, "one trial alone")
    return figures


def machine() -> dict:
    import torch

    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(),
            "versions": {p: version(p) for p in ("ray", "torch", "ale-py", "optuna", "mlflow")}}


def markdown(report: dict) -> str:
    lines = [f"# tune-rl benchmark ({report['size']})", "",
             f"Measured {report['measured_at']} on {report['machine']['cpus']} CPUs, "
             f"GPU: {report['machine']['gpu'] or 'none'}; "
             + ", ".join(f"{k} {v}" for k, v in report["machine"]["versions"].items()) + ".",
             ""]
    # GPU runs (gpu.py) give each figure the GPU's busy share while it ran.
    busy = any("gpu_busy_percent" in f for f in report["figures"].values())
    lines += ["| figure | value | unit | compared to | ratio | target | met |"
              + (" GPU busy % |" if busy else ""),
              "| --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if busy else "")]
    for name, f in report["figures"].items():
        met = {True: "yes", False: "no", None: ""}[f["met"]]
        compared = f"{f['compared_to']} ({f['reference']})" if f["compared_to"] else ""
        lines.append(f"| {name} | {f['value']} | {f['unit']} | {compared} | "
                     f"{f['ratio'] if f['ratio'] is not None else ''} | {f['target'] or ''} "
                     f"| {met} |" + (f" {f.get('gpu_busy_percent')} |" if busy else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_const", const="quick", dest="size")
    parser.add_argument("--tiny", action="store_const", const="tiny", dest="size",
                        help="the plumbing only, for tests: the figures mean nothing")
    parser.add_argument("--out", default=str(RESULTS), help="folder for latest.json/.md")
    args = parser.parse_args(argv)
    size = args.size or "full"
    start = time.time()
    report = {"size": size, "machine": machine(), "figures": measure_all(SIZES[size])}
    report["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    report["duration_s"] = round(time.time() - start)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # latest.* is what --dry-run's estimate reads; <size>.* keeps each size's last run.
    for name in ("latest", size):
        (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / f"{name}.md").write_text(markdown(report))
    print(markdown(report))
    print(f"written to {out / 'latest.json'} and {out / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
