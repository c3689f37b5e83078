"""`tune-rl confirm`: a sweep's best configurations trained again on new seeds.

A sweep ranks configurations by one run each, on the seeds it tuned on, so
its winner may be the configuration that got lucky (Henderson et al. 2018;
Eimer et al. 2023 tune on some seeds and test the incumbent on others).
Confirmation trains the sweep's top K configurations again with S new seeds
each (the same S for every configuration, so they are compared on the same
games of chance), at the trial budget, and reports per configuration the
mean, standard deviation and 95% interval of the final evaluation score.

Whether the sweep's ranking held is said two ways: Spearman's rank
correlation between the sweep's order and the confirmed means, and whether
the confirmed winner's interval overlaps the runner-up's (if it does, S
seeds cannot tell the two apart; a confirmation narrows the doubt, it does
not remove it, and it says nothing about budgets longer than the trial's).

In MLflow the confirmation is a run nested under the sweep's parent run,
with one nested run per configuration and seed, the table as an artifact and
the confirmed winner as a tag; the winner's best checkpoint is registered as
a new version of the sweep's model, tagged `confirmed`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
from ray import tune

from tune_rl import selection
from tune_rl.errors import UsageError, unknown
from tune_rl.plan import SUMMARY, SweepPlan, plan_sweep
from tune_rl.search import SEED, trial_seed
from tune_rl.spec import SweepSpec
from tune_rl.storage import Storage

CONFIRMATION = "confirmation.json"


def load_sweep(name: str, storage_path: str = "ray_results") -> dict[str, Any]:
    """The summary of a finished sweep; refuses a name that has none."""
    storage = Storage(storage_path)
    if not storage.exists(f"{name}/{SUMMARY}"):
        finished = sorted(p.parent.name for p in _summaries(storage_path))
        if not finished:
            raise UsageError(f"no finished sweep {name!r} in {storage_path}: it holds none "
                             "(run a sweep first, or pass --storage-path)")
        raise unknown(f"finished sweep in {storage_path}:", name, finished)
    summary = json.loads(storage.read_text(f"{name}/{SUMMARY}"))
    if "spec" not in summary:
        raise UsageError(f"sweep {name!r} was summarised by an older tune-rl without its "
                         "spec: it cannot be confirmed; run it again")
    return summary


def _summaries(storage_path: str):
    from pathlib import Path

    root = Path(storage_path)
    return root.glob(f"*/{SUMMARY}") if root.is_dir() else []


def sweep_spec(summary: dict[str, Any], **changes: Any) -> SweepSpec:
    """The sweep's own spec, with `changes` (a new name, budget, ...)."""
    fields = {f.name for f in dataclasses.fields(SweepSpec)}
    values = {k: v for k, v in summary["spec"].items() if k in fields}
    values.update({k: v for k, v in changes.items() if v is not None})
    return SweepSpec(**values)


def plan_confirmation(summary: dict[str, Any], top: int, seeds: int,
                      env_steps: int | None = None, name: str | None = None,
                      storage_path: str | None = None,
                      tracking_uri: str | None = None, resume: bool = False) -> SweepPlan:
    """The K x S runs, checked before Ray starts; refuses what cannot be confirmed."""
    ranked = selection.ranked(summary["trials"])
    if seeds < 2:
        raise UsageError(f"--seeds must be at least 2 to give an interval, got {seeds}")
    if not 1 <= top <= len(ranked):
        raise UsageError(f"--top must be between 1 and {len(ranked)}, the trials of sweep "
                         f"{summary['sweep']!r} with a score and a checkpoint; got {top}")
    if env_steps is not None and env_steps <= 0:
        raise UsageError(f"--env-steps must be a positive integer, got {env_steps}")
    original = summary["spec"]
    steps = env_steps or original["max_env_steps"]
    spec = sweep_spec(
        summary, name=name or f"{summary['sweep']}-confirm", trials=top * seeds,
        max_env_steps=steps, grace_env_steps=min(original["grace_env_steps"], steps),
        min_env_steps_per_iteration=min(original["min_env_steps_per_iteration"], steps),
        # Every run to its budget, evaluated at its end: the figure compared.
        early_stopping="none", select="eval", target_score=None, checkpoint_every=0,
        storage_path=storage_path, tracking_uri=tracking_uri)
    # The space is the K configurations' own values (checked as any space),
    # not today's search space module, which may have changed since the sweep.
    chosen = [trial["params"] for trial in ranked[:top]]
    values: dict[str, list] = {name: [] for name in chosen[0]}
    for params in chosen:
        for name, value in params.items():
            if value not in values[name]:
                values[name].append(value)
    space = {name: tune.choice(choices) for name, choices in values.items()}
    plan = plan_sweep(spec, resume=resume, space=space)
    plan.configs = [{**params, SEED: new_seed} for params in chosen
                    for new_seed in confirmation_seeds(original["seed"], seeds)]
    plan.parent_run_id = summary["mlflow"].get("parent_run_id")
    return plan


