"""One function per figure of `make bench`; each returns plain numbers.

Every figure is a rate over a fixed amount of work (env steps, updates,
results), so its cost is bounded by the work, and tests run the same
functions with tiny amounts to check the plumbing, never the speed.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

# The DQN family's replay ratio: one update of 32 per 4 env steps (presets.py).
ENV_STEPS_PER_UPDATE = 4


# --- environments -----------------------------------------------------------

def raw_ale_steps_per_s(steps: int) -> float:
    """ALE Breakout-v5 as ale-py gives it (grayscale, frameskip 4), no wrappers."""
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    env = gym.make("ALE/Breakout-v5", obs_type="grayscale", frameskip=4)
    return _step_rate(env, steps)


def wrapped_env_steps_per_s(steps: int) -> float:
    """tune-rl's Breakout as the DQN family steps it: DeepMind preprocessing,
    four uint8 frames stacked in the env."""
    from tune_rl.envs import make_breakout

    return _step_rate(make_breakout({"stack_frames_in_env": True}), steps)


def _step_rate(env, steps: int) -> float:
    env.reset(seed=0)
    env.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def vector_env_steps_per_s(steps: int, num_envs: int = 8) -> float:
    """ale-py's AtariVectorEnv: C++ threads, DeepMind preprocessing built in."""
    from ale_py.vector_env import AtariVectorEnv

    envs = AtariVectorEnv(game="breakout", num_envs=num_envs, stack_num=4,
                          repeat_action_probability=0.25)
    envs.reset(seed=0)
    actions = np.zeros(num_envs, dtype=np.int64)
    rounds = max(1, steps // num_envs)
    start = time.perf_counter()
    for _ in range(rounds):
        envs.step(actions)
    rate = rounds * num_envs / (time.perf_counter() - start)
    envs.close()
    return rate


# --- RLlib trials, outside Tune ---------------------------------------------

def build_dqn(algo: str, envs: int, learning_starts: int, iteration_steps: int,
              gpus: float = 0, vector_env_runner: bool = True,
              training: dict | None = None):
    """An RLlib algorithm of a DQN preset, as a sweep builds it, outside Tune;
    `vector_env_runner=False`: sampled by RLlib's own env runner; `training`
    overrides `.training()` values."""
    import torch

    from tune_rl.config import TrialSettings, build_config
    from tune_rl.envs import ENVS
    from tune_rl.presets import PRESETS

    torch.set_num_threads(1)  # as a trial runs (spec.torch_threads)
    ENVS["breakout"].register()
    settings = TrialSettings(
        rollout_fragment_length=4, envs_per_env_runner=envs,
        gpus_per_learner=gpus, vector_env_runner=vector_env_runner,
        min_env_steps_per_iteration=iteration_steps,
        training={"num_steps_sampled_before_learning_starts": learning_starts,
                  **(training or {})})
    return build_config(PRESETS[algo], ENVS["breakout"], {}, settings).build_algo()


def dqn_sampling_steps_per_s(envs: int, steps: int, vector_env_runner: bool = True,
                             epsilon: float | None = None) -> float:
    """RLlib's DQN sampling into its replay buffer before learning starts.

    At the preset's epsilon (1 for its first 20,000 steps) every action is
    random: tune-rl's VectorEnvRunner runs no forward pass then, RLlib's
    module runs one for every step. `epsilon=0.01` (the preset's value from
    270,000 steps on, most of a trial) runs the Q-network for 99% of the
    steps in both. Through VectorEnvRunner, or RLlib's own env runner."""
    training = {} if epsilon is None else {"epsilon": [[0, epsilon]]}
    algo = build_dqn("DQN", envs, learning_starts=10**9, iteration_steps=steps,
                     vector_env_runner=vector_env_runner, training=training)
    try:
        algo.train()  # first iteration: start-up
        return _train_rate(algo, 1)
    finally:
        algo.stop()


def q_network_ms_per_8_steps(batches: int) -> float:
    """CPU time of the DQN preset's greedy forward pass for 8 env steps, as
    VectorEnvRunner runs it (a batch per group of envs), on one torch
    thread, with its weights out of the CPU caches as they are there.

    Between two forward passes the runner steps emulators and stores frames;
    measured on 2 cores, the runner's main thread spent 4.1 ms of CPU per 8
    env steps at epsilon 0.01 against 1.3 at epsilon 1 (no forward pass):
    2.8 ms for two batches of 4, where a loop of forward passes takes 1.5.
    Touching 64 MB between calls gives the same 1.37 ms per batch of 4 (0.75
    with the 6.4 MB of the 3136x512 layer's weights still cached)."""
    import torch

    from tune_rl.config import build_config, build_module
    from tune_rl.env_runner import GROUPS
    from tune_rl.envs import ENVS
    from tune_rl.presets import PRESETS

    torch.set_num_threads(1)
    preset, env = PRESETS["DQN"], ENVS["breakout"]
    module = build_module(preset, env, build_config(preset, env, {}))
    module.eval()
    obs = torch.randint(0, 256, (8 // GROUPS, 84, 84, 4), dtype=torch.uint8)
    elsewhere = np.ones(64 * 2**20 // 8)
    spent = 0.0
    with torch.no_grad():
        module.greedy_actions(obs, noise=True)
        for _ in range(GROUPS * batches):
            elsewhere.sum()  # evicts the weights, as the emulators do
            start = time.thread_time()
            module.greedy_actions(obs, noise=True)
            spent += time.thread_time() - start
    return 1000 * spent / batches


def _train_rate(algo, iterations: int, results: list | None = None) -> float:
    """Env steps/s over `iterations` train() calls; their results appended to `results`."""
    steps0 = algo.metrics.peek(("env_runners", "num_env_steps_sampled_lifetime"), default=0)
    start = time.perf_counter()
    for _ in range(iterations):
        result = algo.train()
        if results is not None:
            results.append(result)
    return (result["num_env_steps_sampled_lifetime"] - steps0) / (time.perf_counter() - start)


def rainbow_learning(steps: int, envs: int = 8, gpus: float = 0,
                     one_call: bool = True) -> dict[str, float]:
    """Rainbow once learning has started: env steps/s and RLlib's update time
    per update of 32. `one_call`: a training step's K updates in one learner
    call (tune-rl's default, algorithm.py), else RLlib's K calls; RLlib's
    `learner_update_timer` times a call, so it is divided by K."""
    from tune_rl.algorithm import UPDATES_PER_LEARNER_CALL

    algo = build_dqn("Rainbow_DQN", envs, learning_starts=64, iteration_steps=steps,
                     gpus=gpus, training={"updates_in_one_learner_call": one_call})
    try:
        algo.train()  # start-up and the first updates
        results: list[dict] = []
        rate = _train_rate(algo, 1, results)
        call_s = algo.metrics.peek(("timers", "learner_update_timer"))
        per_call = float(results[-1][UPDATES_PER_LEARNER_CALL])  # numpy in the result
        return {"env_steps_per_s": rate, "update_ms": 1000 * call_s / per_call,
                "updates_per_call": per_call}
    finally:
        algo.stop()


def replay_bytes_per_transition(steps: int, preset: str = "DQN") -> float:
    """Bytes a full replay buffer of the preset holds per transition, on real
    Breakout steps (random actions, the default protocol: whole games)."""
    algo = build_dqn(preset, 8, learning_starts=10**9, iteration_steps=steps)
    try:
        episodes, sampled = [], 0
        while sampled < steps:
            chunk = algo.env_runner.sample(num_timesteps=64, random_actions=True)
            episodes.append(chunk)
            sampled += sum(len(e) for e in chunk)
        settings = {k: v for k, v in algo.config.replay_buffer_config.items() if k != "type"}
        buffer_class = type(algo.local_replay_buffer)
        return held_bytes_per_transition(
            lambda: buffer_class(**{**settings, "capacity": steps}), episodes)
    finally:
        algo.stop()


def held_bytes_per_transition(make_buffer, chunks: list[list]) -> float:
    """Memory a buffer keeps per transition it holds, everything counted:
    observations or frames, keys, actions, rewards, infos, RLlib's index lists
    and (prioritized) its sum trees, allocated here at the buffer's capacity.
    tracemalloc sees numpy's data as well as Python's objects; what `add`
    allocates and frees again is not counted. The caller keeps `chunks`
    (lists of episodes, as env runners return them) alive."""
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        buffer = make_buffer()
        for chunk in chunks:
            buffer.add(chunk)
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / buffer.get_num_timesteps()
    finally:
        tracemalloc.stop()


# --- the same Rainbow update in plain PyTorch ---------------------------------

def plain_pytorch_rainbow_update_ms(updates: int, device: str = "cpu") -> float:
    """One Rainbow update of our network without RLlib: double-Q C51 target,
    cross-entropy loss weighted by importance weights, backward, fused Adam.
    This is the bound an RLlib update can approach on the same device."""
    import gymnasium as gym
    import torch

    from tune_rl.config import build_config
    from tune_rl.envs import ENVS
    from tune_rl.presets import PRESETS

    torch.set_num_threads(1)
    config = build_config(PRESETS["Rainbow_DQN"], ENVS["breakout"], {})
    obs_space = gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)
    module = config.get_rl_module_spec(
        spaces={"default_policy": (obs_space, gym.spaces.Discrete(4))},
        inference_only=False).build()
    module.make_target_networks()  # as RLlib's learner does
    online = module.to(device)
    optimizer = torch.optim.Adam(online.parameters(), lr=6.25e-5, eps=1.5e-4, fused=True)
    batch, atoms, gamma_n = 32, 51, 0.99**3
    rng = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (batch, 84, 84, 4), dtype=torch.uint8, generator=rng).to(device)
    next_obs = torch.randint(0, 256, (batch, 84, 84, 4), dtype=torch.uint8,
                             generator=rng).to(device)
    actions = torch.randint(0, 4, (batch,), generator=rng).to(device)
    rewards = torch.randn(batch, generator=rng).clamp(-1, 1).to(device)
    weights = torch.rand(batch, generator=rng).to(device)
    support = torch.linspace(-10, 10, atoms, device=device)
    rows = torch.arange(batch, device=device)
    delta = 20 / (atoms - 1)

    def update() -> None:
        out = online.compute_q_values({"obs": torch.cat([obs, next_obs])})
        logits, next_q = out["qf_logits"][:batch], out["qf_preds"][batch:]
        with torch.no_grad():
            target = online.forward_target({"obs": next_obs})
            best = next_q.argmax(-1)
            next_probs = target["qf_probs"][rows, best]
            tz = (rewards[:, None] + gamma_n * support[None]).clamp(-10, 10)
            b = (tz + 10) / delta
            lower, upper = b.floor().long(), b.ceil().long()
            projected = torch.zeros(batch, atoms, device=device)
            projected.scatter_add_(1, lower, next_probs * (upper.float() - b + (lower == upper)))
            projected.scatter_add_(1, upper, next_probs * (b - lower.float()))
        log_probs = torch.log_softmax(logits[rows, actions], -1)
        loss = (-(projected * log_probs).sum(-1) * weights).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    update()
    _sync(device)
    start = time.perf_counter()
    for _ in range(updates):
        update()
    _sync(device)
    return 1000 * (time.perf_counter() - start) / updates


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --- sweeps under Tune ------------------------------------------------------------

def sweep_trial(algo: str, steps: int, iteration_steps: int, training: dict | None = None,
                trials: int = 1, profile: str = "quick", **overrides: Any) -> dict[str, Any]:
    """A real `tune-rl sweep` of `trials` trials (all at once), as a user runs
    it: start-up to first result, per-trial and total env steps/s. `overrides`
    are spec fields (env_runners, gpus_per_learner, ...) over `profile`'s."""
    from tune_rl.plan import plan_sweep
    from tune_rl.runner import run_sweep
    from tune_rl.spec import load_spec

    with tempfile.TemporaryDirectory() as folder:
        spec = load_spec(algo, profile=profile, trials=trials, max_env_steps=steps,
                         evaluation=False, **overrides,
                         min_env_steps_per_iteration=iteration_steps, grace_env_steps=steps,
                         max_concurrent=trials, training=training or {},
                         name=f"bench-{algo}-{trials}", storage_path=f"{folder}/ray_results",
                         tracking_uri=f"sqlite:///{folder}/mlflow.db")
        start = time.time()
        run_sweep(plan_sweep(spec))
        per_trial = [_result_rate(path) for path in
                     _result_files(f"{folder}/ray_results/{spec.name}")]
        first = min(r["first_timestamp"] for r in per_trial)
    return {"startup_s": first - start, "params": per_trial[0]["params"],
            "per_trial_env_steps_per_s": statistics.mean(r["rate"] for r in per_trial),
            "total_env_steps_per_s": sum(r["rate"] for r in per_trial)}


def _result_files(sweep_dir: str) -> list[str]:
    return [os.path.join(sweep_dir, d, "result.json") for d in os.listdir(sweep_dir)
            if os.path.isfile(os.path.join(sweep_dir, d, "result.json"))]


def _result_rate(path: str) -> dict[str, float]:
    """Env steps/s between a trial's first and last result, by the wall clock
    Tune stamped on them (so Tune, MLflow and checkpoints count), at Tune's
    one-second resolution; never faster than the trainable's own timing."""
    import json

    with open(path) as f:
        results = [json.loads(line) for line in f if line.strip()]
    first, last = results[0], results[-1]
    steps = last["num_env_steps_sampled_lifetime"] - first["num_env_steps_sampled_lifetime"]
    busy = last["time_total_s"] - first["time_total_s"]
    wall = max(last["timestamp"] - first["timestamp"], busy, 1e-9)
    return {"rate": steps / wall, "first_timestamp": first["timestamp"],
            "params": first["config"]}


def bare_loop_env_steps_per_s(algo: str, steps: int, iteration_steps: int,
                              training: dict | None = None,
                              params: dict | None = None) -> float:
    """A trial of `params` (default: each parameter's first value), as
    `sweep_trial` configures it, trained in a plain loop: no Tune, Optuna,
    ASHA, MLflow or checkpoints."""
    import torch

    from tune_rl.plan import representative_params, resolve_plan
    from tune_rl.spec import load_spec

    spec = load_spec(algo, max_env_steps=steps, evaluation=False,
                     min_env_steps_per_iteration=iteration_steps, training=training or {})
    plan = resolve_plan(spec)
    params = params or representative_params(plan.space)
    torch.set_num_threads(spec.torch_threads)
    trial = plan.trainable()(config=params)
    try:
        result = trial.train()
        steps0, start = result["num_env_steps_sampled_lifetime"], time.perf_counter()
        while result["num_env_steps_sampled_lifetime"] < steps:
            result = trial.train()
        return (result["num_env_steps_sampled_lifetime"] - steps0) / (time.perf_counter() - start)
    finally:
        trial.stop()


def concurrent_rainbow_steps_per_s(processes: int, steps: int) -> float:
    """Aggregate env steps/s of `processes` Rainbow trials learning at once."""
    code = ("import ray, sys; sys.path.insert(0, 'benchmarks'); import measure; "
            "ray.init(num_cpus=1, include_dashboard=False, logging_level='ERROR', "
            "log_to_driver=False); "
            f"print('RATE', measure.rainbow_learning({steps})['env_steps_per_s'])")
    runs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             stderr=subprocess.DEVNULL) for _ in range(processes)]
    rates = []
    for run in runs:
        out, _ = run.communicate()
        rates += [float(line.split()[1]) for line in out.splitlines() if line.startswith("RATE")]
    return sum(rates) if len(rates) == processes else math.nan


