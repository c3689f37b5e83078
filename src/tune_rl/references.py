"""Reference runs: a published configuration per algorithm family, run as a
one-trial sweep and drawn beside its published learning curve.

A reference answers "does this preset learn Breakout at all?" before anyone
tunes it: the same algorithm with a configuration that is known to learn, on
our env, tracked in MLflow like any trial, its curve next to the published
one at the same env steps. Every value carries its source, as data.

Values that are a point of the algorithm's search space (search_spaces/) are
the trial's parameters, so the reference is one trial of its own sweep and
`tests/test_reference.py` checks that the space contains it; the rest
(batch shape, discount, schedules over the published run's length) are fixed
`.training()` values.

Env steps are agent steps (4 frames each), the unit of CleanRL's
`global_step`, Dopamine's iterations (250,000 agent steps) and tune-rl's
budgets.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tune_rl.errors import UsageError, unknown
from tune_rl.presets import ATARI_DQN

CLEANRL = "vwxyzjn/cleanrl@fe8d8a03c41a7ef5b523e2e354bd01c363e786bb"
CLEANRL_PPO = f"{CLEANRL} cleanrl/ppo_atari.py"
DOPAMINE = "google/dopamine@5873f5494ee0c2d7c016d0ab2ad530354fec59d0"
DOPAMINE_RAINBOW = f"{DOPAMINE} dopamine/jax/agents/rainbow/configs/rainbow.gin"
DOPAMINE_DQN = f"{DOPAMINE} dopamine/jax/agents/dqn/configs/dqn.gin"
# Five seeds per agent, each value the mean training return of one iteration
# of 250,000 agent steps; placed here at the iteration's end.
DOPAMINE_DATA = ("google/dopamine@8842298e89cfe42c80ea71f63913017696785f0f "
                 "baselines/atari/data/breakout.json")
PPO_TOTAL_STEPS = 10_000_000  # ppo_atari.py Args.total_timesteps


@dataclass(frozen=True)
class PublishedPoint:
    env_steps: int
    score: float
    spread: float | None  # the published ± (std over seeds), where given
    note: str


@dataclass(frozen=True)
class PublishedCurve:
    label: str
    source: str
    protocol: str
    points: tuple[PublishedPoint, ...]

    def at(self, env_steps: int) -> PublishedPoint | None:
        return next((p for p in self.points if p.env_steps == env_steps), None)


@dataclass(frozen=True)
class Reference:
    """A published configuration mapped onto RLlib's builder API.

    Each dict maps a name to (value, source). `params` are the trial's
    parameters (points of the search space), `training` fixed `.training()`
    values, `sweep` SweepSpec fields (sampling shape), `env_config` the
    env's protocol options (envs.BREAKOUT_OPTIONS).
    """

    algo: str
    name: str
    params: dict[str, tuple[Any, str]]
    training: dict[str, tuple[Any, str]]
    sweep: dict[str, tuple[Any, str]]
    env_config: dict[str, tuple[Any, str]]
    # What the published code does that this mapping does not, and why.
    differences: tuple[str, ...]
    published: tuple[PublishedCurve, ...]
    measured: bool  # whether a reference run of it is committed (benchmarks/results)
    default_env_steps: int = 1_000_000
    sources: dict[str, str] = field(default_factory=dict)

    def values(self, part: str) -> dict[str, Any]:
        return {k: v for k, (v, _) in getattr(self, part).items()}

    def describe(self) -> dict[str, Any]:
        return {
            "reference": self.name,
            "algo": self.algo,
            **{part: {k: {"value": v, "source": s} for k, (v, s) in getattr(self, part).items()}
               for part in ("params", "training", "sweep", "env_config")},
            "differences": list(self.differences),
            "published": [{"label": c.label, "source": c.source, "protocol": c.protocol}
                          for c in self.published],
            "measured here": self.measured,
        }


# rl-baselines3-zoo's PPO on BreakoutNoFrameskip-v4 (one seed): its eight
# training envs' Monitor files, one row per whole game (score, frames). A game
# ending after F frames of its env ended at about 2F env steps of the run
# (8 envs in lockstep, 4 frames per step); each point is the mean score of
# the last 100 games ended by then, the `score` this run reports.
SB3_ZOO = "DLR-RM/rl-trained-agents@83f477ed1dcd634b5132ff8dce41e6987cf7e5e8"
SB3_ZOO_PPO = f"{SB3_ZOO} ppo/BreakoutNoFrameskip-v4_1/{{0..7}}.monitor.csv"
_SB3_ZOO_SCORES = (
    (50_000, 2.12), (100_000, 3.22), (150_000, 5.78), (200_000, 8.62), (250_000, 9.35),
    (300_000, 11.17), (350_000, 12.86), (400_000, 13.31), (450_000, 13.52), (500_000, 14.74),
    (550_000, 15.81), (600_000, 17.36), (650_000, 20.06), (700_000, 21.01), (750_000, 21.31),
    (800_000, 20.38), (850_000, 21.7), (900_000, 22.15), (950_000, 23.37), (1_000_000, 25.67),
    (1_500_000, 44.23), (2_000_000, 58.27), (3_000_000, 113.85), (5_000_000, 243.35),
    (10_000_000, 392.87))

CLEANRL_PPO_PUBLISHED = (
    PublishedCurve(
        "rl-baselines3-zoo PPO (SB3)", SB3_ZOO_PPO,
        "BreakoutNoFrameskip-v4 with SB3's AtariWrapper (no sticky actions, an episode "
        "ends at each lost life), whole-game scores; the zoo's config.yml beside them is "
        "CleanRL's configuration (8 x 128, 4 epochs, batch 256, lr and clip 2.5e-4 and 0.1 "
        "annealed linearly, entropy 0.01, vf 0.5) except that the clip is annealed too",
        tuple(PublishedPoint(step, score, None, "mean of the last 100 training games, 1 seed")
              for step, score in _SB3_ZOO_SCORES)),
    PublishedCurve(
        "CleanRL ppo_atari.py", f"{CLEANRL} docs/rl-algorithms/ppo.md",
        "BreakoutNoFrameskip-v4: no sticky actions, episode ends at each lost life "
        "(EpisodicLifeEnv), score of the whole game (RecordEpisodeStatistics)",
        (PublishedPoint(10_000_000, 414.66, 28.09,
                        "final, 3 seeds; the curve itself is published only as a picture"),)),
    PublishedCurve(
        "openai/baselines PPO2 (Huang et al. 2022)", f"{CLEANRL} docs/rl-algorithms/ppo.md",
        "the same as CleanRL's",
        (PublishedPoint(10_000_000, 406.57, 31.554, "final, 3 seeds"),)),
)

PPO_REFERENCE = Reference(
    algo="PPO",
    name="CleanRL ppo_atari.py",
    params={
        "lr_schedule": ("linear", f"{CLEANRL_PPO}: anneal_lr True (to 0 over total_timesteps)"),
        "clip_param": (0.1, f"{CLEANRL_PPO}: clip_coef 0.1"),
        "entropy_coeff": (0.01, f"{CLEANRL_PPO}: ent_coef 0.01"),
        "lambda_": (0.95, f"{CLEANRL_PPO}: gae_lambda 0.95"),
        "minibatch_size": (256, f"{CLEANRL_PPO}: batch 8 x 128 = 1024, num_minibatches 4"),
        "num_epochs": (4, f"{CLEANRL_PPO}: update_epochs 4"),
        "grad_clip": (0.5, f"{CLEANRL_PPO}: max_grad_norm 0.5 (global norm, RLlib's "
                           "default grad_clip_by)"),
        "conv_filters": ("nature", f"{CLEANRL_PPO}: Agent.network, Conv2d 32x8/4, 64x4/2, "
                                   "64x3/1"),
        "head_hiddens": ("512", f"{CLEANRL_PPO}: Agent.network, Linear(3136, 512) + ReLU"),
    },
    training={
        # Annealed over the published run's length, so that at every env step
        # this run learns at the published run's rate.
        "lr": ([[0, 2.5e-4], [PPO_TOTAL_STEPS, 0.0]],
               f"{CLEANRL_PPO}: learning_rate 2.5e-4, anneal_lr True, total_timesteps "
               "10,000,000"),
        "train_batch_size_per_learner": (1024, f"{CLEANRL_PPO}: num_envs 8 x num_steps 128"),
        "gamma": (0.99, f"{CLEANRL_PPO}: gamma 0.99"),
        # RLlib's value loss is (v - R)^2 (ppo_torch_learner.py: torch.pow(...,
        # 2.0)), CleanRL's 0.5 (v - R)^2 times vf_coef 0.5: the same weight is 0.25.
        "vf_loss_coeff": (0.25, f"{CLEANRL_PPO}: vf_coef 0.5 on 0.5 * (v - R)^2, i.e. "
                                "0.25 on RLlib's (v - R)^2"),
        "use_kl_loss": (False, f"{CLEANRL_PPO}: no KL penalty (target_kl None); RLlib's "
                               "default adds one (kl_coeff 0.2)"),
    },
    sweep={
        "envs_per_env_runner": (8, f"{CLEANRL_PPO}: num_envs 8"),
        "rollout_fragment_length": ("128", f"{CLEANRL_PPO}: num_steps 128"),
        "min_env_steps_per_iteration": (1024, "one rollout (8 x 128) per iteration"),
    },
    env_config={
        "repeat_action_probability": (0.0, "BreakoutNoFrameskip-v4 (CleanRL's env_id): no "
                                           "sticky actions"),
        "terminal_on_life_loss": (True, f"{CLEANRL_PPO}: EpisodicLifeEnv"),
        "noop_max": (30, f"{CLEANRL_PPO}: NoopResetEnv(noop_max=30)"),
    },
    differences=(
        "CleanRL shares one 512 layer between policy and value; RLlib's PPO module gives "
        "each head its own 512 layer (3,292,837 parameters against 1,686,693).",
        "CleanRL clips the value update to +-0.1 around the old value (clip_vloss); RLlib "
        "clips the value loss at vf_clip_param (10.0).",
        "CleanRL uses Adam eps 1e-5 and orthogonal initialisation; RLlib's learner "
        "builds torch's Adam with its default eps 1e-8 and its own initialisers.",
        "CleanRL normalises advantages per minibatch; RLlib's GAE connector once per batch.",
        "CleanRL's episodes are cut at 400,000 frames (v4); ours at 108,000.",
    ),
    published=CLEANRL_PPO_PUBLISHED,
    measured=True,
)


def _dopamine_curve(label: str, agent: str, means: tuple[float, ...]) -> PublishedCurve:
    return PublishedCurve(
        label, f"{DOPAMINE_DATA} (Agent {agent!r})",
        "Breakout v5 with sticky actions 0.25, whole games, 108,000 frames at most "
        "(tune-rl's own protocol)",
        tuple(PublishedPoint((i + 1) * 250_000, round(m, 2), None,
                             "mean of 5 seeds over the iteration's training games")
              for i, m in enumerate(means)))


# Means over the five seeds of breakout.json, iterations 0-7 (to 2M env steps).
DOPAMINE_RAINBOW_CURVE = _dopamine_curve(
    "Dopamine Rainbow", "Rainbow", (1.75, 4.52, 11.76, 15.57, 19.82, 24.08, 27.39, 32.35))
DOPAMINE_DQN_CURVE = _dopamine_curve(
    "Dopamine DQN (Adam, JAX)", "DQN (Adam + MSE in JAX)",
    (1.79, 6.52, 15.23, 18.86, 23.74, 27.84, 32.43, 38.33))

_DQN_NOT_MEASURED = (
    "Not measured here: RLlib's DQN family learns at about 18-45 env steps/s on 2 CPU "
    "cores (DESIGN.md), so Dopamine's first 1M steps take most of a day; it needs a GPU.",
)
# Dopamine's values the DQN presets already carry (presets.ATARI_DQN), reused.
_DOPAMINE_TRAINING = {k: ATARI_DQN[k] for k in (
    "epsilon", "num_steps_sampled_before_learning_starts", "adam_epsilon", "gamma",
    "train_batch_size", "training_intensity", "hiddens")}

RAINBOW_REFERENCE = Reference(
    algo="Rainbow_DQN",
    name="Dopamine rainbow.gin",
    params={
        "lr": (ATARI_DQN["lr"][0], f"{DOPAMINE_RAINBOW}: create_optimizer.learning_rate"),
        "n_step": (3, f"{DOPAMINE_RAINBOW}: update_horizon 3"),
        "num_atoms": (51, f"{DOPAMINE_RAINBOW}: num_atoms 51"),
        "target_network_update_freq": (8000, f"{DOPAMINE_RAINBOW}: target_update_period 8000"),
        "per_alpha": (0.5, "Dopamine's prioritized sampling: priorities sqrt(loss) (rainbow "
                           "agent), Hessel et al. 2018 alpha 0.5"),
        "per_beta": (0.5, "Dopamine's rainbow agent: loss weights 1/sqrt(probability), beta "
                          "0.5"),
        "conv_filters": ("nature", "Dopamine's Atari network: the Nature DQN stack"),
        "grad_clip": (None, "Dopamine clips no gradient"),
    },
    training={
        **_DOPAMINE_TRAINING,
        "v_min": (-10.0, f"{DOPAMINE_RAINBOW}: vmax 10 (vmin = -vmax)"),
        "v_max": (10.0, f"{DOPAMINE_RAINBOW}: vmax 10"),
        "noisy": (False, "Dopamine's Rainbow has no noisy nets (Castro et al. 2018)"),
        "dueling": (False, "Dopamine's Rainbow has no dueling head"),
        "double_q": (False, "Dopamine's Rainbow has no double Q-learning"),
        "tau": (1.0, "a hard target update every target_update_period"),
    },
    sweep={},
    env_config={
        "repeat_action_probability": (0.25, f"{DOPAMINE_RAINBOW}: sticky_actions True"),
    },
    differences=(
        "PER's beta anneals to 1 over the budget (replay.py); Dopamine keeps 0.5.",
        *_DQN_NOT_MEASURED,
    ),
    published=(DOPAMINE_RAINBOW_CURVE,),
    measured=False,
)

DQN_REFERENCE = Reference(
    algo="DQN",
    name="Dopamine dqn.gin",
    params={
        "lr": (ATARI_DQN["lr"][0], f"{DOPAMINE_DQN}: create_optimizer.learning_rate 6.25e-5"),
        "target_network_update_freq": (8000, f"{DOPAMINE_DQN}: target_update_period 8000"),
        "conv_filters": ("nature", "Dopamine's Atari network: the Nature DQN stack"),
        "grad_clip": (None, "Dopamine clips no gradient"),
    },
    training=_DOPAMINE_TRAINING,
    sweep={},
    env_config={
        "repeat_action_probability": (0.25, f"{DOPAMINE_DQN}: sticky_actions True"),
    },
    differences=(
        "RLlib's DQN loss is Huber; Dopamine's JAX DQN (the curve) uses MSE.",
        *_DQN_NOT_MEASURED,
    ),
    published=(DOPAMINE_DQN_CURVE,),
    measured=False,
)

REFERENCES: dict[str, Reference] = {r.algo: r for r in (PPO_REFERENCE, RAINBOW_REFERENCE,
                                                          DQN_REFERENCE)}


def get_reference(algo: str) -> Reference:
    if algo not in REFERENCES:
        raise unknown("algorithm with a reference", algo, REFERENCES)
    return REFERENCES[algo]


def reference_spec(reference: Reference, env_steps: int, name: str | None = None,
                   storage_path: str | None = None, tracking_uri: str | None = None,
                   seed: int | None = None, torch_threads: int = 2):
    """The one-trial sweep of a reference: its algorithm's sweep file, no
    search and no early stopping, the reference's sampling shape and env."""
    from tune_rl.spec import load_spec

    if env_steps <= 0:
        raise UsageError(f"--env-steps must be a positive integer, got {env_steps}")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    overrides = {
        "env": "breakout",
        "trials": 1,
        "max_concurrent": 1,
        "search": "random",
        "early_stopping": "none",
        "max_env_steps": env_steps,
        "grace_env_steps": env_steps,
        "name": name or f"reference-{reference.algo}-{stamp}",
        "experiment": f"breakout-{reference.algo}-reference",
        "storage_path": storage_path,
        "tracking_uri": tracking_uri,
        "seed": seed,
        "torch_threads": torch_threads,
        "training": reference.values("training"),
        "env_config": reference.values("env_config"),
        **reference.values("sweep"),
    }
    # The quick profile's schedule scale and batch (training) are not the reference's.
    return load_spec(reference.algo, profile="quick", schedule_scale=1.0, **overrides)


