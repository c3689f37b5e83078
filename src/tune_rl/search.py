"""Search methods by name: what proposes a sweep's trials and what stops them.

Data (the names a sweep file may use) and the one place that turns a name
into Tune's searcher and scheduler. TPE and random search go through
OptunaSearch (StudySearch), so resume, the trial table and MLflow see the same thing
whichever is used; OptunaSearch forces Optuna's NopPruner, so early stopping
is Tune's scheduler.

PBT and PB2 are Tune schedulers that train a population and change its
hyperparameters as it trains; Tune refuses them beside a search algorithm, so
`search: pbt` (or pb2) replaces both the searcher and ASHA: the population
starts from random points of the space (Tune's BasicVariantGenerator, seeded)
and the scheduler does the rest.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

SEARCHERS = {
    "tpe": "Optuna TPE",
    # ARLBench (2024): random search is a strong baseline for RL; it is
    # also the reference `make bench` measures TPE against.
    "random": "Optuna random sampling",
    # Jaderberg et al. 2017, made for deep RL on Atari: every perturbation
    # interval the bottom quarter copies the top quarter's weights and
    # perturbs (x0.8 or x1.2) or resamples its MUTABLE values.
    "pbt": "Population Based Training (Tune's PopulationBasedTraining)",
    # Parker-Holder et al. 2020: PBT whose new values come from a
    # time-varying Gaussian-process bandit over the MUTABLE bounds.
    "pb2": "PB2 (Tune's PB2: PBT with a GP bandit choosing the new values)",
}
POPULATION = ("pbt", "pb2")
SCHEDULERS = {
    "asha": "ASHA on env steps",
    "none": "no early stopping: every trial runs its whole budget",
}


def startup_trials(trials: int) -> int:
    """TPE's random start for a sweep of `trials`: a quarter, at least 3.

    Optuna's default is 10 whatever the sweep, so a 4- to 16-trial sweep
    was mostly or only random search.

    >>> startup_trials(16), startup_trials(4), startup_trials(64)
    (4, 3, 16)
    """
    return max(3, trials // 4)


def make_searcher(name: str, seed: int, trials: int, time_attr: str, storage=None,
                  study_name: str | None = None):
    """StudySearch with TPE or random sampling, seeded, reporting at `time_attr`.

    `storage` (an Optuna storage, study.open_storage) keeps the study where
    optuna-dashboard can open it, as `study_name`; None keeps it in memory.

    Optuna 5's TPESampler is already multivariate for one objective (its
    `multivariate=None` means so, `_is_multivariate`) and already a constant
    liar (`constant_liar=True` by default): trials proposed while others run
    differ. Only its random start is sized here (`startup_trials`).
    """
    import optuna

    sampler = (optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(trials),
                                          multivariate=True, constant_liar=True)
               if name == "tpe" else optuna.samplers.RandomSampler(seed=seed))
    return StudySearch(time_attr, sampler=sampler, storage=storage, study_name=study_name)


class StudySearch(OptunaSearch):
    """Tune's OptunaSearch, whose study shows each trial's curve by env steps
    and survives --resume whole.

    Intermediate values: Ray 2.60's OptunaSearch.on_trial_result reports
    every result at its `training_iteration` (optuna_search.py: `step =
    result[TRAINING_ITERATION]`), NaN included, which our results carry in
    `eval_score` between evaluations (trainable.py). Here a trial reports its
    selected score at `time_attr` (env steps), and only when it has one. Tune
    never passes a trial's last result to on_trial_result, only to
    on_trial_complete (tune_controller.py, _process_trial_result: "Only
    updating search alg if the trial is not to be stopped"), so that result,
    the final evaluation, is reported there (seen: curves ending one
    evaluation short of the value told).

    Resume: Tune pickles this searcher, its study object included, with the
    sweep now and then (searcher-state-*.pkl), while a study in storage moves
    on between saves. On restore, trials the study started after the save
    (their Tune trials are lost with the kill; the resumed search proposes
    others) are marked FAIL rather than left RUNNING for ever, and trials it
    finished after the save are not written to again: Optuna refuses to
    update a finished trial (UpdateFinishedTrialError), so the value told
    first stays. Each Optuna trial names its Tune trial (user attr
    `tune_trial_id`).
    """

    def __init__(self, time_attr: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.time_attr = time_attr

    def suggest(self, trial_id: str):
        config = super().suggest(trial_id)
        self._ot_trials[trial_id].set_user_attr("tune_trial_id", trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value = result.get(self.metric)
        if (trial_id in self._completed_trials or not isinstance(value, (int, float))
                or not math.isfinite(value)):
            return
        self._ot_trials[trial_id].report(value, int(result[self.time_attr]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if result:  # a trial's last result reaches only this (see the class docstring)
            self.on_trial_result(trial_id, result)
        super().on_trial_complete(trial_id, result=result, error=error)

    def restore(self, checkpoint_path: str) -> None:
        from optuna.trial import TrialState

        super().restore(checkpoint_path)
        if self._ot_study is None:
            return
        known = {trial.number: trial_id for trial_id, trial in self._ot_trials.items()}
        for trial in self._ot_study.get_trials(deepcopy=False):
            if trial.state == TrialState.RUNNING and trial.number not in known:
                self._ot_study.tell(trial.number, state=TrialState.FAIL)
            elif trial.state.is_finished() and trial.number in known:
                self._completed_trials.add(known[trial.number])


def make_scheduler(name: str, time_attr: str, max_t: int, grace: int, reduction_factor: int
                   ) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if name == "none":
        return FIFOScheduler()
    return ASHAScheduler(time_attr=time_attr, max_t=max_t, grace_period=grace,
                         reduction_factor=reduction_factor)


def make_population(name: str, time_attr: str, interval: int, mutable: dict[str, Any]):
    """PBT or PB2 over the `mutable` domains, perturbing every `interval` env steps.

    Synchronous (Tune's `synch=True`): every member reaches the same env
    steps, then the bottom quarter copies the top quarter and perturbs.
    Tune's asynchronous default compares a member with the others' last
    scores, taken at other env steps, and skips an exploit whenever the donor
    has not yet been checkpointed as a top member; seen: a population of 2
    perturbed 0 times in 3 intervals (CI, 3 checkpoints and 0 perturbs). The
    price: each member pauses at each interval (a save and a restore).
    """
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pb2 import PB2

    if name == "pb2":
        return _unstranded(PB2)(
            time_attr=time_attr, perturbation_interval=interval, synch=True,
            hyperparam_bounds={n: [d.lower, d.upper] for n, d in mutable.items()})
    # Tune's PBT multiplies a value by 0.8 or 1.2 with no regard for its
    # range (seen: lr 0.00337 from a space of [1e-4, 3e-3]): kept inside it.
    return _unstranded(PopulationBasedTraining)(
        time_attr=time_attr, perturbation_interval=interval, synch=True,
        hyperparam_mutations=dict(mutable), custom_explore_fn=partial(_within, mutable))


def _unstranded(scheduler_class):
    """Tune's synchronous PBT (Ray 2.60) with no member left paused for ever.

    A member pauses at a perturbation point to wait for the others; the point
    is passed, and the paused members resumed, only when a result reaches the
    scheduler. Tune gives the result that ends a trial (the stopper's budget)
    to the stopper alone, so when every other member ends before reaching
    the point, the waiting member is never run again and the sweep hangs
    (seen in `make bench-search`: a 16-member CartPole population whose
    members sample 512 to 2,000 env steps an iteration, so that perturbation
    points fall between the budget's iterations: one member PAUSED, 15
    TERMINATED, "0/2 CPUs" for minutes). Once nothing runs or waits to start,
    the paused members go on, lowest env steps first, without that
    perturbation. Not reproduced in a test: the exploits make small
    populations' iteration sizes equal before the trap can close.
    """
    from ray.tune.experiment import Trial

    class Unstranded(scheduler_class):
        def choose_trial_to_run(self, tune_controller) -> Trial | None:
            chosen = super().choose_trial_to_run(tune_controller)
            trials = tune_controller.get_trials()
            if chosen is not None or any(t.status in (Trial.RUNNING, Trial.PENDING)
                                         for t in trials):
                return chosen
            paused = [t for t in trials if t.status == Trial.PAUSED]
            if not paused:
                return None
            times = [self._trial_state[t].last_train_time for t in paused]
            self._next_perturbation_sync = max(times) + self._perturbation_interval
            return paused[times.index(min(times))]

    Unstranded.__name__ = Unstranded.__qualname__ = scheduler_class.__name__
    return Unstranded


def _within(mutable: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    for name, domain in mutable.items():
        if name in config:
            config[name] = type(config[name])(min(max(config[name], domain.lower),
                                                  domain.upper))
    return config


def make_stopper(budget_attr: str, budget: int, score_attr: str, target_score: float | None):
    """Stops each trial at its budget; with a target score, the whole sweep
    once any trial reaches it (a solved proxy task needs no more trials).

    Returns the stopper and a Tune callback to run beside it. The sweep stops
    only once the trial that reached the target has saved its last checkpoint:
    Tune's stop_all stops every trial at once, the one whose final save is
    under way included, which then never lands (seen: the trial that reached
    the target had no checkpoint, so no policy could be registered).
    """
    from ray import tune

    class BudgetOrTarget(tune.Stopper):
        def __init__(self) -> None:
            self.reached_by: str | None = None
            self.saved = False

        def __call__(self, trial_id: str, result: dict) -> bool:
            score = result.get(score_attr)
            if (self.reached_by is None and target_score is not None and score is not None
                    and score >= target_score):
                self.reached_by = trial_id
            return self.reached_by is not None or result.get(budget_attr, 0) >= budget

        def stop_all(self) -> bool:
            return self.saved

    class TargetSaved(tune.Callback):
        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
            self._done(trial)

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self._done(trial)

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self._done(trial)

        def _done(self, trial) -> None:
            # Past reaching the target, the trial's next save is its last.
            if trial.trial_id == stopper.reached_by:
                stopper.saved = True

    stopper = BudgetOrTarget()
    return stopper, TargetSaved()


def trial_seed(sweep_seed: int, index: int, stream: int = 0) -> int:
    """The RLlib seed of a sweep's `index`-th trial (stream 0), or of its
    `index`-th confirmation run (stream 1): reproducible from the sweep's
    seed, and a different one for every trial.

    >>> trial_seed(0, 0) != trial_seed(0, 1) != trial_seed(0, 0, stream=1)
    True
    """
    import numpy as np

    return int(np.random.SeedSequence([sweep_seed, stream, index]).generate_state(1)[0])


SEED = "seed"  # the trial config key the seed travels under (and its MLflow param)


class SeededTrials(Searcher):
    """`searcher`, with each suggested trial's config given its own `seed`.

    A Tune search wrapper (it has a `searcher`, as ConcurrencyLimiter does), so
    Tune saves its count of suggestions with the sweep (`get_state`) and a
    resumed sweep goes on with the next seed rather than repeating them.
    """

    def __init__(self, searcher: Searcher, sweep_seed: int) -> None:
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher = searcher
        self.sweep_seed = sweep_seed
        self.suggested = 0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str):
        config = self.searcher.suggest(trial_id)
        if config in (None, Searcher.FINISHED):
            return config
        config = {**config, SEED: trial_seed(self.sweep_seed, self.suggested)}
        self.suggested += 1
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def get_state(self) -> dict:
        return {"suggested": self.suggested}

    def set_state(self, state: dict) -> None:
        self.suggested = state["suggested"]

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)


class FixedConfigs(Searcher):
    """Suggests the given trial configs in order, then no more.

    For runs whose values are already chosen (`confirm`'s configurations
    times seeds, `train`'s winner): Tune saves and restores it with the run
    like any searcher, so an interrupted run resumes with the configs left.
    """

    def __init__(self, configs: list[dict[str, Any]]) -> None:
        super().__init__()
        self.configs = [dict(c) for c in configs]
        self.suggested = 0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        return True

    def suggest(self, trial_id: str):
        if self.suggested >= len(self.configs):
            return Searcher.FINISHED
        self.suggested += 1
        return dict(self.configs[self.suggested - 1])

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "wb") as f:
            pickle.dump({"configs": self.configs, "suggested": self.suggested}, f)

    def restore(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.configs, self.suggested = state["configs"], state["suggested"]
