"""Does refreshing PER's priorities after K updates, not after each, hurt learning?

Rainbow (prioritized replay) on CartPole, 8 envs x fragment 4 with
training_intensity 8: K = 8 updates of 32 per training step. Each seed trains
twice on the same budget, once with RLlib's K learner calls (priorities
refreshed after each update) and once with tune-rl's one call
(algorithm.py: refreshed after the K updates), and is scored by tune-rl's
greedy evaluation over whole games (evaluation.py), and by RLlib's
`episode_return_mean` of the last iteration: the training games that ended
in its last 1,000 env steps (RLlib 2.60 clears its windows at each
iteration), NaN when none ended (games of 500 steps over 8 envs can span
the whole iteration).

    PYTHONPATH=src python benchmarks/per_refresh.py [--env-steps 20000] [--seeds 0 1 2]

Writes benchmarks/results/per_refresh.json and .md.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
NOTE = ("Both modes ran back to back, seed by seed, in one process on 2 shared cores "
        "with other work running: seconds are comparable within a seed only.")
MODES = {"one call per K updates": True, "one call per update (RLlib)": False}


def train(seed: int, one_call: bool, env_steps: int, eval_games: int) -> dict:
    import torch

    from tune_rl.config import TrialSettings, build_config
    from tune_rl.envs import ENVS
    from tune_rl.evaluation import evaluate, evaluation_seed, policy_module
    from tune_rl.presets import PRESETS

    torch.set_num_threads(1)
    env, preset = ENVS["cartpole"], PRESETS["Rainbow_DQN"]
    env.register()
    # As tests/test_dqn_family.py's CartPole Rainbow: its returns reach 100
    # (discounted), so the support is widened from Atari's [-10, 10], and the
    # Atari schedules are CartPole-sized.
    settings = TrialSettings(
        seed=seed, envs_per_env_runner=8, rollout_fragment_length=4,
        min_env_steps_per_iteration=1000, max_env_steps=env_steps,
        training={"lr": 5e-4, "target_network_update_freq": 500, "v_min": 0.0,
                  "v_max": 100.0, "num_steps_sampled_before_learning_starts": 1000,
                  "updates_in_one_learner_call": one_call})
    algo = build_config(preset, env, {}, settings).build_algo()
    try:
        assert algo.config.updates_in_one_learner_call is one_call
        start, steps, calls = time.perf_counter(), 0, []
        while steps < env_steps:
            result = algo.train()
            steps = result["num_env_steps_sampled_lifetime"]
            calls.append(result.get("tune_rl_updates_per_learner_call"))
        seconds = time.perf_counter() - start
        trained = result["learners"]["default_policy"]["num_module_steps_trained_lifetime"]
        score = evaluate(policy_module(algo), preset, env, episodes=eval_games,
                         seed=evaluation_seed(seed, env_steps))
        return {"seed": seed, "env_steps": int(steps), "updates": int(trained) // 32,
                "updates_per_learner_call": int(calls[-1]), "seconds": round(seconds, 1),
                "greedy_eval_mean": round(score.mean, 1),
                # The games that ended in the last iteration (see above).
                "last_iteration_train_mean": round(
                    float(result["env_runners"].get("episode_return_mean", float("nan"))), 1)}
    finally:
        algo.stop()


def summarise(runs: list[dict]) -> dict:
    """Means over seeds (the last iteration's, over seeds where games ended)
    and the median seconds of a run."""
    summary = {key: round(statistics.fmean(v for r in runs if math.isfinite(v := r[key])), 1)
               for key in ("greedy_eval_mean", "last_iteration_train_mean")}
    summary["median_seconds"] = statistics.median(r["seconds"] for r in runs)
    return summary


def markdown(report: dict) -> str:
    lines = [f"# PER priorities refreshed after K updates vs after each ({report['date']})", "",
             report["setup"], "", report["note"], "",
             "| mode | seed | greedy eval (mean of games) | "
             "training games ended in the last iteration | updates | updates per call | seconds |",
             "|---|---|---|---|---|---|---|"]
    for mode, runs in report["runs"].items():
        for r in runs:
            lines.append(f"| {mode} | {r['seed']} | {r['greedy_eval_mean']} | "
                         f"{r['last_iteration_train_mean']} | {r['updates']} | "
                         f"{r['updates_per_learner_call']} | {r['seconds']} |")
    lines += ["", "| mode | greedy eval: mean over seeds | "
              "last iteration: mean over seeds where games ended | median seconds |",
              "|---|---|---|---|"]
    for mode, s in report["summary"].items():
        lines.append(f"| {mode} | {s['greedy_eval_mean']} | {s['last_iteration_train_mean']} | "
                     f"{s['median_seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-steps", type=int, default=20000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--eval-games", type=int, default=10)
    args = parser.parse_args(argv)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    try:
        for seed in args.seeds:  # the two modes back to back, seed by seed
            for mode, one_call in MODES.items():
                runs[mode].append(train(seed, one_call, args.env_steps, args.eval_games))
                print(mode, runs[mode][-1], flush=True)
    finally:
        ray.shutdown()
    summary = {mode: summarise(rs) for mode, rs in runs.items()}
    report = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "setup": (f"Rainbow_DQN (prioritized replay, alpha 0.5) on CartPole-v1, "
                  f"{args.env_steps} env steps per run, 8 envs x fragment 4, "
                  f"training_intensity 8 (K = 8 updates of 32 per training step), lr 5e-4, "
                  f"target update every 500 env steps, learning from 1,000 env steps, "
                  f"support [0, 100]; seeds {args.seeds}; greedy evaluation over "
                  f"{args.eval_games} whole games (evaluation.py). 2 shared CPU cores."),
        "note": NOTE, "runs": runs, "summary": summary}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "per_refresh.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "per_refresh.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
