"""A sweep's progress while it runs, in 100 columns: one row per trial and
the sweep's env steps against its budget, with an estimate of the time left.

Tune's CLIReporter (Ray 2.60, ray/tune/progress_reporter.py), given only the
searched parameters and four metrics, printed a table 226 characters wide and
a best-trial line of 318 for a CartPole PPO sweep (measured; about 236 for
Rainbow's table), and its options (metric_columns, parameter_columns,
max_column_length) cannot shorten them:
- every table has a "loc" column (node IP:pid, 15-21 characters);
- numbers reach tabulate whole (`_max_len` shortens strings only), which
  prints 6 significant digits: lr 0.000129633;
- "Current best trial: <id> with eval_score=... and parameters={...}" holds
  every searched value at full precision on one line;
- "Result logdir: <the driver's staging folder>" is as long as that path.
So `SweepProgress` is a CLIReporter (Tune calls it at max_report_frequency,
with the scheduler's state and the resources in use, and once at the end)
whose report draws its own rows: the searched values at 3 significant
digits, under short names, as many as fit; all of a trial's values once,
when it first appears. The rows are laid out as the summary's
(report.aligned), not by Tune's tabulate, which pads every column 2
characters beyond its header: 20 characters, two searched values, over ten
columns. It writes no terminal control codes, so
a log (CI, `tune-rl submit`'s job logs) gets the same lines as a terminal.

Tune ignores any progress reporter under its newer output engine, which it
uses unless RAY_AIR_NEW_OUTPUT=0: the runner sets that unless the
environment already says otherwise.
"""

from __future__ import annotations

import math
import textwrap
import time
from typing import Any

from ray.tune import CLIReporter

from tune_rl.report import aligned
from tune_rl.trainable import DIVERGED, ENV_STEPS, EVAL_SCORE, LAST_EVAL_SCORE, SCORE, lookup

WIDTH = 100
SHORT_NAMES = {
    "target_network_update_freq": "target upd",
    "train_batch_size_per_learner": "batch",
    "minibatch_size": "minibatch",
    "num_epochs": "epochs",
    "num_atoms": "atoms",
    "entropy_coeff": "entropy",
    "vf_loss_coeff": "vf coeff",
    "clip_param": "clip",
    "grad_clip": "grad clip",
    "lambda_": "lambda",
    "lr_schedule": "lr sched",
    "conv_filters": "conv",
    "head_hiddens": "head",
    "per_alpha": "alpha",
    "per_beta": "beta",
}
# Tune's statuses as the summary names the ends (report.summarize).
ORDER = ("RUNNING", "PAUSED", "PENDING", "TERMINATED", "ERROR")


