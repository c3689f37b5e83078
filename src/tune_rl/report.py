"""The end of a sweep: a summary of its trials, printed and written as JSON."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any

from tune_rl import selection
from tune_rl.cost import history_cost
from tune_rl.search import SEED
from tune_rl.trainable import DIVERGED, ENV_STEPS, EVAL_SCORE, SCORE


def summarize(plan, results, concurrency: int) -> dict[str, Any]:
    spec = plan.spec
    metric = selection.metric(spec.select, spec.search)
    trials = []
    for result in results:
        metrics = result.metrics or {}
        history = result.metrics_dataframe
        selected = history[metric].dropna() if history is not None and metric in history else []
        evaluated = (history[EVAL_SCORE].dropna() if history is not None
                     and EVAL_SCORE in history else [])
        steps = int(metrics.get(ENV_STEPS, 0) or 0)
        if result.error is not None:
            status = "FAILED"
        elif metrics.get(DIVERGED):
            status = "DIVERGED"  # stopped by the trainable: non-finite losses or weights
        elif (spec.target_score is not None and len(selected)
              and max(selected) >= spec.target_score):
            status = "REACHED_TARGET"  # and stopped the sweep (target_score)
        elif steps < spec.max_env_steps:
            status = "STOPPED_EARLY"  # by ASHA, or by another trial reaching the target
        else:
            status = "FINISHED"
        checkpoint, saved_with = (None, {}) if result.error else best_checkpoint(result, metric)
        params = dict(result.config or {})  # None for a trial that failed to start
        seed = params.pop(SEED, None)
        cost = history_cost(history.to_dict("records") if history is not None else [])
        trials.append({
            "trial": Path(result.path).name,
            "trial_id": metrics.get("trial_id") or Path(result.path).name.rsplit("_", 1)[-1],
            "status": status,
            "params": params,
            "seed": seed,
            # What Optuna was told: the selected score at the trial's last report.
            "selected_score": selection.finite(metrics.get(metric)),
            "score": selection.finite(metrics.get(SCORE)),
            "eval_score": selection.finite(evaluated.iloc[-1]) if len(evaluated) else None,
            "env_steps": steps,
            "iterations": int(metrics.get("training_iteration", 0) or 0),
            # What the trial cost, on which machine (cost.py says what is counted).
            "cpu_seconds": round(cost["cpu_seconds"], 1),
            "gpu_seconds": round(cost["gpu_seconds"], 1),
            "cpu": cost["cpu"],
            "gpu": cost["gpu"],
            "node_id": metrics.get("node_id"),
            "checkpoint": spec.storage.location_of(checkpoint.path) if checkpoint else None,
            # The selected score that checkpoint was saved with, and when.
            "checkpoint_score": selection.finite(saved_with.get(metric)),
            "checkpoint_env_steps": saved_with.get(ENV_STEPS) and int(saved_with[ENV_STEPS]),
            "error": error_line(str(result.error)) if result.error else None,
            "diverged": metrics.get(DIVERGED),  # what went non-finite
            "path": result.path,
        })
    failed = [t for t in trials if t["status"] == "FAILED"]
    best = selection.best(trials)
    return {
        "sweep": spec.name,
        "algo": spec.algo,
        "env": spec.env,
        "profile": spec.profile,
        "select": spec.select,
        "metric": f"{metric} ({selection.SELECT_RULES[spec.select]})",
        "concurrency": concurrency,
        "storage": spec.sweep_location,
        "mlflow": {"tracking_uri": spec.tracking_uri, "experiment": spec.experiment},
        "trials": trials,
        "best": best and {**best, "selected_by": spec.select},
        "target_score": spec.target_score,
        "target_reached": any(t["status"] == "REACHED_TARGET" for t in trials),
        "succeeded": len(trials) - len(failed),
        "failed": len(failed),
        "failures": [{"trial": t["trial"], "error": t["error"]} for t in failed],
        # The whole spec, so that `confirm`, `best` and `train` rebuild the sweep.
        "spec": dataclasses.asdict(spec),
    }


def best_checkpoint(result, metric: str):
    """The trial's kept checkpoint with the highest `metric` and the result it
    was saved with; (None, {}) when it kept none with that score."""
    scored = [(c, m) for c, m in result.best_checkpoints
              if selection.finite(m.get(metric)) is not None]
    if not scored:
        return None, {}
    return max(scored, key=lambda pair: pair[1][metric])


def error_line(text: str) -> str:
    """The line of a (Ray-wrapped) traceback that says what went wrong."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    messages = [line for line in lines if re.match(r"^[\w.]*(Error|Exception): \S", line)]
    return (messages or lines or ["unknown error"])[-1][:500]


