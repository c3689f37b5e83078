"""`make bench-search`: what each search method finds on CartPole PPO for
the same budget, beside a stock Ray Tune script (stock_tune.py).

For each method and sweep seed, one sweep of `trials` trials of `steps` env
steps (tune-rl's CartPole space and 8 envs per sampler), then, read from
Tune's result files:
- trials at 475: trials that ran the whole budget (with ASHA, those it kept)
  and whose last evaluation scored 475 or more;
- best evaluation score of any trial at any evaluation;
- env steps to 475: all trials' env steps together, by Tune's timestamps,
  until the first evaluation of 475 or more (inf when none);
- wall time of the sweep.
Methods: `tpe` (TPE + ASHA, tune-rl's default), `random` (random search, no
early stopping), `pbt`, `pb2`, and `stock` (OptunaSearch + ASHA over RLlib's
PPO as Tune's docs show it, no tune-rl code; evaluated by RLlib's own
greedy evaluation).

Writes benchmarks/results/search.json and search.md (search-<size>.* for
--size quick or tiny); each sweep's row is written as soon as it ends.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

RESULTS = Path(__file__).with_name("results")
TARGET = 475.0
METHODS = ("tpe", "random", "pbt", "pb2", "stock")
SIZES = {  # seeds, trials, env steps per trial
    "full": (3, 16, 50_000),
    "quick": (1, 8, 20_000),
    "tiny": (1, 2, 2_000),
}


def run_tune_rl(method: str, seed: int, trials: int, steps: int, folder: str) -> str:
    from tune_rl.plan import plan_sweep
    from tune_rl.runner import run_sweep
    from tune_rl.spec import load_spec

    spec = load_spec("PPO", env="cartpole", search="random" if method == "random" else method,
                     early_stopping="none" if method in ("random", "pbt", "pb2") else "asha",
                     trials=trials, max_env_steps=steps, seed=seed, max_concurrent=2,
                     grace_env_steps=min(steps, 10_000), evaluation=True,
                     # A fifth of the budget between perturbations: every member
                     # pauses at each point (synchronous PBT), which on 2 cores
                     # cost a 16-member population most of its time at a tenth.
                     **({"perturbation_env_steps": max(1, steps // 5)}
                        if method in ("pbt", "pb2") else {}),
                     name=f"{method}-{seed}", storage_path=f"{folder}/r",
                     tracking_uri=f"sqlite:///{folder}/mlflow.db")
    run_sweep(plan_sweep(spec))
    return f"{folder}/r/{spec.name}"


def trial_rows(experiment: str, method: str) -> list[list[dict]]:
    """Per trial: (timestamp, env steps, evaluation score or None) per result."""
    eval_key = ("evaluation", "env_runners", "episode_return_mean") if method == "stock" \
        else ("eval_score",)
    trials = []
    for path in sorted(Path(experiment).glob("*/result.json")):
        rows = []
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            result = json.loads(line)
            value = result
            for key in eval_key:
                value = value.get(key) if isinstance(value, dict) else None
            evaluated = value if isinstance(value, (int, float)) and math.isfinite(value) \
                else None
            rows.append({"t": result["timestamp"], "eval": evaluated,
                         "steps": result["num_env_steps_sampled_lifetime"]})
        trials.append(rows)
    return trials


def figures(trials: list[list[dict]], steps: int) -> dict:
    full = [rows for rows in trials if rows and rows[-1]["steps"] >= steps]
    last_evals = [[r["eval"] for r in rows if r["eval"] is not None] for rows in full]
    at_target = sum(1 for evals in last_evals if evals and evals[-1] >= TARGET)
    evals = [r["eval"] for rows in trials for r in rows if r["eval"] is not None]
    reached = [r["t"] for rows in trials for r in rows
               if r["eval"] is not None and r["eval"] >= TARGET]
    to_target = math.inf
    if reached:
        first = min(reached)
        to_target = float(sum(max((r["steps"] for r in rows if r["t"] <= first), default=0)
                              for rows in trials))
    return {"trials": len(trials), "ran_whole_budget": len(full), "at_475": at_target,
            "best_eval": max(evals) if evals else None, "env_steps_to_475": to_target}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="full")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="only these sweep seeds (default: all of the size's); the "
                             "other rows of the results file are kept")
    args = parser.parse_args(argv)
    seeds, trials, steps = SIZES[args.size]
    suffix = "" if args.size == "full" else f"-{args.size}"
    out_json = args.out / f"search{suffix}.json"
    report = json.loads(out_json.read_text()) if out_json.exists() else {"rows": []}
    report.update(size=args.size, trials=trials, env_steps_per_trial=steps,
                  machine={"cpus": os.cpu_count()},
                  measured_at=time.strftime("%Y-%m-%d %H:%M:%S"))
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             logging_level="ERROR", ignore_reinit_error=True)
    # Seed by seed, every method within one: an interrupted run still leaves
    # all methods compared on the seeds it finished.
    for seed in args.seeds if args.seeds is not None else range(seeds):
        for method in args.methods:
            with tempfile.TemporaryDirectory() as folder:
                started = time.perf_counter()
                if method == "stock":
                    from stock_tune import run_stock

                    experiment = run_stock(seed, trials, steps, f"{folder}/r", f"stock-{seed}")
                else:
                    experiment = run_tune_rl(method, seed, trials, steps, folder)
                row = {"method": method, "seed": seed,
                       "wall_s": round(time.perf_counter() - started, 1),
                       **figures(trial_rows(experiment, method), steps)}
            report["rows"] = [r for r in report["rows"]
                              if (r["method"], r["seed"]) != (method, seed)] + [row]
            args.out.mkdir(parents=True, exist_ok=True)
            out_json.write_text(json.dumps(report, indent=2, default=str))
            out_json.with_suffix(".md").write_text(markdown(report))
            print(json.dumps(row), flush=True)
    return 0


def markdown(report: dict) -> str:
    lines = [f"# Search methods on CartPole PPO ({report['size']}: {report['trials']} trials "
             f"x {report['env_steps_per_trial']:,} env steps per sweep)", "",
             f"Measured {report['measured_at']} on {report['machine']['cpus']} CPUs. "
             "Trials at 475: ran the whole budget and scored 475 or more at their last "
             "evaluation.", "",
             "| method | seed | trials at 475 / ran whole budget | best evaluation | "
             "env steps to 475 | wall (s) |", "| --- | --- | --- | --- | --- | --- |"]
    for r in sorted(report["rows"], key=lambda r: (METHODS.index(r["method"]), r["seed"])):
        best = "-" if r["best_eval"] is None else f"{r['best_eval']:.1f}"
        lines.append(f"| {r['method']} | {r['seed']} | {r['at_475']} / {r['ran_whole_budget']} "
                     f"| {best} | {r['env_steps_to_475']:,.0f} | {r['wall_s']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
