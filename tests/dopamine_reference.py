"""Dopamine's Atari hyperparameters, as its gin files and agent write them.

Copied by hand from google/dopamine (commit 9f616b92): dopamine/jax/agents/
dqn/configs/dqn.gin, rainbow/configs/c51.gin and rainbow/configs/rainbow.gin,
and dopamine/jax/agents/dqn/dqn_agent.py (create_optimizer: optax.adam, no
gradient clipping; linearly_decaying_epsilon). Kept apart from
tune_rl.presets on purpose: a test that compared the presets with
themselves could not fail. Steps are agent steps (4 frames each).
"""

DQN = {
    "gamma": 0.99,
    "update_horizon": 1,
    "min_replay_history": 20_000,
    "update_period": 4,
    "target_update_period": 8_000,
    "epsilon_train": 0.01,
    "epsilon_eval": 0.001,
    "epsilon_decay_period": 250_000,
    "learning_rate": 6.25e-5,
    "adam_eps": 1.5e-4,
    "batch_size": 32,
    "clips_gradients": False,
}
C51 = {**DQN, "num_atoms": 51, "vmax": 10.0, "learning_rate": 0.00025, "adam_eps": 0.0003125}
RAINBOW = {**DQN, "num_atoms": 51, "vmax": 10.0, "update_horizon": 3,
           "learning_rate": 0.0000625, "adam_eps": 0.00015}

# Dopamine has no DQN_PER, Double, Dueling or Noisy files: they are DQN's variants.
GIN = {"DQN": DQN, "Double_DQN": DQN, "Dueling_DQN": DQN, "DQN_PER": DQN, "Noisy_DQN": DQN,
       "DQN_C51": C51, "Rainbow_DQN": RAINBOW}


def linearly_decaying_epsilon(decay_period, step, warmup_steps, epsilon):
    """dopamine/jax/agents/dqn/dqn_agent.py, in plain Python."""
    steps_left = decay_period + warmup_steps - step
    bonus = (1.0 - epsilon) * steps_left / decay_period
    bonus = min(max(bonus, 0.0), 1.0 - epsilon)
    return epsilon + bonus
