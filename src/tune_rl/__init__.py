"""tune-rl: hyperparameter sweeps of RLlib algorithms on Atari with Ray Tune."""

__version__ = "0.1.0"
