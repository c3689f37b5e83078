"""Times each sweep profile end to end, as `make sweep ALGO=<algo>` runs it.

Every sweep runs in its own `tune-rl sweep` process (Ray's start-up, Tune,
MLflow and checkpoints included; the venv setup not), with its results and
MLflow store in a temporary folder. Writes benchmarks/results/profiles.json
and profiles.md after each sweep, so a cut run keeps what it finished; rows of
algorithms not run this time are kept from the last run. Each row sets the
measured wall time beside what `--dry-run` estimated.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results")


def time_sweep(algo: str, profile: str, overrides: dict) -> dict:
    """One sweep in its own process; `overrides` are spec fields also given
    on the command line (tests: a cheaper env, fewer trials and steps)."""
    from tune_rl.plan import plan_sweep
    from tune_rl.spec import load_spec

    with tempfile.TemporaryDirectory() as folder:
        flags = ["--algo", algo, "--profile", profile, "--name", f"timed-{algo}",
                 "--storage-path", f"{folder}/ray_results",
                 "--tracking-uri", f"sqlite:///{folder}/mlflow.db"]
        for name, value in overrides.items():
            flags += [f"--{name.replace('_', '-')}", str(value)]
        estimated = plan_sweep(load_spec(algo, profile=profile, **overrides)
                               ).estimate_wall_time()
        start = time.time()
        done = subprocess.run([sys.executable, "-m", "tune_rl.cli", "sweep", *flags],
                              capture_output=True, text=True)
        wall = time.time() - start
        summary_file = Path(folder, "ray_results", f"timed-{algo}", "summary.json")
        if done.returncode != 0 or not summary_file.exists():
            return {"algo": algo, "profile": profile, "exit_code": done.returncode,
                    "wall_minutes": round(wall / 60, 1), "error": done.stderr[-2000:]}
        summary = json.loads(summary_file.read_text())
    trials = summary["trials"]
    statuses: dict[str, int] = {}
    for t in trials:
        statuses[t["status"]] = statuses.get(t["status"], 0) + 1
    best = summary["best"] or {}
    return {
        "algo": algo, "profile": profile, "exit_code": done.returncode,
        "wall_minutes": round(wall / 60, 1),
        "estimated_minutes": estimated.get("minutes") if isinstance(estimated, dict) else None,
        "trials": len(trials), "statuses": statuses,
        "env_steps": sum(t["env_steps"] for t in trials),
        "concurrency": summary["concurrency"],
        "best_score": best.get("selected_score"), "best_params": best.get("params"),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def markdown(rows: dict[str, dict], cpus: int) -> str:
    lines = ["# tune-rl sweep profiles, timed end to end", "",
             f"`tune-rl sweep --algo <algo>` on {cpus} CPUs, each in its own process "
             "(Ray start-up included). Scores after a quick profile's few thousand steps "
             "show learning has started, no more.", "",
             "| algo | profile | wall min | estimated min | trials | statuses | env steps "
             "| trials at once | best score | measured |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows.values():
        if row.get("error"):
            lines.append(f"| {row['algo']} | {row['profile']} | {row['wall_minutes']} | | | "
                         f"failed (exit {row['exit_code']}) | | | | |")
            continue
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(row["statuses"].items()))
        score = "" if row["best_score"] is None else f"{row['best_score']:.2f}"
        lines.append(f"| {row['algo']} | {row['profile']} | {row['wall_minutes']} | "
                     f"{row['estimated_minutes'] or ''} | {row['trials']} | {statuses} | "
                     f"{row['env_steps']} | {row['concurrency']} | {score} | "
                     f"{row['measured_at']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import os

    from tune_rl.presets import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--profile", default="quick", choices=["quick", "full"])
    parser.add_argument("--env", help="for tests: a cheaper env than the profile's")
    parser.add_argument("--trials", type=int, help="for tests: fewer trials")
    parser.add_argument("--max-env-steps", type=int, help="for tests: a smaller budget")
    parser.add_argument("--out", default=str(RESULTS), help="folder for profiles.json/.md")
    args = parser.parse_args(argv)
    overrides = {name: getattr(args, name) for name in ("env", "trials", "max_env_steps")
                 if getattr(args, name) is not None}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "profiles.json"
    rows = json.loads(store.read_text()) if store.exists() else {}
    failed = 0
    for algo in args.algos:
        print(f"timing {algo} ({args.profile}) ...", flush=True)
        row = time_sweep(algo, args.profile, overrides)
        failed += bool(row.get("error"))
        rows[f"{algo}/{args.profile}"] = row
        store.write_text(json.dumps(rows, indent=2) + "\n")
        (out / "profiles.md").write_text(markdown(rows, os.cpu_count() or 1))
        print(f"  {row['wall_minutes']} min, estimated {row.get('estimated_minutes')}",
              flush=True)
    print(f"written to {store} and {out / 'profiles.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
