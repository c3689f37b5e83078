"""`tune-rl report`: a finished sweep as one self-contained HTML file.

    tune-rl report cartpole-ppo -o report.html     # or: make report NAME=cartpole-ppo

One file that opens anywhere without a network: every image is a PNG (or the
winner's GIF) inside the page as a data: URI, the little CSS there is inline,
and there is no script. It holds the sweep's settings and the rule that chose
its winner; a table of its trials; their learning curves by env steps (the
top five bold, the others faint) with ASHA's rungs and where each early
stopped trial stopped; Optuna's optimisation history, parameter importances
and parallel coordinates of the sweep's study; the confirmation table when
the sweep was confirmed; and the winner playing, as a GIF, when one is given
(`--gif FILE`), recorded (`--with-gif`, evaluate's own GameRecorder), or
the last one `tune-rl evaluate --sweep <sweep> --gif` kept (`winner.gif`). The
file is also logged to the sweep's MLflow parent run as `report.html`.

Optuna 5.0's matplotlib plots do not refuse what they cannot say: with one
completed trial, or trials that all scored the same, `plot_param_importances`
draws every parameter at an equal share (get_param_importances returns
{'lr': 0.5, 'g': 0.5}; measured), and with none it draws empty axes. So the
report checks first and says why in a sentence instead.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from tune_rl import selection
from tune_rl.errors import UsageError
from tune_rl.search import POPULATION, SCHEDULERS, SEARCHERS
from tune_rl.storage import Storage
from tune_rl.trainable import ENV_STEPS, EVAL_SCORE, SCORE

TOP = 5  # trials drawn bold in the curves
GIF_SECONDS = 10.0  # of play recorded by --with-gif: a whole CartPole game, 150 Breakout images
OPTUNA_PLOTS = {"optimization_history": "Optimisation history",
                "param_importances": "Parameter importances (fANOVA)",
                "parallel_coordinate": "Parallel coordinates"}

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left;
          vertical-align: top; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.best {{ background: #fff4cc; }}
img {{ max-width: 100%; display: block; margin: .5em 0; }}
.note {{ color: #666; }}
</style></head>
<body>
<h1>{title}</h1>
{body}
</body></html>
"""


def load_finished(name: str, storage_path: str) -> dict[str, Any]:
    """The sweep's summary; UsageError for a sweep that is unknown or unfinished."""
    from tune_rl.confirm import load_sweep

    storage = Storage(storage_path)
    if storage.exists(name) and not storage.exists(f"{name}/summary.json"):
        raise UsageError(f"sweep {name!r} in {storage_path} has not finished (no "
                         "summary.json): resume it with tune-rl sweep --name "
                         f"{name} --resume, then report")
    return load_sweep(name, storage_path)


def build_report(summary: dict[str, Any], storage: Storage,
                 gif: tuple[bytes, str] | None = None) -> str:
    """The HTML page; `gif` the winner's GIF and a caption for it."""
    curves = {t["trial"]: read_curve(storage, summary["sweep"], t["trial"])
              for t in summary["trials"]}
    sections = [settings_section(summary), trials_section(summary, curves),
                curves_section(summary, curves), optuna_section(summary, storage),
                confirmation_section(storage, summary["sweep"])]
    if gif:
        data, caption = gif
        sections.append(f"<h2>The winner playing</h2><p>{text(caption)}</p>"
                        f'<img alt="the winner playing" src="{data_uri(data, "gif")}">')
    return PAGE.format(title=text(f"Sweep {summary['sweep']}"), body="\n".join(sections))


def read_curve(storage: Storage, sweep: str, trial: str) -> list[dict[str, float | None]]:
    """A trial's results from Tune's result.json, one a line: env steps, the
    training score, the evaluation (None between evaluations) and wall seconds.
    Read through Storage, so a sweep on cloud storage reads the same."""
    name = f"{sweep}/{trial}/result.json"
    if not storage.exists(name):
        return []  # failed before its first result
    points = []
    for line in storage.read_text(name).splitlines():
        if line.strip():
            result = json.loads(line)  # NaN is valid here: Python's json reads it
            points.append({"env_steps": result.get(ENV_STEPS),
                           "score": selection.finite(result.get(SCORE)),
                           "eval_score": selection.finite(result.get(EVAL_SCORE)),
                           "seconds": result.get("time_total_s")})
    return points


