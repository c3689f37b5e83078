"""`make bench-gpu`: issue 11's GPU figures, on a machine with a CUDA GPU.

Writes benchmarks/results/gpu.json and gpu.md. Each figure is written as soon
as it is measured, and one that fails records its error while the next one
runs: GPU time is lent in short slices, and a run cut short keeps what it
measured. Every figure gives the GPU's mean busy share while it ran
(nvidia-smi). `--tiny` runs the same plumbing on a CPU for tests; its figures
mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import measure  # noqa: E402
from run import RESULTS, figure, machine, markdown  # noqa: E402

# Sweeps run the full profiles as the sweep files set them (resources
# included), at budgets of about a minute per figure; Rainbow's learn after
# 400 steps (schedule_scale 0.02 of Dopamine's 20,000), so theirs are learning
# rates. Rainbow outside Tune samples in its own process, as the profile does.
SIZES = {
    "full": dict(device="cuda", gpus=1, updates=200, learn=2000, rainbow_steps=4000,
                 rainbow_iteration=1000, rainbow_overrides={}, ppo_steps=24000,
                 ppo_iteration=4000, ppo_training=None, ppo_overrides={}),
    "tiny": dict(device="cpu", gpus=0, updates=2, learn=64, rainbow_steps=512,
                 rainbow_iteration=256, rainbow_overrides={"gpus_per_learner": 0},
                 ppo_steps=2000, ppo_iteration=1000,
                 ppo_training={"train_batch_size_per_learner": 1000},
                 ppo_overrides={"gpus_per_learner": 0, "env_runners": 1,
                                "envs_per_env_runner": 1}),
}


class GpuBusy:
    """Mean GPU utilisation (%) while the block runs, sampled by nvidia-smi
    every 200 ms; None without nvidia-smi."""

    def __enter__(self) -> GpuBusy:
        self.mean = None
        try:
            self._smi = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                 "-lms", "200"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except FileNotFoundError:
            self._smi = None
        return self

    def __exit__(self, *exc) -> None:
        if self._smi is None:
            return
        self._smi.terminate()
        out, _ = self._smi.communicate()
        samples = [float(x) for x in out.split() if x.replace(".", "").isdigit()]
        self.mean = round(sum(samples) / len(samples), 1) if samples else None


def full_profile_at_once(algo: str, **overrides) -> tuple[int, str]:
    """How many trials of `algo`'s full profile this (started) Ray runs at
    once, and what one asks for, in words."""
    import ray

    from tune_rl.estimate import trials_at_once
    from tune_rl.plan import resolve_plan
    from tune_rl.spec import load_spec

    per_trial = resolve_plan(load_spec(algo, profile="full", **overrides)).resources_per_trial()
    return (trials_at_once(per_trial, ray.cluster_resources()),
            f"{per_trial['CPU']:g} CPU, {per_trial['GPU']:g} GPU a trial")


def figures(size: dict):
    """(title, thunk) pairs in the order they run, most wanted first; each
    thunk returns {figure name: figure}."""
    state: dict = {}

    def plain():
        state["plain_ms"] = measure.plain_pytorch_rainbow_update_ms(size["updates"],
                                                                    size["device"])
        return {"rainbow_update_plain_pytorch_ms": figure(state["plain_ms"],
                                                          "ms per update of 32")}

    def learning():
        plain_ms = state.get("plain_ms")
        bound = 1000 * measure.ENV_STEPS_PER_UPDATE / plain_ms if plain_ms else None
        r = measure.rainbow_learning(size["learn"], envs=8, gpus=size["gpus"])
        return {
            "rainbow_update_rllib_ms": figure(
                r["update_ms"], "ms per update of 32", plain_ms, "plain PyTorch update",
                1 / 0.6, "<= 1/0.6 of plain PyTorch", higher_is_better=False),
            "rainbow_learning_env_steps_per_s": figure(
                r["env_steps_per_s"], "env steps/s (8 envs in the trial's process)", bound,
                "plain-PyTorch bound (4 env steps per update)", 0.6, ">= 0.6 of the bound")}

    at_once, rainbow_ask = full_profile_at_once("Rainbow_DQN", **size["rainbow_overrides"])

    def rainbow(trials: int):
        def run():
            r = measure.sweep_trial(
                "Rainbow_DQN", size["rainbow_steps"], size["rainbow_iteration"],
                trials=trials, profile="full", schedule_scale=0.02,
                **size["rainbow_overrides"])
            if trials == 1:
                state["rainbow_alone"] = r["total_env_steps_per_s"]
                return {"rainbow_full_profile_alone_env_steps_per_s": figure(
                    r["per_trial_env_steps_per_s"], f"env steps/s, one trial ({rainbow_ask})")}
            return {
                "rainbow_full_profile_at_once_per_trial_env_steps_per_s": figure(
                    r["per_trial_env_steps_per_s"],
                    f"env steps/s per trial, {trials} at once ({rainbow_ask})"),
                "rainbow_full_profile_at_once_total_env_steps_per_s": figure(
                    r["total_env_steps_per_s"], f"env steps/s, {trials} trials together",
                    state.get("rainbow_alone"), "one trial alone", 4.0, ">= 4x one trial")}
        return run

    def ppo():
        _, ask = full_profile_at_once("PPO", **size["ppo_overrides"])
        r = measure.sweep_trial("PPO", size["ppo_steps"], size["ppo_iteration"],
                                training=size["ppo_training"], profile="full",
                                **size["ppo_overrides"])
        return {"ppo_full_profile_env_steps_per_s": figure(
            r["per_trial_env_steps_per_s"], f"env steps/s, one trial ({ask})",
            target=2500, target_text=">= 2,500")}

    together = [(f"Rainbow full profile, {at_once} at once", rainbow(at_once))] \
        if at_once > 1 else []  # one at a time here: the figure before says it
    return [("plain PyTorch Rainbow update", plain),
            ("Rainbow learning outside Tune", learning),
            ("Rainbow full profile, one trial", rainbow(1))] + together + \
        [("PPO full profile", ppo)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_const", const="tiny", dest="size",
                        help="the plumbing only, on a CPU, for tests")
    parser.add_argument("--out", default=str(RESULTS), help="folder for gpu.json/.md")
    args = parser.parse_args(argv)
    size_name = args.size or "full"
    size = SIZES[size_name]
    import ray
    import torch

    if size["device"] == "cuda" and not torch.cuda.is_available():
        print("bench-gpu: torch sees no CUDA GPU here; `make bench` measures a CPU machine",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"size": f"gpu-{size_name}", "machine": machine(), "figures": {}, "errors": {}}
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    start = time.time()
    try:
        for title, measure_it in figures(size):
            print(f"== {title}", flush=True)
            began = time.time()
            try:
                with GpuBusy() as busy:
                    measured = measure_it()
                for f in measured.values():
                    f["gpu_busy_percent"] = busy.mean
                report["figures"].update(measured)
                print(json.dumps(measured), flush=True)
            except Exception:  # noqa: BLE001 - recorded, and the next figure runs
                report["errors"][title] = traceback.format_exc()[-2000:]
                print(report["errors"][title], file=sys.stderr, flush=True)
            print(f"   {time.time() - began:.0f} s", flush=True)
            report["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
            report["duration_s"] = round(time.time() - start)
            (out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
            (out / "gpu.md").write_text(markdown(report) + _errors(report))
    finally:
        ray.shutdown()
    print(markdown(report))
    return 1 if report["errors"] else 0


def _errors(report: dict) -> str:
    if not report["errors"]:
        return ""
    return "\nFailed:\n\n" + "".join(f"- {title}: `{tb.strip().splitlines()[-1]}`\n"
                                      for title, tb in report["errors"].items())


if __name__ == "__main__":
    sys.exit(main())
