"""A sweep's plan: its spec resolved against preset, env and space, and checked.

`resolve_plan` touches nothing outside the process (what `tune-rl submit`
checks before upload); `plan_sweep` also checks storage, tracking and the
cluster address (what `--dry-run` shows). Nothing here starts Ray: `sweep`,
`confirm`, `train` and `reference` plan here and run through runner.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tune_rl.cluster import check_before_connecting
from tune_rl.config import REPLAY_PARAMS, TrialSettings, describe_network
from tune_rl.envs import EnvChoice, get_env
from tune_rl.errors import UsageError
from tune_rl.presets import EVALUATION, PRESETS, Preset
from tune_rl.search import POPULATION, SCHEDULERS, SEARCHERS, SEED, startup_trials
from tune_rl.selection import SELECT_RULES, asha_milestones
from tune_rl.spaces import (
    check_space,
    check_training,
    load_mutable,
    load_space,
    space_source,
    space_summary,
)
from tune_rl.spec import SweepSpec
from tune_rl.storage import StoredFile, check_reachable, is_uri
from tune_rl.study import check_new_study, describe_study, study_location


@dataclass
class SweepPlan:
    spec: SweepSpec
    preset: Preset
    env: EnvChoice
    space: dict[str, Any]
    settings: TrialSettings
    # The exact trial configs to run, in place of a search (`confirm`'s
    # configurations times seeds, `train`'s one): no search, no early stopping.
    configs: list[dict[str, Any]] | None = None
    # An MLflow run to nest this run's parent under (a confirmation under its sweep's).
    parent_run_id: str | None = None
    # Searched parameters the sweep file fixes instead (pinned_values).
    pinned: dict[str, str] = field(default_factory=dict)
    # PBT and PB2: what they may change while a trial trains, with its range.
    mutable: dict[str, Any] = field(default_factory=dict)
    # The Ray cluster it runs on (plan_sweep's address); None: this machine.
    address: str | None = None

    def _schedules(self) -> dict[str, Any]:
        """The preset's env-step schedules as this sweep runs them (schedule_scale)."""
        if not self.preset.is_dqn:
            return {}
        from tune_rl.config import build_config

        config = build_config(self.preset, self.env, {}, self.settings)
        return {"schedule_scale": self.settings.schedule_scale, "epsilon": config.epsilon,
                "learning_starts": config.num_steps_sampled_before_learning_starts}

    def _replay_buffer(self) -> dict[str, Any]:
        """The buffer settings a trial gets: the preset's, with `training:`'s merged in."""
        if not self.preset.is_dqn:
            return {}
        from tune_rl.config import build_config

        return dict(build_config(self.preset, self.env, {}, self.settings).replay_buffer_config)

    def _updates(self) -> str:
        """How often a trial trains, as RLlib will really do it (config.env_steps_per_update)."""
        if not self.preset.is_dqn:
            return ""
        from ray.rllib.algorithms.dqn.dqn import calculate_rr_weights

        from tune_rl.config import build_config, env_steps_per_update

        config = build_config(self.preset, self.env, {}, self.settings)
        store, train = calculate_rr_weights(config)
        return (f"one update of {config.total_train_batch_size} every "
                f"{env_steps_per_update(config):g} env steps: RLlib samples {store} round(s) of "
                f"{config.get_rollout_fragment_length()} steps x "
                f"{config.num_envs_per_env_runner} envs x {max(config.num_env_runners, 1)} "
                f"runner(s), then trains {train} time(s)")

    def _replay_held(self) -> tuple[int, int]:
        """Transitions a trial's replay buffer holds at most, and their bytes:
        it never holds more than the trial samples."""
        from tune_rl.trainable import REPLAY_BYTES_PER_TRANSITION

        held = min(self._replay_buffer()["capacity"], self.spec.max_env_steps)
        return held, held * REPLAY_BYTES_PER_TRANSITION[self.env.name]

    def replay_at_once(self) -> tuple[int, int]:
        """How many trials hold a replay buffer at once on this machine, and
        the bytes their buffers hold together: as many trials as its CPUs
        (and GPUs, where it has some) run, or max_concurrent's fewer."""
        from tune_rl.estimate import _gpus, trials_at_once

        per_trial = self.resources_per_trial()
        machine = {"CPU": os.cpu_count() or 1}
        if per_trial.get("GPU", 0) > 0:
            machine["GPU"] = _gpus()
            if not machine["GPU"]:  # refused elsewhere (estimate); counted by CPUs here
                per_trial = {**per_trial, "GPU": 0}
        at_once = trials_at_once(per_trial, machine)
        if self.spec.max_concurrent and not self.mutable:  # PBT creates its population whole
            at_once = min(at_once, self.spec.max_concurrent)
        at_once = min(at_once, self.spec.trials)
        return at_once, at_once * self._replay_held()[1]

    def _replay_memory(self) -> str:
        """The dry-run's line on replay memory: per trial, and together."""
        from tune_rl.trainable import REPLAY_BYTES_PER_TRANSITION

        held, size = self._replay_held()
        line = (f"up to about {_bytes(size)} per trial ({held} transitions x "
                f"{REPLAY_BYTES_PER_TRANSITION[self.env.name]:,} bytes; frames stored once, "
                "replay.py)")
        if self.address:
            return line + ("; not checked against the cluster's nodes, whose memory is known "
                           "only once connected: each node needs that much per trial it runs")
        at_once, together = self.replay_at_once()
        return (line + f"; {at_once} trial(s) at once on this machine: {_bytes(together)}, "
                f"and about {_bytes(besides_replay(at_once))} for the trial processes and "
                f"the sweep, of its {_bytes(machine_memory())}")

    def _replay_in_checkpoints(self) -> str:
        """The replay buffer's share of a trial's checkpoints (trainable.py)."""
        if not self.preset.is_dqn:
            return ""
        from tune_rl.trainable import REPLAY_BYTES_PER_TRANSITION

        held, size = self._replay_held()
        each = f"{held} transitions x {REPLAY_BYTES_PER_TRANSITION[self.env.name]:,} bytes"
        if self.settings.replay_in_every_checkpoint:
            return (f"; the replay buffer in every checkpoint ({self.spec.search} may restore "
                    f"any of them: up to about {_bytes(size)} each, {each})")
        return (f"; the replay buffer only in the latest (up to about {_bytes(size)} per trial: "
                f"{each}) and only while the trial runs; the others, and all once it ends, "
                "keep the weights")

    def disk_per_trial(self) -> int:
        """Bytes a trial leaves in storage at most: its kept checkpoints and,
        under PBT/PB2, the replay buffer in each of them (replay_on_disk
        counts the others' buffers).

        A checkpoint holds the module and its target net, and after the first
        update Adam's two moments: 16 bytes per parameter. Measured: Rainbow's
        checkpoint before any update is 54.9 MB (6.76M parameters x 4 bytes x
        2 nets, plus 0.7 MB of RLlib's constructor pickles), PPO's 1.7 MB.
        """
        spec = self.spec
        try:
            parameters = describe_network(self.preset, self.env,
                                          settings=self.settings)["parameters"]
        except Exception:  # noqa: BLE001 - an env that cannot start without its config
            parameters = 0  # (the tests' own envs): the replay buffer is still counted
        iterations = -(-spec.max_env_steps // spec.min_env_steps_per_iteration)
        saved = iterations // spec.checkpoint_every + 1  # and one at the end
        kept = saved if self.mutable else min(saved, spec.keep_checkpoints + 1)
        size = kept * (16 * parameters + 2_000_000)
        if self.preset.is_dqn and self.settings.replay_in_every_checkpoint:
            size += kept * self._replay_held()[1]
        return size

    def replay_on_disk(self) -> tuple[int, int]:
        """Where a trial's replay buffer lasts only while it runs (the DQN
        family, except under PBT/PB2; trainable.ReplayBuffersEndWithTrial): how
        many trials hold one at once, and how many buffers each of them
        holds in storage at most. (0, 0) where disk_per_trial counts them.

        Its latest checkpoint's and, while it saves, the new checkpoint's:
        the older one's is removed once the new one is stored. Tune writes
        the new one to a temporary folder first and copies it to storage
        (Trainable.save, tempfile.mkdtemp): a third where that folder is on
        the storage's filesystem.
        """
        if not self.preset.is_dqn or self.settings.replay_in_every_checkpoint:
            return 0, 0
        spec = self.spec
        if self.address:  # the cluster's CPUs are known only once connected
            at_once = min(spec.max_concurrent or spec.trials, spec.trials)
        else:
            at_once = self.replay_at_once()[0]
        temporary = (not self.address and not is_uri(spec.storage_path)
                     and os.stat(tempfile.gettempdir()).st_dev
                     == os.stat(_existing(Path(spec.storage_path))).st_dev)
        return at_once, 2 + temporary

    def disk_needed(self) -> tuple[int, str]:
        """Bytes the sweep needs in storage at most, and what they are."""
        per_trial, trials = self.disk_per_trial(), self.spec.trials
        need = per_trial * trials
        what = f"{trials} trials x {_bytes(per_trial)} of kept checkpoints"
        if self.settings.replay_in_every_checkpoint:
            return need, (f"{what}, each with its replay buffer ({self.spec.search} may "
                          "restore any of them)")
        at_once, each = self.replay_on_disk()
        if not at_once:
            return need, what
        size = self._replay_held()[1]
        need += at_once * each * size
        why = ("its latest checkpoint's; while it saves, the new one's"
               + (" and Tune's temporary copy of it" if each == 3 else ""))
        return need, (f"{what}; replay buffers only while a trial runs: {at_once} at once "
                      f"x {each} x {_bytes(size)} ({why}; a trial that fails keeps its own, "
                      "for --resume)")

    def _disk(self) -> str:
        need, what = self.disk_needed()
        return f"up to about {_bytes(need)}: {what}"

    def trainable(self):
        """The Tune trainable every trial of this sweep runs."""
        from tune_rl.trainable import make_trainable

        return make_trainable(self.preset, self.env, self.settings, self.spec.torch_threads)

    def resources_per_trial(self) -> dict[str, float]:
        return resources_per_trial(self.trainable(), self.space)

    def estimate_wall_time(self) -> dict[str, Any] | str:
        from tune_rl.estimate import estimate

        return estimate(self.spec, self.preset.rllib_algo, self.resources_per_trial())

    def _evaluation(self) -> str:
        s = self.settings
        if not s.eval_at_end:
            return "none"
        when = [f"every {n} iterations" for n in s.eval_every_iterations]
        where = "each perturbation point" if self.mutable else "ASHA's rungs"
        when += [f"at {where} {list(s.eval_at_env_steps)} env steps"] * bool(
            s.eval_at_env_steps)
        return (f"{s.eval_episodes} complete games, greedy, new seeds each time: "
                + ", ".join([*when, "at the trial's end"]))

    def _scheduler(self) -> str:
        spec = self.spec
        if self.mutable:
            return (f"{SEARCHERS[spec.search]} on env steps: a population of {spec.trials}, "
                    f"all synchronised and perturbed every {spec.perturbation_env_steps} env "
                    f"steps (members take turns when they do not all fit); it may change "
                    + ", ".join(f"{n} {d}" for n, d in space_summary(self.mutable).items())
                    + "; no ASHA (PBT and PB2 replace it)")
        if spec.early_stopping == "asha":
            return (f"ASHA on env steps: grace {spec.grace_env_steps}, reduction factor "
                    f"{spec.reduction_factor}, max {spec.max_env_steps}")
        return SCHEDULERS["none"]

    def describe(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "sweep": spec.name,
            "algorithm": f"{self.preset.name} (RLlib {self.preset.rllib_algo})",
            "preset": self.preset.training or "RLlib defaults",
            "preset_sources": self.preset.sources,
            "components": self.preset.components(),
            "schedules": self._schedules(),
            "replay_buffer": self._replay_buffer(),
            **({"replay_memory": self._replay_memory()} if self.preset.is_dqn else {}),
            "updates": self._updates(),
            "network": describe_network(self.preset, self.env, settings=self.settings),
            "env": f"{self.env.name}: {self.env.description}",
            **({"protocol": self.env.protocol + (
                f"; this sweep's env_config: {spec.env_config}" if spec.env_config else "")}
               if self.env.protocol else {}),
            "space": space_summary(self.space),
            "space_from": ("fixed params" if spec.params else
                           space_source(self.preset, self.env)),
            "profile_from": spec.profile_from,
            "pinned": self.pinned,
            "search": f"{SEARCHERS[spec.search]}, seed {spec.seed}, {spec.trials} trials, "
                      "each with its own RLlib seed derived from it" + (
                          f"; the first {startup_trials(spec.trials)} at random"
                          if spec.search == "tpe" else ""),
            "select": f"{spec.select}: {SELECT_RULES[spec.select]}",
            "evaluation": self._evaluation(),
            "budget": f"{spec.max_env_steps} env steps per trial, a result every "
                      f">= {spec.min_env_steps_per_iteration} steps",
            "scheduler": self._scheduler(),
            "stop": (f"each trial at {spec.max_env_steps} env steps" +
                     (f"; the sweep once a trial's score reaches {spec.target_score:g}"
                      if spec.target_score is not None else "")),
            "concurrency": ("as many members as the CPUs and GPUs allow (the population "
                            "is created whole; max_concurrent applies to tpe and random)"
                            if self.mutable else
                            spec.max_concurrent or "as many trials as the CPUs and GPUs allow"),
            "estimated_wall_time": self.estimate_wall_time(),
            "checkpoints": f"every {spec.checkpoint_every} iterations and at the end, "
                           + ("keep all (PBT restores donors from them)" if self.mutable else
                              f"keep {spec.keep_checkpoints} best per trial by {spec.select}")
                           + self._replay_in_checkpoints(),
            "storage": spec.sweep_location,
            "disk": self._disk(),
            "mlflow": f"{spec.tracking_uri} experiment {spec.experiment!r}",
            "optuna_study": describe_study(self),
            "spec_file": spec.spec_file,
        }


SUMMARY = "summary.json"


def tracking_state_file(spec: SweepSpec) -> StoredFile:
    # Beside the sweep folder, not in it: at the end of a resumed run Tune
    # syncs its driver-side copy of the folder back over the original,
    # which would put back the copy of this file taken when the run resumed.
    return spec.storage.file(f".tune_rl/{spec.name}.mlflow_runs.json")


def sweep_state(spec: SweepSpec) -> str:
    """'new', 'finished' (it wrote its summary) or 'unfinished' (killed, crashed)."""
    storage = spec.storage
    if not storage.exists(f"{spec.name}/tuner.pkl"):
        return "new"
    return "finished" if storage.exists(f"{spec.name}/{SUMMARY}") else "unfinished"


def resolve_plan(spec: SweepSpec, space: dict[str, Any] | None = None) -> SweepPlan:
    """The spec resolved against its preset, env and search space, and checked.

    Touches no disk and no network: `tune-rl submit` checks a sweep with it
    on the submitting machine, whose storage and servers may not be the cluster's.
    `space` replaces the algorithm's search space (a reference run's fixed
    values, references.py); it is checked the same way.
    """
    preset, env = PRESETS[spec.algo], get_env(spec.env)
    settings = TrialSettings(
        seed=spec.seed,
        env_runners=spec.env_runners,
        envs_per_env_runner=spec.envs_per_env_runner,
        cpus_per_env_runner=spec.cpus_per_env_runner,
        rollout_fragment_length=(spec.rollout_fragment_length if spec.rollout_fragment_length
                                 == "auto" else int(spec.rollout_fragment_length)),
        gpus_per_learner=spec.gpus_per_learner,
        min_env_steps_per_iteration=spec.min_env_steps_per_iteration,
        schedule_scale=spec.schedule_scale,
        max_env_steps=spec.max_env_steps,
        **evaluation_schedule(spec),
        env_config=dict(spec.env_config),
        training=dict(spec.training),
        # PBT and PB2 restore a member from another's checkpoint, which need
        # not be that one's latest by then (with params:, no population runs).
        replay_in_every_checkpoint=spec.search in POPULATION and not spec.params,
    )
    configs = None
    if spec.params:  # one configuration, chosen already (`tune-rl best` writes it)
        space = dict(spec.params)
        configs = [{**spec.params, SEED: spec.seed}]
    space = load_space(preset, env) if space is None else dict(space)
    check_training(preset, settings)
    pinned = pinned_values(spec, space)
    space = {name: domain for name, domain in space.items() if name not in pinned}
    if not space:
        raise UsageError("training: fixes every searched parameter: nothing is left to "
                         "search; to run one configuration, use params: (tune-rl best, train)")
    check_space(preset, env, space, settings)
    mutable = {}
    if spec.search in POPULATION and not configs:
        mutable = {n: d for n, d in load_mutable(preset, env).items() if n in space}
        if not mutable:
            raise UsageError(f"search: {spec.search} has nothing to change: every MUTABLE "
                             f"parameter of {preset.name} is pinned by training:")
    return SweepPlan(spec, preset, env, space, settings, configs, pinned=pinned,
                     mutable=mutable)


def evaluation_schedule(spec: SweepSpec) -> dict[str, Any]:
    """When a trial evaluates itself (TrialSettings' eval_* fields).

    With select: eval, at every ASHA rung, every checkpoint and the trial's
    end, so that the scheduler, Optuna and each checkpoint see a fresh
    evaluation (selection.py); with `evaluation`, also every 10 iterations
    (the notebook's interval), for the learning curves.
    """
    every, milestones = set(), ()
    if spec.evaluation:
        every.add(EVALUATION["evaluation_interval"])
    if spec.select == "eval":
        every.add(spec.checkpoint_every)
        if spec.search in POPULATION:  # PBT compares at each perturbation point
            step = spec.perturbation_env_steps
            milestones = tuple(range(step, spec.max_env_steps + 1, step))
        elif spec.early_stopping == "asha":
            milestones = tuple(asha_milestones(spec.grace_env_steps, spec.max_env_steps,
                                               spec.reduction_factor))
    return {"eval_every_iterations": tuple(sorted(every)), "eval_at_env_steps": milestones,
            "eval_at_end": bool(every), "eval_episodes": spec.eval_episodes}


def pinned_values(spec: SweepSpec, space: dict[str, Any]) -> dict[str, str]:
    """The searched parameters that the sweep file fixes under `training:`, by
    name, with where: the fixed value wins and the space stops searching them
    (say, a smaller fixed batch for the tests of a space that searches it)."""
    fixed = {name: (f"training.{name}", value) for name, value in spec.training.items()}
    buffer = spec.training.get("replay_buffer_config")
    buffer = buffer if isinstance(buffer, dict) else {}  # not a mapping: check_space refuses
    fixed.update({name: (f"training.replay_buffer_config.{key}", buffer[key])
                  for name, key in REPLAY_PARAMS.items() if key in buffer})
    return {name: f"{value!r} ({where}), not searched" for name, (where, value) in fixed.items()
            if name in space}


def plan_sweep(spec: SweepSpec, resume: bool = False, address: str | None = None,
               space: dict[str, Any] | None = None) -> SweepPlan:
    """Everything a sweep needs, checked here (storage, tracking, cluster); starts nothing.

    `address` is a Ray cluster to run on (host:port, ray://host:port or auto);
    `space`, fixed values instead of the search space (see resolve_plan).
    """
    plan = resolve_plan(spec, space)
    plan.address = address
    if plan.preset.is_dqn and address is None:
        _check_memory(plan)
    if is_uri(spec.storage_path):
        check_reachable(spec.storage_path)
    else:
        _check_storage(Path(spec.storage_path))
        if not resume:
            _check_room(plan, Path(spec.storage_path))
    check_before_connecting(address, spec.tracking_uri)
    _check_tracking(spec.tracking_uri)
    state = sweep_state(spec)
    if resume and state != "unfinished":
        raise UsageError(f"--resume: sweep {spec.name!r} in {spec.storage_path} is {state}; "
                         "there is nothing to resume")
    if not resume and state == "unfinished":
        raise UsageError(f"sweep {spec.name!r} exists in {spec.storage_path} and did not "
                         "finish: add --resume to continue it, or pass a new --name")
    rerun_keeps_its_journal = state == "finished" and not spec.optuna_storage
    if (not resume and not plan.mutable and not plan.configs and study_location(spec)
            and not rerun_keeps_its_journal):
        check_new_study(study_location(spec), spec.name)
    return plan


def _check_room(plan: SweepPlan, path: Path) -> None:
    """Refuses a sweep whose checkpoints the storage cannot hold: it would
    otherwise fail hours in, when a save finds the disk full."""
    need, what = plan.disk_needed()  # builds the network: once
    free = disk_free(path)
    if need > free:
        fewer = ("a lower max_concurrent, " if plan.replay_on_disk()[0] else "") + "fewer trials"
        raise UsageError(
            f"sweep {plan.spec.name!r} needs up to about {_bytes(need)} in {path} "
            f"({what}), and {_bytes(free)} is free there. Use {fewer}, a smaller "
            "training.replay_buffer_config.capacity or keep_checkpoints, or another "
            "storage_path")


def _existing(path: Path) -> Path:
    """`path`, or its nearest folder that exists (_check_storage leaves no
    folder it created)."""
    existing = path.resolve()
    while not existing.exists():
        existing = existing.parent
    return existing


def disk_free(path: Path) -> int:
    """Free bytes on the filesystem that holds (or will hold) `path`."""
    return shutil.disk_usage(_existing(path)).free


def machine_memory() -> int:
    """This machine's physical memory, in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# What a sweep holds besides its replay buffers, counted by the memory check.
# Measured on 2 cores (RSS, Breakout, 8 envs): a trial process after four
# learning iterations with about 1,000 transitions stored, DQN 0.76 GB and
# Rainbow 1.18 GB (1.45 GB seen for a Rainbow trial actor under Tune); the
# `tune-rl sweep` driver 0.67 GB at the end of a 2-trial DQN sweep, Ray's
# own processes 0.1-0.2 GB each.
TRIAL_PROCESS_BYTES = 1_500_000_000
SWEEP_PROCESS_BYTES = 1_000_000_000


def besides_replay(at_once: int) -> int:
    """Bytes the sweep's processes hold besides their replay buffers."""
    return at_once * TRIAL_PROCESS_BYTES + SWEEP_PROCESS_BYTES


def _check_memory(plan: SweepPlan) -> None:
    """Refuses a sweep whose trials' replay buffers, together, would not fit
    in this machine's memory: they fill up hours in, and the kernel then
    kills a trial (or Ray its worker) with no error of ours."""
    at_once, together = plan.replay_at_once()
    memory = machine_memory()
    besides = besides_replay(at_once)
    if together + besides <= memory:
        return
    held, per_trial = plan._replay_held()
    from tune_rl.trainable import REPLAY_BYTES_PER_TRANSITION

    each = REPLAY_BYTES_PER_TRANSITION[plan.env.name]
    fitting_trials = (memory - SWEEP_PROCESS_BYTES) // (per_trial + TRIAL_PROCESS_BYTES)
    capacity = max(0, memory - besides) // (at_once * each)
    fewer = ("fewer trials (PBT and PB2 run the whole population at once)" if plan.mutable
             else f"max_concurrent: {fitting_trials} or fewer")
    raise UsageError(
        f"sweep {plan.spec.name!r} would hold up to about {_bytes(together)} of replay "
        f"buffers at once ({at_once} trials at once x {held} transitions x {each:,} bytes) "
        f"and about {_bytes(besides)} besides ({_bytes(TRIAL_PROCESS_BYTES)} a trial "
        f"process, {_bytes(SWEEP_PROCESS_BYTES)} the sweep's own), and this machine has "
        f"{_bytes(memory)} of memory: their total must fit in it. Use "
        + (f"training.replay_buffer_config.capacity: {capacity} or less, or "
           if capacity >= 1 else "")
        + (f"{fewer}, or " if fitting_trials >= 1 else "")
        + "run it on a cluster (--address)")


def _bytes(size: float) -> str:
    return f"{size / 1e9:.3g} GB" if size >= 1e9 else f"{size / 1e6:.3g} MB"


def _check_storage(path: Path, field: str = "storage_path") -> None:
    """Creates the folder and a file in it, then removes what was not there.

    As root, os.access says a folder is writable even where it cannot be
    created (under /proc, on a read-only mount): only trying tells.
    """
    target = path.resolve()
    created = []  # deepest first, so they can be removed in this order
    probe = target
    while not probe.exists() and probe != probe.parent:
        created.append(probe)
        probe = probe.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as err:
        raise UsageError(f"{field} {str(path)!r} cannot be written ({err.strerror}: "
                         f"{err.filename or target}); give a folder you can write to") from None
    finally:
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                break


def _check_tracking(uri: str) -> None:
    """A tracking server must answer before any trial starts."""
    import urllib.request

    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10)
        except OSError as err:
            raise UsageError(f"tracking_uri {uri!r} does not answer ({err}); start the "
                             "MLflow server or pass another --tracking-uri") from None
    elif uri.startswith("sqlite:///"):
        _check_storage(Path(uri.removeprefix("sqlite:///")).parent, "tracking_uri")
    else:
        raise UsageError(f"tracking_uri {uri!r} is not supported: use sqlite:///<file> "
                         "or http(s)://<mlflow server>")


def representative_params(space: dict[str, Any]) -> dict[str, Any]:
    """One trial's values: each parameter's first choice or lower bound."""
    from tune_rl.spaces import candidate_values

    return {name: candidate_values(name, d)[0] for name, d in space.items()}


def resources_per_trial(trainable, space: dict[str, Any]) -> dict[str, float]:
    """What one trial asks Ray for: CPUs (at least one) and GPUs."""
    request = trainable.default_resource_request(representative_params(space))
    resources = request.required_resources
    return {"CPU": max(1.0, resources.get("CPU", 1.0)), "GPU": resources.get("GPU", 0.0)}
