"""Evaluation plays complete games greedily, unbiased by short games, on fresh seeds.

Every check runs a real RLlib module (built from a preset's config, or taken
from a trained Algorithm) through `evaluate`; nothing is mocked.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from tune_rl.config import TrialSettings, build_config, policy_observation_space
from tune_rl.envs import ENVS, SCORE_KEY, EnvChoice
from tune_rl.evaluation import (
    _PolicyInput,
    evaluate,
    evaluation_seed,
    greedy_actions,
    policy_module,
)
from tune_rl.presets import PRESETS

SHORTEST, LONGEST = 10, 199  # game lengths, uniform: true mean 104.5
TRUE_MEAN = (SHORTEST + LONGEST) / 2


class LengthIsReturn(gym.Env):
    """A game whose return is its length, drawn uniformly at reset; actions
    are ignored. With `score_per_step`, info carries a real score apart from
    the (clipped) reward, as Breakout's ClipRewardKeepScore does."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)  # CartPole's shape
    action_space = gym.spaces.Discrete(2)

    def __init__(self, config: dict):
        self._score_per_step = config.get("score_per_step")

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._left = int(self.np_random.integers(SHORTEST, LONGEST + 1))
        self._steps = 0
        return self.observation_space.sample(), self._info()

    def step(self, action):
        self._left -= 1
        self._steps += 1
        return self.observation_space.sample(), 1.0, self._left == 0, False, self._info()

    def _info(self) -> dict:
        if self._score_per_step is None:
            return {}
        return {SCORE_KEY: self._score_per_step * self._steps}


TOY = EnvChoice("length_is_return", LengthIsReturn, False, "toy", (4,))
PPO = PRESETS["PPO"]


def build_module(preset_name: str, env: EnvChoice):
    preset = PRESETS[preset_name]
    torch.manual_seed(0)
    sample_env = env.make({})
    spaces = (policy_observation_space(preset, env), sample_env.action_space)
    sample_env.close()
    config = build_config(preset, env, {})
    return config.get_rl_module_spec(spaces={"default_policy": spaces},
                                     inference_only=False).build()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One thread, as a trial on a shared machine has: with the cores busy
    (other tests, sweeps), torch's idle threads spin on these small forward
    passes, 1.6 s of the toy evaluation becoming 34."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def toy_module():
    return build_module("PPO", TOY)


def test_eight_envs_measure_the_true_mean_where_the_first_to_finish_would_not(toy_module):
    result = evaluate(toy_module, PPO, TOY, episodes=500, seed=3, num_envs=8)
    assert result.episodes == 500 and result.capped == 0
    assert result.scores == tuple(float(n) for n in result.lengths)
    assert result.mean == pytest.approx(TRUE_MEAN, rel=0.05)
    low, high = result.interval
    assert low < TRUE_MEAN < high
    assert result.env_steps == sum(result.lengths) and result.seconds > 0
    # What RLlib's sample(num_episodes=3) keeps of 8 games played at once:
    # the 3 that finish first.
    first_to_finish = [n for i in range(0, 500, 8) for n in sorted(result.lengths[i:i + 8])[:3]]
    assert np.mean(first_to_finish) < 0.7 * TRUE_MEAN


def test_each_seed_plays_other_games_and_a_seed_replays_its_own(toy_module):
    def games(seed: int, num_envs: int = 8) -> tuple:
        return evaluate(toy_module, PPO, TOY, episodes=20, seed=seed, num_envs=num_envs).scores

    first = games(evaluation_seed(trial_seed=0, env_steps=10_000))
    later = games(evaluation_seed(trial_seed=0, env_steps=20_000))
    assert first != later
    assert games(evaluation_seed(0, 10_000)) == first
    # Games are assigned up front, not taken as they finish: the envs' number
    # changes who plays each game, never the games.
    assert games(evaluation_seed(0, 10_000), num_envs=3) == first


def test_the_score_is_the_games_own_and_the_cap_ends_stalled_games(toy_module):
    real = evaluate(toy_module, PPO, TOY, episodes=16, seed=1,
                    env_config={"score_per_step": 7})
    assert real.scores == tuple(7.0 * n for n in real.lengths)

    free = evaluate(toy_module, PPO, TOY, episodes=16, seed=1)
    capped = evaluate(toy_module, PPO, TOY, episodes=16, seed=1, max_frames_per_game=50)
    assert capped.cap_unit == "env steps" and capped.cap == 50
    assert capped.lengths == tuple(min(n, 50) for n in free.lengths)
    assert capped.capped == sum(n > 50 for n in free.lengths) > 0


def test_ppo_evaluates_greedily_on_breakout():
    breakout = ENVS["breakout"]
    module = build_module("PPO", breakout)
    obs = torch.rand(64, 84, 84, 4)
    logits = module.forward_inference({"obs": obs})["action_dist_inputs"]
    assert torch.equal(greedy_actions(module, obs), logits.argmax(-1))

    def play():
        return evaluate(module, PPO, breakout, episodes=2, seed=5,
                        max_frames_per_game=2_000, num_envs=2)

    first, again = play(), play()
    assert (first.scores, first.lengths) == (again.scores, again.lengths)
    # A sweep that ends learning episodes at each lost life still evaluates whole games.
    lives = evaluate(module, PPO, breakout, episodes=2, seed=5, max_frames_per_game=2_000,
                     num_envs=2, env_config={"terminal_on_life_loss": True})
    assert lives.lengths == first.lengths