def settings_section(summary: dict[str, Any]) -> str:
    spec = summary["spec"]
    best = summary["best"]
    rows = [
        ("Algorithm, env", f"{summary['algo']} on {summary['env']}"),
        ("Profile", summary["profile"]),
        ("Budget", f"{spec['trials']} trials x {spec['max_env_steps']:,} env steps, a "
                   f"result every >= {spec['min_env_steps_per_iteration']:,}"),
        ("Search", "one fixed configuration" if spec.get("params")
         else SEARCHERS.get(spec["search"], spec["search"])),
        ("Scheduler", scheduler(spec)),
        ("Seed", spec["seed"]),
        ("Winner chosen by", f"{summary['metric']}, at each trial's last report"),
        ("Best trial", f"{best['trial']}, {best['selected_score']:.4g} (selected by "
                       f"{best['selected_by']}); checkpoint {best['checkpoint']}"
         if best else "none: no trial finished with a score and a checkpoint"),
        ("Trials", f"{summary['succeeded']} succeeded, {summary['failed']} failed"),
        ("MLflow", f"{summary['mlflow']['tracking_uri']}, experiment "
                   f"{summary['mlflow']['experiment']!r}, run "
                   f"{summary['mlflow'].get('parent_run_id')}"),
    ]
    return "<h2>Settings</h2>" + table(["", ""], [[k, v] for k, v in rows], head=False)


def scheduler(spec: dict[str, Any]) -> str:
    if spec["search"] in POPULATION:
        return (f"{SEARCHERS[spec['search']]}, perturbing every "
                f"{spec['perturbation_env_steps']:,} env steps")
    rungs = asha_rungs(spec)
    if rungs:
        return (f"ASHA: grace {spec['grace_env_steps']:,} env steps, reduction factor "
                f"{spec['reduction_factor']}, rungs at " + ", ".join(f"{r:,}" for r in rungs))
    return SCHEDULERS["none"]


def asha_rungs(spec: dict[str, Any]) -> list[int]:
    """Where ASHA compared trials, in env steps; none for PBT, PB2 or no scheduler."""
    if (spec["early_stopping"] != "asha" or spec["search"] in POPULATION
            or spec.get("params") or spec["grace_env_steps"] <= 0):
        return []
    return selection.asha_milestones(spec["grace_env_steps"], spec["max_env_steps"],
                                     spec["reduction_factor"])