def confirmation_seeds(sweep_seed: int, seeds: int) -> list[int]:
    """New seeds: another stream than the sweep's trials' (search.trial_seed)."""
    return [trial_seed(sweep_seed, i, stream=1) for i in range(seeds)]


def _key(params: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in params.items() if k != SEED}, sort_keys=True,
                      default=str)


def confirmation_table(sweep: dict[str, Any], runs: list[dict[str, Any]], top: int
                       ) -> dict[str, Any]:
    """Per configuration, in the sweep's order: its sweep score and the final
    evaluation scores of its confirmation runs, their mean, std and interval."""
    from scipy import stats

    from tune_rl.evaluation import confidence_interval

    rows = []
    for rank, trial in enumerate(selection.ranked(sweep["trials"])[:top], start=1):
        mine = [r for r in runs if _key(r["params"]) == _key(trial["params"])]
        finals = [r["eval_score"] for r in mine if r["eval_score"] is not None
                  and r["status"] not in selection.NEVER_BEST]
        low, high = confidence_interval(finals)
        rows.append({
            "sweep_rank": rank, "trial": trial["trial"], "params": trial["params"],
            "sweep_score": trial["selected_score"], "scores": finals,
            "seeds": [r["seed"] for r in mine], "runs": len(mine),
            "failed": len(mine) - len(finals),
            "mean": float(np.mean(finals)) if finals else None,
            "std": float(np.std(finals, ddof=1)) if len(finals) > 1 else None,
            "interval": [low, high],
            "best_run": selection.best(mine),
        })
    scored = [r for r in rows if r["mean"] is not None]
    by_mean = sorted(scored, key=lambda r: r["mean"], reverse=True)
    for place, row in enumerate(by_mean, start=1):
        row["confirmed_rank"] = place
    rho = None
    if len(scored) >= 3:
        rho = float(stats.spearmanr([r["sweep_rank"] for r in scored],
                                    [r["confirmed_rank"] for r in scored]).statistic)
    winner = by_mean[0] if by_mean else None
    runner_up = by_mean[1] if len(by_mean) > 1 else None
    overlaps = None
    if winner and runner_up and not math.isnan(winner["interval"][0]):
        overlaps = bool(winner["interval"][0] <= runner_up["interval"][1])
    return {
        "sweep": sweep["sweep"], "top": top, "rows": rows,
        "winner": winner and {k: winner[k] for k in ("trial", "params", "mean", "interval")},
        "winner_held": bool(winner and winner["sweep_rank"] == 1),
        "spearman_rho": rho,
        "winner_interval_overlaps_runner_up": overlaps,
    }


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_confirmation(table: dict[str, Any], seeds: int, env_steps: int) -> str:
    header = ["sweep rank", "trial", "sweep score", "mean", "std", "95% interval", "runs",
              "confirmed rank"]
    rows = [[str(r["sweep_rank"]), r["trial"], _fmt(r["sweep_score"]), _fmt(r["mean"]),
             _fmt(r["std"]), f"[{_fmt(r['interval'][0])}, {_fmt(r['interval'][1])}]",
             f"{r['runs'] - r['failed']}/{r['runs']}", _fmt(r.get("confirmed_rank"))]
            for r in table["rows"]]
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    lines = [f"Confirmation of sweep {table['sweep']}: top {table['top']} configurations x "
             f"{seeds} new seeds, {env_steps} env steps each; final evaluation score",
             "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append("")
    lines.append(ranking_verdict(table))
    winner = table["winner"]
    if winner:
        lines.append(f"Confirmed winner: {winner['trial']}'s configuration, mean "
                     f"{_fmt(winner['mean'])}: "
                     + ", ".join(f"{k}={_fmt(v)}" for k, v in winner["params"].items()))
    return "\n".join(lines)


def ranking_verdict(table: dict[str, Any]) -> str:
    held = ("The sweep's winner is the confirmed winner" if table["winner_held"]
            else "The sweep's winner is NOT the confirmed winner")
    rho = table["spearman_rho"]
    parts = [held, f"Spearman's rho between the sweep's order and the confirmed means "
                   f"{_fmt(rho)}" if rho is not None else
             "Spearman's rho needs 3 or more configurations"]
    overlaps = table["winner_interval_overlaps_runner_up"]
    if overlaps is not None:
        parts.append("the winner's 95% interval overlaps the runner-up's: these seeds do "
                     "not separate them" if overlaps else
                     "the winner's 95% interval lies above the runner-up's")
    return "; ".join(parts) + "."


def finish_confirmation(sweep: dict[str, Any], top: int, seeds: int):
    """The runner's `finish` for a confirmation: the sweep's summary of the
    runs, then the table, its records and the registered confirmed winner."""

    def finish(plan: SweepPlan, results, tracking, concurrency: int) -> dict[str, Any]:
        from tune_rl.config import policy_observation_space
        from tune_rl.report import write_summary
        from tune_rl.runner import summarize_run

        spec = plan.spec
        summary = summarize_run(plan, results, tracking, concurrency)
        if summary.get("interrupted"):
            return summary
        table = confirmation_table(sweep, summary["trials"], top)
        table.update(seeds=seeds, env_steps=spec.max_env_steps, confirmation=spec.name,
                     mlflow_run_id=tracking.parent_run_id)
        winner_row = next((r for r in table["rows"] if r["confirmed_rank"] == 1), None) \
            if table["winner"] else None
        if winner_row and winner_row["best_run"]:
            best = {**winner_row["best_run"], "selected_by": "eval"}
            model = f"{sweep['env']}-{sweep['algo']}"
            with spec.storage.local_copy(best["checkpoint"]) as folder:
                version = tracking.log_best_policy(
                    best, folder, model, policy_observation_space(plan.preset, plan.env),
                    extra_tags={"confirmed": "true", "confirmed_mean": str(table["winner"]["mean"]),
                                "confirmed_interval": str(table["winner"]["interval"]),
                                "confirmation": spec.name})
            table["model"] = version and f"models:/{model}/{version}"
        text = format_confirmation(table, seeds, spec.max_env_steps)
        log_confirmation(tracking.client, tracking.parent_run_id,
                         sweep["mlflow"].get("parent_run_id"), table, text)
        summary["confirmation"] = table
        write_summary(summary, spec.storage, spec.name)
        # Beside the sweep's own summary, where `tune-rl best` looks.
        spec.storage.write_text(
            f"{sweep['sweep']}/{CONFIRMATION}", json.dumps(table, indent=2, default=str))
        tracking.end_sweep(summary, "FINISHED" if summary["succeeded"] else "FAILED")
        return summary

    return finish


def log_confirmation(client, run_id: str, sweep_run_id: str | None, table: dict[str, Any],
                     text: str) -> None:
    """The table on the confirmation's run; its winner tagged there and on the
    sweep's parent run."""
    import time

    from mlflow.entities import Metric, RunTag

    client.log_text(run_id, text, "confirmation.txt")
    client.log_dict(run_id, table, "confirmation.json")
    winner = table.get("winner")
    if not winner:
        return
    tags = [RunTag("confirmed_winner", winner["trial"]),
            RunTag("confirmed_params", json.dumps(winner["params"], default=str)),
            RunTag("ranking_held", str(table["winner_held"]).lower())]
    client.log_batch(run_id, tags=tags, metrics=[
        Metric("confirmed_mean", float(winner["mean"]), int(time.time() * 1000), 0)])
    if sweep_run_id:
        client.log_batch(sweep_run_id, tags=[*tags, RunTag("confirmation_run", run_id)])
