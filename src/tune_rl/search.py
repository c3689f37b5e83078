"""Search methods by name: what proposes a sweep's trials and what stops them.

Data (the names a sweep file may use) and the one place that turns a name
into Tune's searcher and scheduler. Both searchers go through OptunaSearch,
so resume, the trial table and MLflow see the same thing whichever is used;
OptunaSearch forces Optuna's NopPruner, so early stopping is Tune's scheduler.
"""

from __future__ import annotations

from typing import Any

SEARCHERS = {
    "tpe": "Optuna TPE",
    # ARLBench (2024): random search is a strong baseline for RL; it is
    # also the reference `make bench` measures TPE against.
    "random": "Optuna random sampling",
}
SCHEDULERS = {
    "asha": "ASHA on env steps",
    "none": "no early stopping: every trial runs its whole budget",
}


def make_searcher(name: str, seed: int):
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    sampler = (optuna.samplers.TPESampler(seed=seed) if name == "tpe"
               else optuna.samplers.RandomSampler(seed=seed))
    return OptunaSearch(sampler=sampler)


def make_scheduler(name: str, time_attr: str, max_t: int, grace: int, reduction_factor: int
                   ) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if name == "none":
        return FIFOScheduler()
    return ASHAScheduler(time_attr=time_attr, max_t=max_t, grace_period=grace,
                         reduction_factor=reduction_factor)


def make_stopper(budget_attr: str, budget: int, score_attr: str, target_score: float | None):
    """Stops each trial at its budget; with a target score, the whole sweep
    once any trial reaches it (a solved proxy task needs no more trials)."""
    from ray import tune

    class BudgetOrTarget(tune.Stopper):
        def __init__(self) -> None:
            self.reached = False

        def __call__(self, trial_id: str, result: dict) -> bool:
            score = result.get(score_attr)
            if target_score is not None and score is not None and score >= target_score:
                self.reached = True
            return self.reached or result.get(budget_attr, 0) >= budget

        def stop_all(self) -> bool:
            return self.reached

    return BudgetOrTarget()
