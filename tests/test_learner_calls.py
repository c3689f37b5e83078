"""A training step's K updates in one learner call (algorithm.py).

With 8 envs x fragment 4 and training_intensity 8, RLlib's DQN makes K = 8
updates of 32 per training step. tune-rl's DQN makes them in one call: the
tests watch RLlib's real learner (its optimizer steps, the minibatches its
loss sees, the TD errors it logs) and the real prioritized buffer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ray.rllib.utils.metrics import TD_ERROR_KEY

from tune_rl.algorithm import TuneRLDQN, TuneRLDQNConfig
from tune_rl.config import TrialSettings, build_config
from tune_rl.envs import ENVS
from tune_rl.presets import PRESETS
from tune_rl.trainable import make_trainable

K, BATCH = 8, 32


def build(env: str, one_call: bool, **training):
    """DQN_PER as a sweep builds it: 8 envs x 4 steps per training step, each
    train() one training step, learning from the first (after its 32 env steps)."""
    settings = TrialSettings(
        envs_per_env_runner=8, rollout_fragment_length=4, min_env_steps_per_iteration=32,
        max_env_steps=1000,
        training={"num_steps_sampled_before_learning_starts": 32,
                  "updates_in_one_learner_call": one_call, **training})
    ENVS[env].register()
    return build_config(PRESETS["DQN_PER"], ENVS[env], {}, settings).build_algo()


class Watch:
    """Records, on the algorithm's real learner and buffer, what one training
    step does: learner calls, optimizer steps, each minibatch's observations
    and TD errors as the loss computed them, and the sampled buffer indices."""

    def __init__(self, algo):
        self.learner = learner = algo.learner_group._learner
        buffer = algo.local_replay_buffer
        self.calls, self.steps, self.minibatches, self.sampled = 0, 0, [], []
        update, loss, sample = learner.update, learner.compute_loss_for_module, buffer.sample

        def counted_update(**kwargs):
            self.calls += 1
            return update(**kwargs)

        def recorded_loss(*, module_id, config, batch, fwd_out):
            result = loss(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)
            td_errors = learner.metrics.peek((module_id, TD_ERROR_KEY))
            self.minibatches.append((batch["obs"].detach().cpu().numpy(),
                                     torch.as_tensor(td_errors[-1]).detach().cpu().numpy()))
            return result

        def recorded_sample(**kwargs):
            episodes = sample(**kwargs)
            self.sampled.append((list(buffer._last_sampled_indices), episodes))
            return episodes

        learner.update, learner.compute_loss_for_module = counted_update, recorded_loss
        buffer.sample = recorded_sample
        learner.get_optimizer().register_step_post_hook(lambda *_: self._stepped())

    def _stepped(self) -> None:
        self.steps += 1


@pytest.mark.parametrize("one_call, calls", [(True, 1), (False, K)])
def test_a_training_step_makes_k_updates_in_one_learner_call(local_ray, one_call, calls):
    algo = build("cartpole", one_call)
    try:
        assert isinstance(algo, TuneRLDQN) and isinstance(algo.config, TuneRLDQNConfig)
        watch = Watch(algo)
        result = algo.train()
        assert watch.calls == calls
        assert watch.steps == K  # optimizer steps
        assert len(watch.minibatches) == K
        assert all(len(obs) == BATCH for obs, _ in watch.minibatches)
        assert result["tune_rl_updates_per_learner_call"] == K / calls
        # RLlib's count of trained rows, per step: K x 32 either way (its own
        # would count 8 x 256 env steps in one call: learner.py).
        learners = result["learners"]
        assert learners["default_policy"]["num_module_steps_trained"] == K * BATCH
        assert learners["__all_modules__"]["num_env_steps_trained"] == K * BATCH
    finally:
        algo.stop()


def test_every_sampled_transition_gets_its_own_td_error_as_priority(local_ray):
    algo = build("cartpole", one_call=True)
    try:
        watch = Watch(algo)
        algo.train()
        buffer = algo.local_replay_buffer
        [(indices, episodes)] = watch.sampled  # one sample of K x 32
        assert len(indices) == len(episodes) == K * BATCH
        # The loss saw the minibatches in the sampled order, unshuffled.
        seen = np.concatenate([obs for obs, _ in watch.minibatches])
        sampled = np.stack([episode.get_observations(0) for episode in episodes])
        np.testing.assert_allclose(seen, sampled)
        # Each sampled index holds |its own TD error|^alpha, RLlib's priority
        # (prioritized_episode_buffer.py: max(td, 1e-12) ** alpha); an index
        # drawn twice keeps its last one.
        td_errors = np.concatenate([td for _, td in watch.minibatches])
        expected = {idx: max(float(td), 1e-12) ** buffer._alpha
                    for idx, td in zip(indices, td_errors, strict=True)}
        assert len(set(td_errors.round(6))) > K * BATCH // 2  # distinct errors, not one value
        for idx, priority in expected.items():
            assert buffer._sum_segment[idx] == pytest.approx(priority, rel=1e-5)
    finally:
        algo.stop()


def test_the_target_network_syncs_on_schedule_after_the_k_updates(local_ray):
    """Every 64 env steps with 32 per training step: every other step."""
    algo = build("cartpole", one_call=True, target_network_update_freq=64)
    try:
        module = algo.learner_group._learner.module["default_policy"].unwrapped()
        synced = []
        for _ in range(5):
            algo.train()
            pairs = [zip(main.parameters(), target.parameters(), strict=True)
                     for main, target in module.get_target_network_pairs()]
            synced.append(all(torch.equal(p, t) for pair in pairs for p, t in pair))
        # At 32 env steps no sync (RLlib's clock starts at 0), then at 64, 128.
        assert synced == [False, True, False, True, False]
    finally:
        algo.stop()


def test_a_dqn_per_trial_trains_on_breakout_with_one_call_per_step(local_ray):
    trainable = make_trainable(PRESETS["DQN_PER"], ENVS["breakout"], TrialSettings(), 1)
    assert issubclass(trainable, TuneRLDQN)
    algo = build("breakout", one_call=True)
    try:
        assert type(algo.learner_group._learner).__name__ == "TuneRLDQNLearner"
        watch = Watch(algo)
        before = [p.detach().clone() for p in watch.learner.module["default_policy"].parameters()]
        results = [algo.train() for _ in range(2)]
        assert watch.calls == 2 and watch.steps == 2 * K
        assert results[-1]["tune_rl_updates_per_learner_call"] == K
        learner = results[-1]["learners"]["default_policy"]
        assert np.isfinite(learner["qf_loss"]) and learner["num_module_steps_trained"] == K * BATCH
        after = watch.learner.module["default_policy"].parameters()
        assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    finally:
        algo.stop()