# --- MLflow -----------------------------------------------------------------------

class BenchTrial:
    """The parts of a Tune trial that the tracking callback reads."""

    trial_id = "bench0001"
    config = {"lr": 1e-4, "conv_filters": "nature", "target_network_update_freq": 500}
    error_file = None
    last_result: dict = {}

    def __str__(self) -> str:
        return "DQN_bench0001"


def mlflow_ms_per_result(results: int) -> float:
    """Our tracking callback's cost per trial result on the embedded SQLite store."""
    from tune_rl.tracking import MLflowTracking

    with tempfile.TemporaryDirectory() as folder:
        tracking = MLflowTracking(f"sqlite:///{folder}/mlflow.db", "bench", "bench-sweep",
                                  {"algo": "DQN"}, {"algorithm": "DQN", "env": "breakout"})
        tracking.start_sweep()
        trial = BenchTrial()
        tracking.on_trial_start(0, [], trial)
        result = {"score": 1.0, "num_env_steps_sampled_lifetime": 0, "training_iteration": 0,
                  "time_this_iter_s": 1.0,
                  "env_runners": {"episode_return_mean": 1.0, "episode_return_min": 0.0,
                                  "episode_return_max": 3.0, "episode_len_mean": 200.0,
                                  "num_env_steps_sampled": 1000},
                  "learners": {"default_policy": {"total_loss": 0.5, "qf_loss": 0.4}}}
        start = time.perf_counter()
        for i in range(1, results + 1):
            result["num_env_steps_sampled_lifetime"] = 1000 * i
            result["training_iteration"] = i
            tracking.on_trial_result(i, [], trial, result)
        return 1000 * (time.perf_counter() - start) / results