def write_summary(summary: dict[str, Any], storage, sweep: str) -> None:
    """Writes <sweep>/summary.json; a re-run under the same name keeps the earlier one."""
    name = f"{sweep}/summary.json"
    if storage.exists(name):
        stamp = storage.modified(name).strftime("%Y%m%d-%H%M%S")
        storage.move(name, f"{sweep}/summary-{stamp}.json")
    storage.write_text(name, json.dumps(summary, indent=2, default=str))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def aligned(header: list[str], rows: list[list[str]], right: Collection[int] = ()) -> list[str]:
    """A table as lines: columns two spaces apart, the header (a cell may hold
    two lines, "env\nsteps") over a rule; the columns numbered in `right`
    right-aligned."""
    heads = [h.split("\n") for h in header]
    height = max(map(len, heads), default=1)
    heads = [[""] * (height - len(h)) + h for h in heads]
    widths = [max(len(c) for c in [*heads[i], *(r[i] for r in rows)])
              for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return ([line([h[k] for h in heads]) for k in range(height)]
            + [line(["-" * w for w in widths])] + [line(r) for r in rows])


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def machine(trial: dict[str, Any]) -> str:
    """The kind of machine a trial ran on: CPU model and GPU."""
    if not trial.get("cpu"):
        return "-"  # no result: failed before its first
    return f"{trial['cpu']}, GPU {trial.get('gpu') or 'none'}"


def format_summary(summary: dict[str, Any]) -> str:
    trials = summary["trials"]
    params = list(trials[0]["params"]) if trials else []
    # The machine is a column only where trials ran on different kinds.
    machines = {machine(t) for t in trials if t.get("cpu")}
    by_machine = len(machines) > 1
    header = ["trial", "status", "eval score", "train score", "env steps", "cpu s", "gpu s",
              *["machine"] * by_machine, "seed", *params]
    rows = [[t["trial"], t["status"], _fmt(t["eval_score"]), _fmt(t["score"]),
             str(t["env_steps"]), _seconds(t.get("cpu_seconds")), _seconds(t.get("gpu_seconds")),
             *[machine(t)] * by_machine, _fmt(t["seed"]),
             *[_fmt(t["params"].get(p)) for p in params]]
            for t in sorted(trials, key=lambda t: -(t["selected_score"]
                                                    if t["selected_score"] is not None
                                                    else -math.inf))]
    lines = [f"Sweep {summary['sweep']}: {summary['algo']} on {summary['env']} "
             f"({summary['profile']}), {len(trials)} trials, {summary['failed']} failed",
             f"Chosen by {summary['metric']}, at each trial's last report",
             *aligned(header, rows)]
    if len(machines) == 1:
        lines.append(f"Machine: {next(iter(machines))}")
    best = summary["best"]
    if best:
        chosen = "eval score" if summary.get("select") == "eval" else "train score"
        lines += ["", f"Best trial: {best['trial']}  {chosen} {_fmt(best['selected_score'])}"
                      f"  (seed {best['seed']})",
                  "  params: " + ", ".join(f"{k}={_fmt(v)}" for k, v in best["params"].items()),
                  f"  checkpoint: {best['checkpoint']}  ({chosen} "
                  f"{_fmt(best['checkpoint_score'])} at {best['checkpoint_env_steps']} env steps)"]
    else:
        lines += ["", "No trial may be called best: none finished with a score and a "
                      "checkpoint (FAILED and DIVERGED trials never are)."]
    for failure in summary["failures"]:
        lines.append(f"FAILED {failure['trial']}: {failure['error']}")
    for t in trials:
        if t["status"] == "DIVERGED":
            lines.append(f"DIVERGED {t['trial']}: non-finite {t['diverged']} by "
                         f"{t['env_steps']} env steps")
    lines += [f"Summary: {summary['storage']}/summary.json",  # a URI perhaps: no Path
              mlflow_line(summary["mlflow"])]
    return "\n".join(lines)


def mlflow_line(mlflow: dict[str, Any]) -> str:
    """Where the sweep's runs are: the runs list itself, not the experiment's
    overview, opened on the sweep's trials where its view was saved."""
    from tune_rl.tracking import LOCAL_UI, runs_url

    uri, experiment_id = mlflow["tracking_uri"], mlflow.get("experiment_id")
    line = f"MLflow: {uri} experiment {mlflow['experiment']!r}"
    if experiment_id is None:
        return line
    view = mlflow.get("view")
    if uri.startswith("sqlite:"):
        return f"{line}: make mlflow-ui, then {runs_url(LOCAL_UI, experiment_id, view)}"
    return f"{line}: {runs_url(uri, experiment_id, view)}"


def optuna_figures(space: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Optuna's own plots of the sweep, as matplotlib figures by name; a plot
    Optuna cannot make from the trials is left out, and stderr says why."""
    figures, left_out = study_figures(rebuilt_study(space, trials))
    for name, why in left_out.items():
        print(f"tune-rl: Optuna's {name} plot is left out: {why}", file=sys.stderr)
    return figures


def rebuilt_study(space: dict[str, Any], trials: list[dict[str, Any]]):
    """The sweep's trials as an Optuna study: each trial's selected score at
    its last report, what Optuna was told.

    Built with Optuna's public API, rather than read out of OptunaSearch's
    private state; the distributions come from OptunaSearch's own conversion.
    """
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = OptunaSearch.convert_search_space(space)
    study = optuna.create_study(direction="maximize")
    for trial in trials:
        if trial["selected_score"] is None:
            continue
        params = {k: v for k, v in trial["params"].items() if k in distributions}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: distributions[k] for k in params},
            value=trial["selected_score"]))
    return study


OPTUNA_PLOTS = ("optimization_history", "param_importances", "parallel_coordinate", "slice")


def study_figures(study, names: Collection[str] = OPTUNA_PLOTS
                  ) -> tuple[dict[str, Any], dict[str, str]]:
    """Optuna's matplotlib plots `names` of `study`: the figures by name, and
    for each plot Optuna could not make, why."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as plots

    figures, left_out = {}, {}
    for name in names:
        try:
            with warnings.catch_warnings():  # "experimental" notices, axis-limit notes
                warnings.simplefilter("ignore")
                axes = getattr(plots, f"plot_{name}")(study)
        # What Optuna raises when the trials cannot make the plot (importances
        # need 2+ trials with different scores).
        except (ValueError, RuntimeError) as err:
            left_out[name] = str(err)
            continue
        first = axes.flat[0] if hasattr(axes, "flat") else axes
        figures[name] = first.figure
    return figures, left_out


def lineage_csv(pbt_log: str, trials: list[dict[str, Any]]) -> str:
    """PBT's log of exploits (one JSON list per line: target trial, donor
    trial, their iterations, old and new config) as a CSV, one row per
    exploit, with only the values that changed. PBT names trials by their
    index ("3_lr=..."), the summary by name ("PPO_6f4fa_00003")."""
    names = {int(t["trial"].rsplit("_", 1)[-1]): t["trial"] for t in trials
             if t["trial"].rsplit("_", 1)[-1].isdigit()}

    def name(tag: str) -> str:
        index = tag.split("_", 1)[0]
        return names.get(int(index), tag) if index.isdigit() else tag

    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["trial", "copied_from", "trial_iteration", "donor_iteration", "changes"])
    for line in pbt_log.splitlines():
        if not line.strip():
            continue
        target, donor, target_iter, donor_iter, old, new = json.loads(line)
        changes = "; ".join(f"{k}: {_fmt(old.get(k))} -> {_fmt(v)}" for k, v in new.items()
                            if old.get(k) != v)
        writer.writerow([name(target), name(donor), target_iter, donor_iter, changes])
    return out.getvalue()
