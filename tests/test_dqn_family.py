"""The DQN-family presets build the networks their names promise, and learn.

Each check looks at the module RLlib builds from the preset (or runs it), not
at the config dict: on RLlib's new stack `noisy`, `sigma0` and `hiddens` are
keys nothing reads, so a config-level test would pass on a network without
them.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from tune_rl.config import TrialSettings, build_config
from tune_rl.envs import ENVS
from tune_rl.networks import NoisyLinear
from tune_rl.presets import PRESETS
from tune_rl.replay import FrameEpisodeReplayBuffer, FramePrioritizedEpisodeReplayBuffer

DQN_FAMILY = [name for name, preset in PRESETS.items() if preset.is_dqn]
OBS = gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)  # as the env gives them (envs.py)
ACTIONS = gym.spaces.Discrete(4)


def build_module(name: str, params: dict | None = None, inference_only: bool = False):
    config = build_config(PRESETS[name], ENVS["breakout"], params or {})
    spec = config.get_rl_module_spec(spaces={"default_policy": (OBS, ACTIONS)},
                                     inference_only=inference_only)
    return spec.build()


def noisy_layers(module) -> list[NoisyLinear]:
    return [m for m in module.modules() if isinstance(m, NoisyLinear)]


def linear_sizes(head) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in head.layers]


def batch(n: int = 8, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {"obs": torch.randint(0, 256, (n, 84, 84, 4), generator=generator,
                                 dtype=torch.uint8)}


def test_noisy_presets_have_noisy_layers_and_plain_dqn_has_none():
    for name in DQN_FAMILY:
        layers = noisy_layers(build_module(name))
        assert bool(layers) == (name in ("Noisy_DQN", "Rainbow_DQN")), name
    sigmas = [n for n, _ in build_module("Rainbow_DQN").named_parameters() if "sigma" in n]
    assert sigmas and all(n.startswith(("af.", "vf.", "_target")) for n in sigmas)


def test_sigma0_sets_the_noise_scale():
    """Fortunato et al.: sigma starts at sigma0 / sqrt(fan-in)."""
    for sigma0 in (0.1, 0.9):
        layer = noisy_layers(build_module("Noisy_DQN", {"sigma0": sigma0}))[0]
        expected = sigma0 / math.sqrt(layer.in_features)
        assert torch.allclose(layer.weight_sigma, torch.full_like(layer.weight_sigma, expected))


def noise_flags_and_outputs(module, forward) -> tuple[list[bool], list[torch.Tensor]]:
    """Runs `forward()`, recording the `noise` argument and the output of
    every noisy layer call."""
    flags, outputs = [], []

    def record(_layer, args, out) -> None:
        flags.append(args[1] if len(args) > 1 else True)
        outputs.append(out.detach().clone())

    hooks = [layer.register_forward_hook(record) for layer in noisy_layers(module)]
    try:
        forward()
    finally:
        for hook in hooks:
            hook.remove()
    return flags, outputs


def test_noise_explores_in_exploration_and_is_off_in_evaluation():
    module = build_module("Rainbow_DQN")
    obs = batch()
    # Greedy inference: every noisy layer runs on its mean weights, so the
    # distributions (not only the argmax) are identical from call to call.
    flags, first = noise_flags_and_outputs(module, lambda: module.forward_inference(obs))
    _, second = noise_flags_and_outputs(module, lambda: module.forward_inference(obs))
    assert flags and not any(flags)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    # Exploration draws new noise at every forward pass.
    flags, first = noise_flags_and_outputs(module, lambda: module.forward_exploration(obs, t=0))
    _, second = noise_flags_and_outputs(module, lambda: module.forward_exploration(obs, t=0))
    assert flags and all(flags)
    assert not any(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    # Epsilon is 0 with noisy nets (Hessel et al. 2018): the noise explores.
    assert build_config(PRESETS["Rainbow_DQN"], ENVS["breakout"], {}).epsilon == 0.0
    # The vector env runner's greedy_actions: the same argmax, the same noise rule.
    with torch.no_grad():
        greedy = module.forward_inference(obs)["actions"]
        flags, _ = noise_flags_and_outputs(
            module, lambda: module.greedy_actions(obs["obs"], noise=False))
        assert not any(flags) and torch.equal(module.greedy_actions(obs["obs"], False), greedy)
        flags, _ = noise_flags_and_outputs(
            module, lambda: module.greedy_actions(obs["obs"], noise=True))
        assert flags and all(flags)


def test_the_target_network_draws_its_own_noise():
    """In training, the target net's noise is not the online net's sample:
    with the two nets' weights made equal, the online net's Q on the next
    observations (double Q) and the target's differ; with noise off they are
    the same, which shows the weights really are equal."""
    module = build_module("Rainbow_DQN")
    module.make_target_networks()  # as the learner does
    for online, target in module.get_target_network_pairs():
        target.load_state_dict(online.state_dict())
    train_batch = {"obs": batch(seed=0)["obs"], "new_obs": batch(seed=1)["obs"]}
    out = module.forward_train(train_batch)
    assert not torch.allclose(out["qf_next_preds"], out["qf_target_next_preds"])
    module.noisy = False
    out = module.forward_train(train_batch)
    assert torch.allclose(out["qf_next_preds"], out["qf_target_next_preds"])


def test_noisy_layer_is_the_papers_factorised_gaussian():
    """y = x (mu + sigma * f(eps_out) f(eps_in)^T)^T + mu_b + sigma_b * f(eps_out)."""
    layer = NoisyLinear(5, 3, sigma0=0.5)
    with torch.no_grad():
        layer.weight_sigma.uniform_(0.1, 1.0)
        layer.bias_sigma.uniform_(0.1, 1.0)
    x = torch.randn(4, 5)
    torch.manual_seed(7)
    y = layer(x)
    torch.manual_seed(7)
    f_in = NoisyLinear._scaled_noise(5, x.device)
    f_out = NoisyLinear._scaled_noise(3, x.device)
    weight = layer.weight_mu + layer.weight_sigma * torch.outer(f_out, f_in)
    bias = layer.bias_mu + layer.bias_sigma * f_out
    assert torch.allclose(y, x @ weight.T + bias, atol=1e-6)
    assert torch.equal(layer(x, noise=False), x @ layer.weight_mu.T + layer.bias_mu)


def test_every_dqn_preset_has_natures_hidden_layer_and_encoder():
    for name in DQN_FAMILY:
        module = build_module(name)
        atoms = PRESETS[name].training["num_atoms"]
        assert linear_sizes(module.af) == [(3136, 512), (512, 4 * atoms)], name
        convs = [m for m in module.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
        assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == \
            [(32, 8, 4), (64, 4, 2), (64, 3, 1)]


def test_dueling_with_atoms_has_a_value_distribution_that_shapes_q():
    module = build_module("Rainbow_DQN")
    assert linear_sizes(module.vf) == [(3136, 512), (512, 51)]
    module._noise = False
    obs = batch()
    before = module.compute_q_values(obs)["qf_preds"].clone()
    with torch.no_grad():
        module.vf.layers[-1].bias_mu += torch.linspace(-3.0, 3.0, 51)
    after = module.compute_q_values(obs)["qf_preds"]
    assert not torch.allclose(before, after, atol=1e-4), "the value stream is cancelled"


def test_plain_dqn_has_no_value_stream_and_dueling_has_one():
    assert not hasattr(build_module("DQN"), "vf")
    assert linear_sizes(build_module("Dueling_DQN").vf) == [(3136, 512), (512, 1)]


def test_named_filter_stacks_use_valid_padding():
    from tune_rl.spaces import conv_output_size

    assert conv_output_size("nature") == 3136
    assert conv_output_size("small") == 2592
    assert conv_output_size("wide") == 6272
    module = build_module("DQN", {"conv_filters": "small"})
    assert linear_sizes(module.af)[0] == (2592, 512)


def flat_weights(algo) -> torch.Tensor:
    module = algo.learner_group._learner.module["default_policy"]
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


@pytest.mark.slow
@pytest.mark.parametrize("name", DQN_FAMILY)
def test_each_dqn_preset_takes_real_gradient_steps_on_breakout(local_ray, name):
    """Learning starts lowered to 64 env steps so a tiny budget reaches updates."""
    settings = TrialSettings(rollout_fragment_length=4, min_env_steps_per_iteration=96,
                             max_env_steps=192,
                             training={"num_steps_sampled_before_learning_starts": 64})
    ENVS["breakout"].register()
    algo = build_config(PRESETS[name], ENVS["breakout"], {}, settings).build_algo()
    try:
        before = flat_weights(algo)
        torch.set_flush_denormal(False)
        assert torch.tensor([1e-39]).mul(1.0).item() != 0.0  # a subnormal float
        results = [algo.train() for _ in range(2)]
        learner = results[-1]["learners"]["default_policy"]
        assert math.isfinite(learner["qf_loss"]) and math.isfinite(learner["total_loss"])
        assert learner["num_module_steps_trained"] > 0
        assert not torch.equal(before, flat_weights(algo)), "no weight changed"
        # DQNConfig's adam_epsilon reaches Adam (RLlib's own learner drops it).
        optimizer = algo.learner_group._learner.get_optimizer()
        assert optimizer.defaults["eps"] == algo.config.adam_epsilon
        # The update (here, on this thread) flushes subnormals to zero: on CPU,
        # Adam's decaying state otherwise turns subnormal and slow (learner.py).
        assert torch.tensor([1e-39]).mul(1.0).item() == 0.0
        buffer = algo.local_replay_buffer
        # Trained from a frame buffer (replay.py) at Dopamine's capacity.
        frame_class = (FramePrioritizedEpisodeReplayBuffer if PRESETS[name].prioritized_replay
                       else FrameEpisodeReplayBuffer)
        assert type(buffer) is frame_class and buffer.capacity == 1_000_000
        assert buffer.frames_mode and buffer.frames
        if PRESETS[name].prioritized_replay:
            # beta anneals from 0.5 towards 1 over the trial's 192 env steps.
            assert 0.5 < buffer.beta <= 1.0
    finally:
        algo.stop()


@pytest.mark.slow
def test_rainbow_learns_cartpole_in_8000_env_steps(local_ray):
    """Greedy evaluation (noise off) after 8,000 env steps: random play scores ~22.

    CartPole's returns reach 100 (discounted), so the support is widened from
    Atari's clipped-reward [-10, 10]; the Atari schedules are CartPole-sized.
    """
    settings = TrialSettings(
        rollout_fragment_length=4, min_env_steps_per_iteration=1000, max_env_steps=8000,
        training={"lr": 5e-4, "target_network_update_freq": 500, "v_min": 0.0, "v_max": 100.0,
                  "num_steps_sampled_before_learning_starts": 1000})
    ENVS["cartpole"].register()
    algo = build_config(PRESETS["Rainbow_DQN"], ENVS["cartpole"], {}, settings).build_algo()
    try:
        for _ in range(8):
            algo.train()
        greedy = algo.evaluate()["env_runners"]["episode_return_mean"]
        assert greedy >= 75, greedy
    finally:
        algo.stop()


def test_list_shows_each_presets_components_and_real_layers(capsys):
    from tune_rl.cli import main

    assert main(["list"]) == 0
    blocks = capsys.readouterr().out.split("\n\n")[0]
    by_algo = {}
    for line in blocks.splitlines():
        if not line.startswith(" "):
            current = line.split()[0]
        by_algo.setdefault(current, []).append(line)
    rainbow, dqn = "\n".join(by_algo["Rainbow_DQN"]), "\n".join(by_algo["DQN"])
    assert "noisy True" in rainbow and "vf.layers.1: NoisyLinear(512->51)" in rainbow
    assert "noisy False" in dqn and "NoisyLinear" not in dqn
    assert "af.layers.0: Linear(3136->512)" in dqn


def test_uint8_frames_are_scaled_like_float_frames():
    module = build_module("DQN")
    frames = batch()
    scaled = {"obs": frames["obs"].float() / 255.0}
    assert torch.allclose(module.compute_q_values(frames)["qf_preds"],
                          module.compute_q_values(scaled)["qf_preds"])


@pytest.mark.parametrize("env_runners, envs", [(0, 1), (0, 8), (3, 8)])
def test_one_update_of_32_per_4_env_steps_whatever_the_sampling(env_runners, envs):
    """RLlib's own round-robin weights: sample rounds vs update rounds."""
    from ray.rllib.algorithms.dqn.dqn import calculate_rr_weights

    settings = TrialSettings(env_runners=env_runners, envs_per_env_runner=envs,
                             rollout_fragment_length=4)
    config = build_config(PRESETS["DQN"], ENVS["breakout"], {}, settings)
    sample_rounds, update_rounds = calculate_rr_weights(config)
    sampled = sample_rounds * 4 * envs * max(env_runners, 1)
    trained = update_rounds * config.train_batch_size
    assert trained / sampled == pytest.approx(8)
