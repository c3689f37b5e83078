"""The original notebook's ten presets, as it wrote them (DESIGN.md's table).

Kept apart from tune_rl.presets on purpose: a test that compared PRESETS
with itself could not fail. Only what the notebook set is here.
"""

PER = {"type": "PrioritizedEpisodeReplayBuffer", "capacity": 60000, "alpha": 0.5, "beta": 0.5}
PLAIN = {"double_q": False, "dueling": False, "noisy": False, "num_atoms": 1, "n_step": 1}
NATURE_FILTERS = [[32, [8, 8], 4], [64, [4, 4], 2], [64, [3, 3], 1]]

NOTEBOOK = {
    "PPO": ("PPO", {}),
    "IMPALA": ("IMPALA", {}),
    "APPO": ("APPO", {"grad_clip": 30.0}),
    "DQN": ("DQN", PLAIN),
    "Double_DQN": ("DQN", {**PLAIN, "double_q": True}),
    "Dueling_DQN": ("DQN", {**PLAIN, "dueling": True}),
    "DQN_PER": ("DQN", {**PLAIN, "replay_buffer_config": PER}),
    "Noisy_DQN": ("DQN", {**PLAIN, "noisy": True}),
    "DQN_C51": ("DQN", {**PLAIN, "num_atoms": 51, "v_min": -10.0, "v_max": 10.0}),
    "Rainbow_DQN": ("DQN", {
        "target_network_update_freq": 500, "replay_buffer_config": PER,
        "epsilon": [[0, 1.0], [1000000, 0.1]], "adam_epsilon": 1e-8, "grad_clip": 40.0,
        "num_steps_sampled_before_learning_starts": 10000, "tau": 1.0, "num_atoms": 51,
        "v_min": -10.0, "v_max": 10.0, "noisy": True, "sigma0": 0.5, "dueling": True,
        "hiddens": [512], "double_q": True, "n_step": 3,
    }),
}
EVALUATION = {"evaluation_interval": 10, "evaluation_duration": 3,
              "evaluation_duration_unit": "episodes"}
