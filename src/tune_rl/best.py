"""`tune-rl best`: a sweep's winner as a sweep file that `tune-rl train` runs.

The winner is the confirmed one when the sweep has a confirmation
(confirm.py), else the sweep's best trial (selection.py). The file holds the
sweep's own settings with the searched values fixed under `params`, and one
profile, `quick`, of one trial at the sweep's budget: `tune-rl train
--config best.yaml --env-steps N` trains it as long as asked.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from tune_rl.confirm import CONFIRMATION, load_sweep
from tune_rl.errors import UsageError
from tune_rl.storage import Storage

# Spec fields that belong to one run, not to the configuration.
PER_RUN = {"name", "experiment", "profile", "trials", "max_env_steps", "storage_path",
           "tracking_uri", "spec_file", "search", "early_stopping", "target_score",
           "grace_env_steps", "reduction_factor", "max_concurrent", "checkpoint_every",
           "params", "seed", "algo", "env", "profile_from", "perturbation_env_steps"}


def winner(name: str, storage_path: str = "ray_results") -> dict[str, Any]:
    """The sweep's winner: params, seed and how it was chosen."""
    summary = load_sweep(name, storage_path)
    storage = Storage(storage_path)
    if storage.exists(f"{name}/{CONFIRMATION}"):
        table = json.loads(storage.read_text(f"{name}/{CONFIRMATION}"))
        if table.get("winner"):
            row = next(r for r in table["rows"] if r["trial"] == table["winner"]["trial"])
            run = row["best_run"] or {}
            return {"summary": summary, "params": table["winner"]["params"],
                    "seed": run.get("seed", summary["spec"]["seed"]),
                    "chosen": f"confirmed by {table['confirmation']}: mean final evaluation "
                              f"score {table['winner']['mean']:.4g} over "
                              f"{len(row['scores'])} new seeds (sweep trial {row['trial']})"}
    best = summary.get("best")
    if not best:
        raise UsageError(f"sweep {name!r} has no best trial (no trial finished with a score "
                         "and a checkpoint): there is no winner to write")
    return {"summary": summary, "params": best["params"], "seed": best["seed"],
            "chosen": f"best trial {best['trial']} of the sweep by {summary['select']} "
                      f"score {best['selected_score']:.4g} (one seed, not confirmed)"}


def best_yaml(name: str, storage_path: str = "ray_results") -> str:
    found = winner(name, storage_path)
    spec = found["summary"]["spec"]
    settings = {k: v for k, v in spec.items() if k not in PER_RUN}
    data = {"algo": spec["algo"], "env": spec["env"], "seed": found["seed"],
            "params": found["params"], "early_stopping": "none", **settings,
            "profiles": {"quick": {"trials": 1, "max_env_steps": spec["max_env_steps"]}}}
    header = (f"# The winner of sweep {name}: {found['chosen']}.\n"
              "# Its searched values are fixed under `params`; the rest are the sweep's\n"
              "# settings (schedule_scale included: it sized the preset's schedules to the\n"
              "# sweep's budget). Train it longer:\n"
              "#   tune-rl train --config <this file> --env-steps N\n")
    return header + yaml.safe_dump(data, sort_keys=False)
