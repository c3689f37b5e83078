"""`tune-rl compare` (`make sweep ALGO=all`): one sweep per algorithm at the
same profile and budget, then a leaderboard of what each found.

Each algorithm's sweep is an ordinary sweep named `<name>-<algo>`, with its
own folder, MLflow experiment and summary, so everything a sweep gives
(confirm, best, train, evaluate) works on it. The comparison only reads their
summaries: a sweep that finished is read, one left unfinished is resumed, a
new one is run; an algorithm whose sweep cannot plan or fails is a row with
its error, and the others go on (`--resume` tries it again). The leaderboard is written beside the
sweeps (`<name>/leaderboard.{json,md,csv,png}`) and logged as one MLflow run
in the experiment `<env>-leaderboard`.
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

from tune_rl.errors import UsageError
from tune_rl.presets import PRESETS

LEADERBOARD = "leaderboard"
COLUMNS = ("rank", "algo", "status", "best_score", "selected_by", "confirmed_mean",
           "best_train_score", "env_steps", "wall_s", "cpu_seconds", "gpu_seconds",
           "trials", "sweep", "params", "error")


def algorithms(choice: str) -> list[str]:
    """`all`, or a comma-separated list of presets, in the order given."""
    if choice == "all":
        return list(PRESETS)
    algos = [a.strip() for a in choice.split(",") if a.strip()]
    unknown = [a for a in algos if a not in PRESETS]
    if unknown or not algos:
        raise UsageError(f"--algos: unknown algorithm {', '.join(unknown) or '(none)'}; "
                         f"expected all or a comma-separated list of {', '.join(PRESETS)}")
    return algos


def run_comparison(name: str, algos: list[str], load, resume: bool = False) -> dict[str, Any]:
    """Runs (or reads, or resumes) each algorithm's sweep, then the leaderboard.

    `load(algo, sweep_name)` returns the SweepSpec of one algorithm's sweep:
    the same profile and overrides for all.
    """
    from tune_rl.plan import plan_sweep, sweep_state
    from tune_rl.runner import run_sweep

    specs = {algo: load(algo, f"{name}-{algo}") for algo in algos}
    storage = next(iter(specs.values())).storage
    state_name = f"{name}/{LEADERBOARD}_state.json"
    if storage.exists(state_name) and not resume:
        raise UsageError(f"comparison {name!r} exists in {storage.location(name)}: add "
                         "--resume to continue it, or pass a new --name")
    state = json.loads(storage.read_text(state_name)) if storage.exists(state_name) else {}
    rows = []
    for algo, spec in specs.items():
        done = state.get(algo, {})
        status = sweep_state(spec)
        if status == "finished":  # an error before is tried again: its cause may be gone
            rows.append(_row(algo, spec, done))
            continue
        done.pop("error", None)
        print(f"\n== {algo}: sweep {spec.name} ({'resumed' if status == 'unfinished' else 'new'})",
              flush=True)
        started = time.perf_counter()
        try:
            summary = run_sweep(plan_sweep(spec, resume=status == "unfinished"),
                                resume=status == "unfinished")
        except UsageError as err:  # cannot plan: a row, not a crash
            done = {"error": str(err)}
        except Exception as err:  # noqa: BLE001 - one algorithm's failure is its row
            done = {"error": f"{type(err).__name__}: {err}"[:500]}
        else:
            if summary.get("interrupted"):
                state[algo] = {"wall_s": done.get("wall_s", 0) + time.perf_counter() - started}
                storage.write_text(state_name, json.dumps(state, indent=2))
                return {"interrupted": True, "name": name}
            done = {"wall_s": round(done.get("wall_s", 0) + time.perf_counter() - started, 1)}
        state[algo] = done
        storage.write_text(state_name, json.dumps(state, indent=2))
        rows.append(_row(algo, spec, done))
    first = next(iter(specs.values()))
    board = leaderboard(name, rows, first)
    files = leaderboard_files(board)
    for file_name, data in files.items():
        storage.write_bytes(f"{name}/{file_name}", data)
    board["files"] = [storage.location(f"{name}/{f}") for f in files]
    board["mlflow_run_id"] = log_leaderboard(board, files, first.tracking_uri)
    return board


def _row(algo: str, spec, done: dict[str, Any]) -> dict[str, Any]:
    row = {"algo": algo, "sweep": spec.name, "wall_s": done.get("wall_s"),
           "error": done.get("error")}
    if row["error"] or not spec.storage.exists(f"{spec.name}/summary.json"):
        return {**row, "status": "ERROR", "error": row["error"] or "no summary"}
    summary = json.loads(spec.storage.read_text(f"{spec.name}/summary.json"))
    trials, best = summary["trials"], summary.get("best") or {}
    confirmation = summary.get("confirmation") or {}
    if spec.storage.exists(f"{spec.name}/confirmation.json"):
        confirmation = json.loads(spec.storage.read_text(f"{spec.name}/confirmation.json"))
    scores = [t["score"] for t in trials if t.get("score") is not None]
    return {
        **row,
        "status": "OK" if best else ("FAILED" if not summary["succeeded"] else "NO_BEST"),
        "best_score": best.get("selected_score"),
        "selected_by": summary.get("select"),
        "confirmed_mean": (confirmation.get("winner") or {}).get("mean"),
        "best_train_score": max(scores) if scores else None,
        "env_steps": sum(t.get("env_steps") or 0 for t in trials),
        "cpu_seconds": round(sum(t.get("cpu_seconds") or 0 for t in trials), 1),
        "gpu_seconds": round(sum(t.get("gpu_seconds") or 0 for t in trials), 1),
        "trials": len(trials),
        "params": best.get("params"),
        "error": row["error"] or ("; ".join(f["error"] for f in summary.get("failures", []))[:500]
                                  or None),
    }


def leaderboard(name: str, rows: list[dict[str, Any]], spec) -> dict[str, Any]:
    """Rows ranked by the best trial's selected score (the confirmed mean
    where a confirmation ran is shown beside it, not mixed into the rank)."""
    ranked = sorted(rows, key=lambda r: (r.get("best_score") is None,
                                         -(r.get("best_score") or 0.0)))
    for rank, row in enumerate(ranked, 1):
        row["rank"] = rank if row.get("best_score") is not None else None
    return {"name": name, "env": spec.env, "profile": spec.profile,
            "max_env_steps_per_trial": spec.max_env_steps, "trials_per_sweep": spec.trials,
            "select": spec.select, "rows": ranked}


def format_leaderboard(board: dict[str, Any]) -> str:
    from tune_rl.report import aligned

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    header = ["#", "algo", "status", f"best\n{board['select']}", "confirmed\nmean",
              "best\ntrain", "env\nsteps", "wall\ns", "cpu\ns"]
    rows = [[cell(r.get(k)) for k in ("rank", "algo", "status", "best_score", "confirmed_mean",
                                      "best_train_score", "env_steps", "wall_s", "cpu_seconds")]
            for r in board["rows"]]
    lines = [f"Leaderboard {board['name']}: {board['env']}, profile {board['profile']}, "
             f"{board['trials_per_sweep']} trials x {board['max_env_steps_per_trial']:,} env "
             "steps per algorithm", *aligned(header, rows, right=range(3, 9))]
    errors = [f"  {r['algo']}: {r['error']}" for r in board["rows"] if r.get("error")]
    return "\n".join(lines + (["Errors:", *errors] if errors else []))


def _csv(board: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in board["rows"]:
        writer.writerow({**row, "params": json.dumps(row.get("params"), default=str)})
    return out.getvalue()


def _plot(board: dict[str, Any]) -> bytes:
    """Best score per algorithm, and best score against CPU seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in board["rows"] if r.get("best_score") is not None]
    fig, (bars, cost) = plt.subplots(1, 2, figsize=(11, 4.5))
    names = [r["algo"] for r in scored][::-1]
    bars.barh(names, [r["best_score"] for r in scored][::-1], color="tab:blue")
    bars.set_xlabel(f"best trial's {board['select']} score")
    bars.set_title(f"{board['env']}: {board['trials_per_sweep']} trials x "
                   f"{board['max_env_steps_per_trial']:,} env steps each")
    for row in scored:
        cost.scatter(row.get("cpu_seconds") or 0, row["best_score"])
        cost.annotate(row["algo"], (row.get("cpu_seconds") or 0, row["best_score"]),
                      fontsize=8, xytext=(3, 3), textcoords="offset points")
    cost.set_xlabel("CPU seconds of the whole sweep")
    cost.set_ylabel("best score")
    cost.set_title("score against cost")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return out.getvalue()


