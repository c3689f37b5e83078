"""Which score chooses a sweep's winner, and which trial and checkpoint are best.

One rule, a sweep's `select`, decides everywhere: the metric ASHA compares at
its rungs and Optuna is told (the Tuner's metric), the checkpoint Tune keeps
as a trial's best (its checkpoint_score_attribute), the trial the summary
calls best and the checkpoint registered as the sweep's model.

- `eval` (the default): the greedy evaluation of complete games on new seeds
  (evaluation.py), run when a trial reaches an ASHA rung, when it saves a
  checkpoint and at its end, so that every comparison and every checkpoint
  has a fresh evaluation of the weights in question.
- `train`: the mean of the last 100 training games, played while exploring
  (epsilon, noise or sampled actions): free, but it measures the exploring
  policy over a window of past weights, not the policy that is registered.

A trial's score is its selected score at its last report, the value Optuna
received. FAILED and DIVERGED trials, and trials without a checkpoint, are
never best.
"""

from __future__ import annotations

import math
from typing import Any

from tune_rl.trainable import EVAL_SCORE, LAST_EVAL_SCORE, SCORE

SELECT_RULES = {
    "eval": "evaluation score: greedy play of complete games on new seeds",
    "train": "training score: mean of the last 100 training games, played while exploring",
}
METRICS = {"eval": EVAL_SCORE, "train": SCORE}
NEVER_BEST = ("FAILED", "DIVERGED")


def metric(select: str, search: str = "tpe") -> str:
    """The result key `select` compares: `eval_score` or `score`.

    For PBT and PB2, `last_eval_score`: they compare the population whenever
    a trial reaches a perturbation point, against the others' latest results,
    so each trial's latest evaluation stands until its next (trials evaluate
    at every perturbation point, plan.evaluation_schedule).
    """
    if select == "eval" and search in ("pbt", "pb2"):
        return LAST_EVAL_SCORE
    return METRICS[select]


def finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def eligible(trial: dict[str, Any]) -> bool:
    """Whether a summarised trial may be called best."""
    return (trial["status"] not in NEVER_BEST and trial.get("checkpoint") is not None
            and trial.get("selected_score") is not None)


def ranked(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trials that may be best, best first."""
    return sorted((t for t in trials if eligible(t)), key=lambda t: t["selected_score"],
                  reverse=True)


def best(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    top = ranked(trials)
    return top[0] if top else None


def asha_milestones(grace: int, max_t: int, reduction_factor: int) -> list[int]:
    """The env steps at which ASHA compares trials (its rungs), ascending.

    The formula of Tune's own `_Bracket` (async_hyperband.py, one bracket);
    tests check it against the scheduler's rungs.

    >>> asha_milestones(5000, 20000, 2)
    [5000, 10000, 20000]
    """
    count = int(math.log(max_t / grace) / math.log(reduction_factor) + 1)
    return [int(grace * reduction_factor ** k) for k in range(count)]