def by_score(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best selected score first; trials without one last."""
    return sorted(trials, key=lambda t: -(t["selected_score"] if t["selected_score"]
                                          is not None else math.inf))


def trials_section(summary: dict[str, Any], curves: dict[str, list]) -> str:
    from tune_rl.progress import SHORT_NAMES, short

    best = (summary["best"] or {}).get("trial")
    header = ["trial", "status", "selected score", "eval score", "train score", "env steps",
              "wall s", "CPU s", "GPU s", "seed", "params"]
    rows, classes = [], []
    for t in by_score(summary["trials"]):
        seconds = next((p["seconds"] for p in reversed(curves[t["trial"]])
                        if p["seconds"] is not None), None)
        params = ", ".join(f"{SHORT_NAMES.get(k, k)}={short(v)}" for k, v in t["params"].items())
        rows.append([t["trial"], t["status"], num(t["selected_score"]), num(t["eval_score"]),
                     num(t["score"]), f"{t['env_steps']:,}", num(seconds, ".0f"),
                     num(t.get("cpu_seconds"), ".0f"), num(t.get("gpu_seconds"), ".0f"),
                     t["seed"], params])
        classes.append("best" if t["trial"] == best else "")
    return (f"<h2>Trials</h2><p>Best first by {text(summary['metric'])}; the best "
            "trial highlighted.</p>" + table(header, rows, classes, numeric=range(2, 10),
                                             table_id="trials"))


def text(value: Any) -> str:
    """`value` as HTML text."""
    return html.escape(str(value), quote=False)


def num(value: Any, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def table(header: list[str], rows: list[list[Any]], classes: list[str] | None = None,
          numeric=(), head: bool = True, table_id: str = "") -> str:
    numeric = set(numeric)
    lines = [f'<table id="{table_id}">' if table_id else "<table>"]
    if head:
        lines.append("<tr>" + "".join(f"<th>{text(h)}</th>" for h in header) + "</tr>")
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        lines.append(f"<tr{cls}>" + "".join(
            f'<td{" class=n" if j in numeric else ""}>{text(c)}</td>'
            for j, c in enumerate(row)) + "</tr>")
    return "\n".join([*lines, "</table>"])


def curves_section(summary: dict[str, Any], curves: dict[str, list]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = [t["trial"] for t in by_score(summary["trials"])[:TOP]
           if t["selected_score"] is not None]
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    for ax, key, title in ((axes[0], "score", "Training score (last 100 games, exploring)"),
                           (axes[1], "eval_score", "Evaluation score (greedy, new seeds)")):
        rungs = asha_rungs(summary["spec"])
        for k, rung in enumerate(rungs):
            ax.axvline(rung, color="#999", linestyle=":", label="ASHA rung" if k == 0 else None)
        for t in summary["trials"]:
            points = [(p["env_steps"], p[key]) for p in curves[t["trial"]] if p[key] is not None]
            if not points:
                continue
            x, y = zip(*points, strict=True)
            bold = t["trial"] in top
            line, = ax.plot(x, y, marker="o" if key == "eval_score" else ".", markersize=3,
                            linewidth=2 if bold else 0.8, alpha=1 if bold else 0.3,
                            color=None if bold else "#777",
                            label=t["trial"] if bold else None, zorder=3 if bold else 2)
            if t["status"] == "STOPPED_EARLY":
                ax.plot(x[-1], y[-1], marker="x", markersize=9, color=line.get_color(),
                        zorder=4)
        if any(t["status"] == "STOPPED_EARLY" for t in summary["trials"]):
            ax.plot([], [], "kx", label="stopped early")
        ax.set(title=title, xlabel="env steps", ylabel="score")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="best")
    figure.tight_layout()
    return (f"<h2>Learning curves</h2><p>The top {len(top)} trials by selected score bold, "
            "the others faint; x: where a trial stopped early"
            + ("; dotted: ASHA's rungs" if asha_rungs(summary["spec"]) else "")
            + f".</p><img alt=\"learning curves\" src=\"{figure_uri(figure)}\">")


def optuna_section(summary: dict[str, Any], storage: Storage) -> str:
    """Optuna's own plots of the sweep's study, or a sentence saying why not."""
    from tune_rl.report import study_figures

    study, source = sweep_study(summary, storage)
    if study is None:
        return f"<h2>Optuna</h2><p class=note>{text(source)}</p>"
    import optuna

    done = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
    why_not = {}
    if not done:
        why_not = dict.fromkeys(OPTUNA_PLOTS, "no trial of the study completed")
    elif len({t.value for t in done}) < 2:
        why_not["param_importances"] = (
            f"{len(done)} completed trial(s), all with the score {done[0].value:.4g}: "
            "importances need at least 2 with different scores")
    figures, left_out = study_figures(study, [n for n in OPTUNA_PLOTS if n not in why_not])
    why_not.update(left_out)
    parts = [f"<h2>Optuna</h2><p>{text(source)}, {len(done)} completed trials.</p>"]
    for name, title in OPTUNA_PLOTS.items():
        parts.append(f"<h3>{title}</h3>")
        if name in figures:
            figures[name].set_size_inches(13 if name == "parallel_coordinate" else 11, 5)
            parts.append(f'<img alt="{title}" src="{figure_uri(figures[name])}">')
        else:
            parts.append(f"<p class=note>Not drawn: {text(why_not[name])}.</p>")
    return "\n".join(parts)


def sweep_study(summary: dict[str, Any], storage: Storage):
    """The sweep's Optuna study and where it came from; (None, why) when it has none.

    The study the sweep kept (study.py: a journal beside its folder, or its
    optuna_storage); else, on cloud storage without one, rebuilt from the
    summary as the sweep's end does for MLflow's plots."""
    import optuna

    from tune_rl.study import default_journal, is_url, open_storage, shown

    spec, name = summary["spec"], summary["sweep"]
    if spec["search"] in POPULATION:
        return None, ("PBT and PB2 have no Optuna study: Tune's own generator draws their "
                      "population and the scheduler changes it as it trains (lineage.csv in "
                      "MLflow)")
    if spec.get("params"):
        return None, "One fixed configuration: nothing was searched"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    location = spec.get("optuna_storage") or default_journal(storage, name)
    if location and (is_url(location) or os.path.isfile(location)):
        try:
            study = optuna.load_study(study_name=name, storage=open_storage(location))
            return study, f"The sweep's study {name!r} in {shown(location)}"
        except Exception as err:  # a missing study or an unreachable RDB: rebuilt below
            reason = f"its study in {shown(location)} could not be read ({err})"
    else:
        reason = "the sweep kept no study where it can be read"
    from tune_rl.confirm import sweep_spec
    from tune_rl.plan import resolve_plan
    from tune_rl.report import rebuilt_study

    try:
        space = resolve_plan(sweep_spec(summary)).space
        return (rebuilt_study(space, summary["trials"]),
                f"Rebuilt from summary.json ({reason}): each trial's final score only")
    except (UsageError, ValueError) as err:
        return None, f"No study: {reason}, and it cannot be rebuilt ({err})"


def confirmation_section(storage: Storage, sweep: str) -> str:
    from tune_rl.confirm import CONFIRMATION, ranking_verdict

    if not storage.exists(f"{sweep}/{CONFIRMATION}"):
        return ("<h2>Confirmation</h2><p class=note>Not confirmed: tune-rl confirm "
                f"{text(sweep)} trains its top configurations again on new seeds.</p>")
    confirmation = json.loads(storage.read_text(f"{sweep}/{CONFIRMATION}"))
    header = ["sweep rank", "trial", "sweep score", "mean", "std", "95% interval", "runs",
              "confirmed rank"]
    rows, classes = [], []
    for r in confirmation["rows"]:
        low, high = r["interval"]
        rows.append([r["sweep_rank"], r["trial"], num(r["sweep_score"]), num(r["mean"]),
                     num(r["std"]), interval(low, high),
                     f"{r['runs'] - r['failed']}/{r['runs']}", r.get("confirmed_rank", "-")])
        classes.append("best" if r.get("confirmed_rank") == 1 else "")
    return (f"<h2>Confirmation</h2><p>{text(confirmation['sweep'])}'s top "
            f"{confirmation['top']} configurations trained again on "
            f"{confirmation.get('seeds', '?')} new seeds each, "
            f"{confirmation.get('env_steps', '?')} env steps; final evaluation score.</p>"
            + table(header, rows, classes, numeric=[0, 2, 3, 4])
            + f"<p>{text(ranking_verdict(confirmation))}</p>")


def interval(low: float, high: float) -> str:
    return f"[{num(selection.finite(low))}, {num(selection.finite(high))}]"


def figure_uri(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return data_uri(buffer.getvalue(), "png")


def data_uri(data: bytes, kind: str) -> str:
    return f"data:image/{kind};base64,{base64.b64encode(data).decode()}"


WINNER_GIF = "winner.gif"  # beside the sweep's summary: `tune-rl evaluate --sweep --gif`'s


def keep_winner_gif(storage, sweep: str, gif: Path, caption: str) -> None:
    """The GIF `tune-rl evaluate --sweep <sweep> --gif` wrote, kept in the
    sweep's folder (with its caption) for the sweep's report."""
    storage.write_bytes(f"{sweep}/{WINNER_GIF}", gif.read_bytes())
    storage.write_text(f"{sweep}/{WINNER_GIF}.txt", caption)


def kept_winner_gif(storage, sweep: str) -> tuple[bytes, str] | None:
    if not storage.exists(f"{sweep}/{WINNER_GIF}"):
        return None
    with storage.fs.open_input_stream(storage.path(f"{sweep}/{WINNER_GIF}")) as f:
        data = f.read()
    caption_file = f"{sweep}/{WINNER_GIF}.txt"
    return data, (storage.read_text(caption_file) if storage.exists(caption_file) else
                  "recorded by tune-rl evaluate --sweep")


def record_gif(sweep: str, storage_path: str, tracking_uri: str | None, episodes: int,
               seconds: float = GIF_SECONDS) -> tuple[bytes, str]:
    """The sweep's best (the confirmed winner's when confirmed) playing
    `episodes` greedy games as `tune-rl evaluate --gif` plays them; the
    first game's GIF and a caption with the games' scores."""
    from tune_rl.saved_policy import evaluate_saved, find_policy
    from tune_rl.watch import GameRecorder

    with find_policy(None, sweep, storage_path, tracking_uri) as policy:
        recorder = GameRecorder(0, max_seconds=seconds)
        result = evaluate_saved(policy, episodes=episodes, seed=0, watch=recorder)
        source = policy.source
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "winner.gif"
        recorder.write_gif(path)
        data = path.read_bytes()
    scores = ", ".join(f"{s:g}" for s in result.scores)
    return data, (f"{source}: the first {recorder.clock[-1] - recorder.clock[0]:.1f} s of "
                  f"game 1 of {episodes} greedy games (scores {scores}; mean "
                  f"{result.mean:.4g}), recorded by tune-rl report --with-gif")


def log_report(path: Path, summary: dict[str, Any], tracking_uri: str | None = None) -> str:
    """The file on the sweep's MLflow parent run as `report.html`; says where, or why not."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    run_id = summary["mlflow"].get("parent_run_id")
    uri = tracking_uri or summary["mlflow"]["tracking_uri"]
    if not run_id:
        return "MLflow: not logged: the summary names no parent run"
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return f"MLflow: not logged: no store at {uri} (pass --tracking-uri)"
    try:
        with tempfile.TemporaryDirectory() as folder:
            named = Path(folder) / "report.html"
            named.write_bytes(path.read_bytes())
            MlflowClient(uri).log_artifact(run_id, str(named))
    except MlflowException as err:
        return f"MLflow: not logged: {err.message.splitlines()[0]}"
    return f"MLflow: report.html logged to run {run_id} ({uri})"
