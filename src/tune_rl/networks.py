"""The DQN-family network: noisy layers, the hidden layer, dueling per atom.

RLlib's new-stack DQN module (DefaultDQNTorchRLModule, Ray 2.60) silently
ignores three things the presets name:
- `noisy` and `sigma0` are old-stack keys: no new-stack module reads them, so
  Noisy_DQN built the same network as DQN;
- `hiddens` is old-stack too: the Q head was one Linear over the encoder;
- with atoms, its dueling adds one scalar value to every atom's logit, which
  the softmax cancels: the value stream had no effect on the output.

`TuneRLDQNModule` keeps RLlib's module (encoder, target networks, learner,
epsilon schedule) and replaces only the heads and the way they combine, so
DQNTorchLearner runs on it unchanged. It is registered per trial through
`.rl_module(rl_module_spec=...)` in config.py.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from ray.rllib.algorithms.dqn.default_dqn_rl_module import (
    ATOMS,
    QF_LOGITS,
    QF_PREDS,
    QF_PROBS,
)
from ray.rllib.algorithms.dqn.dqn_catalog import DQNCatalog
from ray.rllib.algorithms.dqn.torch.default_dqn_torch_rl_module import DefaultDQNTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.models.base import ENCODER_OUT
from torch import nn


class NoisyLinear(nn.Module):
    """Factorised-Gaussian noisy linear layer (Fortunato et al. 2018, section 3).

    weight = mu + sigma * f(eps_out) f(eps_in)^T, f(x) = sign(x) sqrt(|x|).
    The noise is drawn inside `forward`, never kept in buffers: buffers would
    be synced to env runners, copied into the target net and checkpointed.
    With `noise=False` the layer is its mean (greedy evaluation).
    """

    def __init__(self, in_features: int, out_features: int, sigma0: float):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(
            torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        # The paper's initial noise scale: sigma0 / sqrt(fan-in).
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma0 * bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma0 * bound))

    @staticmethod
    def _scaled_noise(size: int, device: torch.device) -> torch.Tensor:
        x = torch.randn(size, device=device)
        return x.sign() * x.abs().sqrt()

    def forward(self, x: torch.Tensor, noise: bool = True) -> torch.Tensor:
        mean = nn.functional.linear(x, self.weight_mu, self.bias_mu)
        if not noise:
            return mean
        eps_in = self._scaled_noise(self.in_features, x.device)
        eps_out = self._scaled_noise(self.out_features, x.device)
        # x (mu + sigma * outer(eps_out, eps_in))^T, without building the
        # noisy weight matrix: ((x * eps_in) sigma^T) * eps_out.
        noise_part = nn.functional.linear(x * eps_in, self.weight_sigma) * eps_out
        return mean + noise_part + self.bias_sigma * eps_out


class QHead(nn.Module):
    """Hidden layers (ReLU) and an output layer, each noisy or plain."""

    def __init__(self, in_features: int, hiddens: list[int], out_features: int,
                 noisy: bool, sigma0: float):
        super().__init__()
        sizes = [in_features, *hiddens, out_features]
        self.layers = nn.ModuleList(
            NoisyLinear(a, b, sigma0) if noisy else nn.Linear(a, b)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.noisy = noisy

    def forward(self, x: torch.Tensor, noise: bool = True) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x, noise) if self.noisy else layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class TuneRLDQNCatalog(DQNCatalog):
    """RLlib's DQN catalog with our heads.

    The value head has `num_atoms` outputs (a value distribution), not 1.
    Note: RLlib only logs errors raised in a catalog's constructor; they
    surface later as an AttributeError, so this class reads settings lazily.
    """

    def _head(self, out_features: int) -> QHead:
        config = self._model_config_dict
        return QHead(int(self.latent_dims[0]), list(config.get("head_fcnet_hiddens") or []),
                     out_features, bool(config.get("noisy", False)),
                     float(config.get("std_init", 0.5)))  # DQNConfig passes sigma0 as std_init

    def build_af_head(self, framework: str) -> QHead:
        return self._head(int(self.action_space.n * self.num_atoms))

    def build_vf_head(self, framework: str) -> QHead:
        return self._head(int(self.num_atoms))


class TuneRLDQNModule(DefaultDQNTorchRLModule):
    """RLlib's DQN module with noisy heads and per-atom dueling.

    Noise is on while exploring and training and off in greedy inference
    (evaluation). RLlib puts the module in eval mode for exploration too, so
    noise is switched by which forward runs, not by `self.training`. The
    online net evaluates obs and next obs (double Q) in one pass with one
    noise sample, as Kaixhin's Rainbow does; the target net draws its own.
    """

    def __init__(self, *args, **kwargs):
        kwargs["catalog_class"] = TuneRLDQNCatalog
        super().__init__(*args, **kwargs)

    def setup(self):
        super().setup()
        self.noisy: bool = bool(self.model_config.get("noisy", False))
        self._noise = self.noisy

    def _forward_inference(self, batch: dict[str, Any]) -> dict[str, Any]:
        self._noise = False
        try:
            return super()._forward_inference(batch)
        finally:
            self._noise = self.noisy

    def _forward_exploration(self, batch: dict[str, Any], t: int) -> dict[str, Any]:
        self._noise = self.noisy
        return super()._forward_exploration(batch, t)

    def greedy_actions(self, obs: torch.Tensor, noise: bool) -> torch.Tensor:
        """The argmax-Q action of each observation, with the noise exploration
        (True) or evaluation (False) has; what `_forward_exploration` computes
        before its epsilon draw (env_runner.epsilon_greedy draws that itself)."""
        self._noise = noise and self.noisy
        try:
            return self.compute_q_values({Columns.OBS: obs})[QF_PREDS].argmax(dim=-1)
        finally:
            self._noise = self.noisy

    def _forward_train(self, batch: dict[str, Any]) -> dict[str, Any]:
        self._noise = self.noisy
        return super()._forward_train(batch)

    def _qf_forward_helper(self, batch, encoder, head) -> dict[str, Any]:
        obs = batch[Columns.OBS]
        if obs.dtype == torch.uint8:
            # Breakout frames as the env and the replay buffer keep them
            # (envs.py: a quarter of float32's memory), scaled here.
            batch = {**batch, Columns.OBS: obs.float() / 255.0}
        encoder_outs = encoder(batch)
        features = encoder_outs[ENCODER_OUT]
        actions, atoms = self.action_space.n, self.num_atoms
        if self.uses_dueling:
            advantages = head["af"](features, self._noise).view(-1, actions, atoms)
            value = head["vf"](features, self._noise).view(-1, 1, atoms)
            # Per atom (Wang et al. 2016, eq. 9; Hessel et al. 2018, eq. 4):
            # centred over actions, so the value stream shapes each atom.
            out = value + advantages - advantages.mean(dim=1, keepdim=True)
        else:
            out = head(features, self._noise).view(-1, actions, atoms)
        output: dict[str, Any] = {}
        if atoms > 1:
            support = torch.linspace(self.v_min, self.v_max, atoms, device=out.device)
            probs = torch.softmax(out, dim=-1)
            output[ATOMS] = support
            output[QF_LOGITS] = out
            output[QF_PROBS] = probs
            output[QF_PREDS] = (probs * support).sum(dim=-1)
        else:
            output[QF_PREDS] = out.squeeze(-1)
        if Columns.STATE_OUT in encoder_outs:
            output[Columns.STATE_OUT] = encoder_outs[Columns.STATE_OUT]
        return output


def describe_module(module: nn.Module) -> dict[str, Any]:
    """What a built module really holds: layers with their sizes, noisy or not."""
    layers = []
    for name, sub in module.named_modules():
        if name.startswith("_target"):
            continue
        if isinstance(sub, nn.Conv2d):
            layers.append(f"{name}: Conv2d({sub.in_channels}->{sub.out_channels}, "
                          f"k{sub.kernel_size[0]}, s{sub.stride[0]}, pad {sub.padding})")
        elif isinstance(sub, NoisyLinear):
            layers.append(f"{name}: NoisyLinear({sub.in_features}->{sub.out_features})")
        elif isinstance(sub, nn.Linear):
            layers.append(f"{name}: Linear({sub.in_features}->{sub.out_features})")
    params = sum(p.numel() for n, p in module.named_parameters() if not n.startswith("_target"))
    return {"layers": layers, "parameters": params}