def reference_space(reference: Reference) -> dict[str, Any]:
    """The reference's parameters as a search space of one point each.

    OptunaSearch refuses a space of plain values ("no search space has been
    defined", Ray 2.60): each value is a one-element tune.choice.
    """
    from ray import tune

    return {name: tune.choice([value]) for name, value in reference.values("params").items()}


def plan_reference(reference: Reference, spec, address: str | None = None):
    from tune_rl.plan import plan_sweep

    return plan_sweep(spec, address=address, space=reference_space(reference))


# ---- the curve ---------------------------------------------------------------

CURVE_COLUMNS = ("env_steps", "time_s", "score", "games_ended", "iteration_score",
                 "eval_score")


def read_curve(trial_path: str) -> list[dict[str, Any]]:
    """One row per iteration from the trial's result.json (Tune writes it locally)."""
    from tune_rl.envs import SCORE_KEY
    from tune_rl.trainable import ENV_STEPS, EVAL_SCORE, GAMES_ENDED, SCORE

    rows = []
    for line in (Path(trial_path) / "result.json").read_text().splitlines():
        if not line.strip():
            continue
        result = json.loads(line)
        runners = result.get("env_runners", {})
        rows.append({
            "env_steps": int(result.get(ENV_STEPS, 0)),
            "time_s": round(float(result.get("time_total_s", 0.0)), 1),
            "score": _number(result.get(SCORE)),
            "games_ended": int(runners.get(GAMES_ENDED, 0) or 0),
            "iteration_score": _number(runners.get(SCORE_KEY)),
            "eval_score": _number(result.get(EVAL_SCORE)),
        })
    return rows


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def curve_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if r[k] is None else r[k]) for k in CURVE_COLUMNS} for r in rows)
    return out.getvalue()