def test_ppo_sees_four_frames_stacked_as_rllibs_connector_stacks_them():
    breakout = ENVS["breakout"]
    env = breakout.make({"stack_frames_in_env": False})
    try:
        frame, _ = env.reset(seed=0)
        frames = [frame] + [env.step(0)[0] for _ in range(4)]
    finally:
        env.close()
    policy_input = _PolicyInput(PPO, breakout)
    stacks = [policy_input.reset(frames[0])] + [policy_input.step(f) for f in frames[1:]]
    assert all(policy_observation_space(PPO, breakout).contains(s) for s in stacks)
    # RLlib's FrameStackingEnvToModule fills the slots before the first frame with zeros.
    assert not stacks[0][..., :3].any() and np.array_equal(stacks[0][..., 3:], frames[0])
    assert np.array_equal(stacks[4], np.concatenate(frames[1:5], axis=-1))
    rainbow = PRESETS["Rainbow_DQN"]
    env = breakout.make({"stack_frames_in_env": True})
    try:
        obs, _ = env.reset(seed=0)
    finally:
        env.close()
    assert policy_observation_space(rainbow, breakout).contains(
        _PolicyInput(rainbow, breakout).reset(obs))


def head_outputs(module, forward) -> list[torch.Tensor]:
    """What the Q heads output during one call of `forward`, read by forward hooks."""
    seen: list[torch.Tensor] = []
    heads = [module.af, module.vf] if module.uses_dueling else [module.af]
    hooks = [head.register_forward_hook(lambda _m, _in, out: seen.append(out.detach().clone()))
             for head in heads]
    try:
        forward()
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def test_noisy_dqn_evaluates_with_its_noise_off_and_dqn_without_epsilon():
    breakout = ENVS["breakout"]
    obs = {"obs": torch.randint(0, 256, (32, 84, 84, 4), dtype=torch.uint8)}
    for name in ("Noisy_DQN", "Rainbow_DQN"):
        module = build_module(name, breakout)
        greedy = [head_outputs(module, lambda m=module: m.forward_inference(obs))
                  for _ in range(2)]
        exploring = [head_outputs(module, lambda m=module: m.forward_exploration(obs, t=0))
                     for _ in range(2)]
        # Q-value distributions' logits, not just the argmax: the same in
        # inference, redrawn noise while exploring.
        assert greedy[0] and all(torch.equal(a, b) for a, b in zip(*greedy, strict=True)), name
        assert not any(torch.equal(a, b) for a, b in zip(*exploring, strict=True)), name

    module = build_module("DQN", breakout)  # epsilon starts at 1.0: random while exploring
    q = module.compute_q_values(obs)["qf_preds"]
    assert torch.equal(greedy_actions(module, obs["obs"]), q.argmax(-1))
    assert not torch.equal(module.forward_exploration(obs, t=0)["actions"], q.argmax(-1))


def test_breakout_games_report_real_scores_and_stop_at_the_frame_cap():
    breakout = ENVS["breakout"]
    module = build_module("Rainbow_DQN", breakout)
    result = evaluate(module, PRESETS["Rainbow_DQN"], breakout, episodes=2, seed=0,
                      max_frames_per_game=300, env_config={"repeat_action_probability": 0.25})
    assert result.cap_unit == "frames" and result.cap == 300
    # Five lives of Breakout outlast 300 frames: both games are cut at the cap.
    assert result.capped == 2
    assert all(0 < n <= 300 // 4 for n in result.lengths)  # 4 frames per agent step
    assert result.env_steps == sum(result.lengths)
    assert all(s >= 0 and s == int(s) for s in result.scores)


@pytest.mark.parametrize("algo_name,learners", [("PPO", 0), ("IMPALA", 1), ("IMPALA", 0)])
def test_policy_module_holds_the_learners_latest_weights(local_ray, algo_name, learners):
    cartpole = ENVS["cartpole"]
    cartpole.register()
    training = {"train_batch_size": 256}
    if algo_name == "PPO":
        training.update(minibatch_size=64, num_epochs=1)
    settings = TrialSettings(min_env_steps_per_iteration=200, training=training)
    config = build_config(PRESETS[algo_name], cartpole, {}, settings).learners(
        num_learners=learners)
    algo = config.build_algo()
    try:
        algo.train()
        algo.train()
        module = policy_module(algo)
        learner = algo.learner_group.get_state(
            components="learner/rl_module/default_policy", inference_only=True
        )["learner"]["rl_module"]["default_policy"]
        ours = module.get_state(inference_only=True)
        assert learner.keys() <= ours.keys()
        assert all(np.allclose(learner[k], np.asarray(ours[k])) for k in learner)
        if algo_name == "PPO":  # the learner's own module, no copy
            assert policy_module(algo) is module
        else:  # IMPALA's learner updates in its own thread: a snapshot
            assert module is not algo.get_module() and module is not policy_module(algo)
        result = evaluate(module, PRESETS[algo_name], cartpole, episodes=4, seed=0)
        assert result.episodes == 4 and result.capped == 0
    finally:
        algo.stop()