def leaderboard_files(board: dict[str, Any]) -> dict[str, bytes]:
    return {f"{LEADERBOARD}.json": json.dumps(board, indent=2, default=str).encode(),
            f"{LEADERBOARD}.md": (format_leaderboard(board) + "\n").encode(),
            f"{LEADERBOARD}.csv": _csv(board).encode(),
            f"{LEADERBOARD}.png": _plot(board)}


def log_leaderboard(board: dict[str, Any], files: dict[str, bytes], tracking_uri: str) -> str:
    """One MLflow run per comparison, in `<env>-leaderboard`: each
    algorithm's best score as a metric, the table and plot as artifacts."""
    import tempfile
    from pathlib import Path

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from tune_rl.tracking import artifact_location

    client = MlflowClient(tracking_uri)
    experiment = f"{board['env']}-{LEADERBOARD}"
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(
        experiment, artifact_location=artifact_location(tracking_uri))
    client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "custom_model_development")
    run = client.create_run(experiment_id, run_name=board["name"])
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, params=[
        Param("profile", str(board["profile"])), Param("select", str(board["select"])),
        Param("trials_per_sweep", str(board["trials_per_sweep"])),
        Param("max_env_steps_per_trial", str(board["max_env_steps_per_trial"]))],
        metrics=[Metric(f"best_score.{r['algo']}", float(r["best_score"]), now, 0)
                 for r in board["rows"] if r.get("best_score") is not None])
    with tempfile.TemporaryDirectory() as folder:
        for name, data in files.items():
            (Path(folder) / name).write_bytes(data)
        client.log_artifacts(run.info.run_id, folder)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def sweep_spec_loader(profile: str, overrides: dict[str, Any], algos: list[str]):
    """The spec of each algorithm's sweep: its own sweep file at `profile`,
    then the comparison's overrides. The budget is the same for all: the
    trials and env steps given, else the first algorithm's profile's."""
    from tune_rl.spec import load_spec

    first = load_spec(algos[0], None, profile, **overrides)
    budget = {"trials": first.trials, "max_env_steps": first.max_env_steps}
    overrides = {**overrides, **budget}

    def load(algo: str, sweep_name: str):
        return load_spec(algo, None, profile, **{**overrides, "name": sweep_name})

    return load