def short(value: Any) -> str:
    """A searched value in a few characters: 3 significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) and abs(value) < 1_000_000:
        return str(value)
    return f"{value:.3g}".replace("e-0", "e-").replace("e+0", "e+")


def number(value: Any, spec: str) -> str:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return format(value, spec)
    return "-"


def env_steps_per_s(result: dict[str, Any]) -> float | None:
    """The last iteration's sampling rate, as MLflow's env_steps_per_s."""
    seconds = result.get("time_this_iter_s")
    steps = lookup(result, ("env_runners", "num_env_steps_sampled"))
    return float(steps) / float(seconds) if seconds and steps else None


def duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class SweepProgress(CLIReporter):
    """Tune's reporter for a sweep: `params` the searched names in the
    space's order; the budget is `trials` x `max_env_steps`, and
    `planned_env_steps` what the scheduler plans to allow (ASHA, as
    `estimate.asha_env_steps` counts it), None when it plans no cut."""

    def __init__(self, *, name: str, algo: str, params: list[str], trials: int,
                 max_env_steps: int, planned_env_steps: float | None = None,
                 max_report_frequency: int = 30, max_progress_rows: int = 20):
        super().__init__(max_report_frequency=max_report_frequency,
                         max_progress_rows=max_progress_rows)
        self.name, self.algo, self.params = name, algo, list(params)
        self.trials, self.max_env_steps = trials, max_env_steps
        self.planned_env_steps = planned_env_steps
        self._shown: set[str] = set()  # trials whose values were printed
        self._since: tuple[float, int] | None = None  # (time, env steps) when first > 0

    def setup(self, start_time: float | None = None, **kwargs) -> None:
        super().setup(start_time=start_time, **kwargs)
        self._since = None  # a resumed sweep measures its rate afresh

    def report(self, trials: list, done: bool, *sys_info: str) -> None:
        self._print("\n".join(self.lines(trials, done, *sys_info)) + "\n")

    def lines(self, trials: list, done: bool, *sys_info: str) -> list[str]:
        """The report, every line at most WIDTH characters."""
        counts: dict[str, int] = {}
        for trial in trials:
            counts[self.status(trial)] = counts.get(self.status(trial), 0) + 1
        head = (f"== {self.name}: {self.algo}, {len(trials)} of {self.trials} trials "
                f"({', '.join(f'{n} {s}' for s, n in counts.items())}) ==")
        out = wrap(head)
        for info in sys_info:
            for line in str(info).splitlines():
                out += wrap(line)
        new = [t for t in trials if t.trial_id not in self._shown]
        for trial in new:
            values = " ".join(f"{k}={short(trial.config.get(k))}" for k in self.params)
            out += wrap(f"{trial}: {values}")
            self._shown.add(trial.trial_id)
        out += self.table(trials)
        out += self.progress(trials, done)
        return out

    def status(self, trial) -> str:
        if trial.status == "ERROR":
            return "FAILED"
        if trial.status != "TERMINATED":
            return trial.status
        result = trial.last_result or {}
        if result.get(DIVERGED):
            return "DIVERGED"
        steps = result.get(ENV_STEPS) or 0
        return "FINISHED" if steps >= self.max_env_steps else "STOPPED"  # ASHA, or the target

    def table(self, trials: list) -> list[str]:
        # The selected score; eval_score is NaN between evaluations: its latest.
        metric = LAST_EVAL_SCORE if self._metric in (EVAL_SCORE, LAST_EVAL_SCORE) else SCORE

        def score(trial) -> float:
            value = (trial.last_result or {}).get(metric)
            return value if isinstance(value, (int, float)) and math.isfinite(value) else -math.inf

        ordered = sorted(trials, key=lambda t: (ORDER.index(t.status) if t.status in ORDER
                                                else len(ORDER), -score(t)))
        shown = ordered[:self._max_progress_rows]
        rows = []
        for t in shown:
            r = t.last_result or {}
            rows.append([t.trial_id, self.status(t), number(r.get(SCORE), ".4g"),
                         number(r.get(LAST_EVAL_SCORE), ".4g"), number(r.get(ENV_STEPS), ".0f"),
                         number(env_steps_per_s(r), ".0f")])
        header = ["trial", "status", "score", "eval\nscore", "env\nsteps", "env\nsteps/s"]
        # The searched values, in the space's order, as many as fit.
        fitted: list[str] = []
        for name in self.params:
            wider = [*header, SHORT_NAMES.get(name, name)], [
                [*row, short(t.config.get(name))] for row, t in zip(rows, shown, strict=True)]
            if max(map(len, render(*wider)), default=0) > WIDTH:
                break
            header, rows = wider
            fitted.append(name)
        out = render(header, rows)
        if len(ordered) > len(shown):
            out.append(f"... and {len(ordered) - len(shown)} more trials")
        left = self.params[len(fitted):]
        if left:
            out += wrap(f"Not in the table: {', '.join(left)} (each trial's values are printed "
                        "when it first appears; all are in the summary and MLflow)")
        return out

    def progress(self, trials: list, done: bool) -> list[str]:
        """The sweep's env steps against its budget, and the time left."""
        steps = sum(int((t.last_result or {}).get(ENV_STEPS) or 0) for t in trials)
        budget = self.trials * self.max_env_steps
        now = time.time()
        if self._since is None and steps > 0:
            # From the first env steps on: Ray's start-up is not the sweep's pace.
            self._since = (now, steps)
        out = wrap(f"Env steps: {steps:,} of {budget:,} ({steps / budget:.0%}), the budget: "
                   f"{self.trials} trials x {self.max_env_steps:,} (max_env_steps)")
        planned = self.planned_env_steps
        target = budget
        if planned is not None and planned < budget:
            target = planned if steps < planned else budget
            share = (f"{steps / planned:.0%} of that done" if steps <= planned
                     else "it let more run")
            out += wrap(f"ASHA, cutting trials at its rungs as planned, allows about "
                        f"{planned:,.0f} ({share}; asynchronous, it may allow more or fewer)")
        elapsed, gained = (now - self._since[0], steps - self._since[1]) if self._since else (0, 0)
        if done:
            took = duration(now - (self._start_time or now))
            out += wrap(f"Done: {steps:,} env steps in {took}.")
        elif gained > 0 and elapsed > 0:
            rate = gained / elapsed
            out += wrap(f"Time left: about {duration(max(target - steps, 0) / rate)} to "
                        f"{target:,.0f} env steps, at the sweep's {rate:,.0f} env steps/s so far")
        else:
            out += wrap("Time left: estimated from the next report on")
        return out


def render(header: list[str], rows: list[list[str]]) -> list[str]:
    return aligned(header, rows, right=range(2, 6))  # the numbers right-aligned


def wrap(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, subsequent_indent="  ") or [""]