def _row_at(rows: list[dict[str, Any]], env_steps: int) -> dict[str, Any] | None:
    """The last row at or before `env_steps`, None before the first."""
    before = [r for r in rows if r["env_steps"] <= env_steps]
    return before[-1] if before else None


def _last_eval(rows: list[dict[str, Any]], env_steps: int) -> float | None:
    evals = [r["eval_score"] for r in rows
             if r["env_steps"] <= env_steps and r["eval_score"] is not None]
    return evals[-1] if evals else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


RANDOM_PLAY = "Random play scores about 1.2-1.7 a game in Breakout."


def curve_table(reference: Reference, rows: list[dict[str, Any]], marks: int = 10) -> str:
    """Markdown: the run at evenly spaced env steps, then the published points."""
    last = rows[-1]["env_steps"] if rows else 0
    lines = [f"# Reference run: {reference.name} ({reference.algo}) on Breakout", "",
             f"{last:,} env steps (agent steps, 4 frames each) in "
             f"{(rows[-1]['time_s'] if rows else 0) / 60:.1f} minutes. "
             "score: mean game score of the last 100 training games; eval: the last "
             "greedy evaluation (whole games) at or before the step. " + RANDOM_PLAY, "",
             "| env steps | minutes | score (100 games) | eval score |",
             "| ---: | ---: | ---: | ---: |"]
    steps = sorted({max(1, round(last * i / marks)) for i in range(1, marks + 1)}) if last else []
    for step in steps:
        row = _row_at(rows, step)
        if row is None:
            continue
        lines.append(f"| {row['env_steps']:,} | {row['time_s'] / 60:.1f} | "
                     f"{_fmt(row['score'])} | {_fmt(_last_eval(rows, step))} |")
    lines += ["", "## Published, at the same env steps where published", "",
              "| curve | env steps | published | this run (score, eval) at that step | "
              "note |", "| --- | ---: | ---: | --- | --- |"]
    for curve in reference.published:
        # The points this run reached, and the published run's last one.
        shown = [p for p in curve.points if p.env_steps <= last]
        shown += [p for p in curve.points[-1:] if p not in shown]
        for point in shown:
            row = _row_at(rows, point.env_steps)
            ours = ("not reached" if point.env_steps > last or row is None else
                    f"{_fmt(row['score'])}, {_fmt(_last_eval(rows, point.env_steps))}")
            spread = f" ± {point.spread:g}" if point.spread is not None else ""
            lines.append(f"| {curve.label} | {point.env_steps:,} | {point.score:g}{spread} | "
                         f"{ours} | {point.note} |")
    lines += ["", "Sources and protocols:", ""]
    lines += [f"- {c.label}: {c.source}; {c.protocol}" for c in reference.published]
    lines += ["", "Where this mapping differs from the published code:", ""]
    lines += [f"- {d}" for d in reference.differences]
    return "\n".join(lines) + "\n"


def curve_figure(reference: Reference, rows: list[dict[str, Any]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    scored = [r for r in rows if r["score"] is not None]
    ax.plot([r["env_steps"] for r in scored], [r["score"] for r in scored],
            label="this run: training score (last 100 games)")
    evals = [r for r in rows if r["eval_score"] is not None]
    ax.plot([r["env_steps"] for r in evals], [r["eval_score"] for r in evals], "o--",
            label="this run: greedy evaluation (whole games)")
    last = rows[-1]["env_steps"] if rows else 0
    markers = iter("s^Dv")
    for curve in reference.published:
        shown = [p for p in curve.points if p.env_steps <= max(last, 1) * 1.05]
        if shown:
            ax.errorbar([p.env_steps for p in shown], [p.score for p in shown],
                        yerr=[p.spread or 0 for p in shown], fmt=next(markers) + "-",
                        label=f"published: {curve.label}")
    beyond = [f"{c.label}: {c.points[-1].score:g} at {c.points[-1].env_steps:,}"
              for c in reference.published if c.points[-1].env_steps > max(last, 1) * 1.05]
    ax.axhspan(1.2, 1.7, color="grey", alpha=0.3, label="random play (1.2-1.7)")
    ax.set_xlabel("env steps (agent steps, 4 frames each)")
    ax.set_ylabel("game score")
    title = f"{reference.name} ({reference.algo}) on Breakout, tune-rl on RLlib"
    if beyond:
        title += "\npublished beyond this run: " + "\n".join(beyond)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def write_curve(reference: Reference, rows: list[dict[str, Any]], folder: Path,
                stem: str) -> list[Path]:
    """<stem>.png, <stem>.md and <stem>.csv in `folder`."""
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    png, md, table = (folder / f"{stem}.{ext}" for ext in ("png", "md", "csv"))
    fig = curve_figure(reference, rows)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    md.write_text(curve_table(reference, rows))
    table.write_text(curve_csv(rows))
    return [png, md, table]


def log_curve(tracking_uri: str, run_id: str, files: list[Path]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    for path in files:
        client.log_artifact(run_id, str(path), "reference")


def draw_reference(reference: Reference, spec, output: Path | None = None) -> list[Path]:
    """The curve of a reference sweep already on disk (finished, or stopped
    part way: each iteration is in result.json as it ends), redrawn into its
    folder and `output`."""
    folder = Path(spec.storage.path(spec.name))
    trials = sorted(folder.glob("*/result.json"))
    if not trials:
        raise UsageError(f"no reference trial in {folder}: give the --name and --storage-path "
                         "of a reference run")
    rows = read_curve(str(trials[0].parent))
    stem = f"reference-{reference.algo.lower()}"
    files = write_curve(reference, rows, folder, stem)
    if output is not None:
        files += write_curve(reference, rows, output, stem)
    from tune_rl.plan import tracking_state_file

    state = tracking_state_file(spec)
    if state.exists():  # the run's MLflow parent, finished or stopped
        parent = json.loads(state.read_text()).get("parent_run_id")
        if parent:
            log_curve(spec.tracking_uri, parent, files[:3])
    return files


def run_reference(reference: Reference, spec, address: str | None = None,
                  output: Path | None = None) -> dict[str, Any]:
    """Runs the reference's one-trial sweep, then writes its curve beside the
    published one into the sweep folder (and `output`), and into MLflow."""
    from tune_rl.runner import run_sweep
    from tune_rl.storage import is_uri

    if is_uri(spec.storage_path):
        raise UsageError("tune-rl reference writes its curve into a local sweep folder: "
                         f"--storage-path {spec.storage_path!r} is not a local folder")
    plan = plan_reference(reference, spec, address)
    summary = run_sweep(plan, address=address)
    if summary.get("interrupted") or not summary["trials"]:
        return summary
    trial = summary["trials"][0]
    rows = read_curve(trial["path"])
    stem = f"reference-{reference.algo.lower()}"
    files = write_curve(reference, rows, Path(spec.storage.path(spec.name)), stem)
    if output is not None:
        files += write_curve(reference, rows, output, stem)
    parent = summary["mlflow"].get("parent_run_id")
    if parent:
        log_curve(spec.tracking_uri, parent, files[:3])
    summary["reference"] = {"name": reference.name, "files": [str(f) for f in files],
                            "env_steps": rows[-1]["env_steps"] if rows else 0,
                            "final_score": rows[-1]["score"] if rows else None}
    return summary
