"""The end of a sweep: Optuna's plots, and what is said when one cannot be made."""

from __future__ import annotations

import pytest
from optuna.visualization import matplotlib as plots

from tune_rl.envs import ENVS
from tune_rl.presets import PRESETS
from tune_rl.report import optuna_figures
from tune_rl.spaces import load_space

SPACE = load_space(PRESETS["PPO"], ENVS["cartpole"])
TRIALS = [{"selected_score": score, "params": {name: domain.sample(random_state=seed)
                                      for name, domain in SPACE.items()}}
          for seed, score in enumerate([12.0, 30.0, 21.0])]


def test_every_optuna_plot_is_made_from_the_trials():
    figures = optuna_figures(SPACE, TRIALS)
    assert set(figures) == {"optimization_history", "param_importances",
                            "parallel_coordinate", "slice"}


def test_a_plot_optuna_cannot_make_is_left_out_and_said(monkeypatch, capsys):
    def refuse(study):
        raise ValueError("Cannot evaluate parameter importances with only a single trial.")

    monkeypatch.setattr(plots, "plot_param_importances", refuse)
    figures = optuna_figures(SPACE, TRIALS)
    assert "param_importances" not in figures and "slice" in figures
    assert ("Optuna's param_importances plot is left out: Cannot evaluate parameter "
            "importances with only a single trial.") in capsys.readouterr().err


def test_a_bug_in_plotting_is_not_swallowed(monkeypatch):
    def broken(study):
        raise TypeError("a bug")

    monkeypatch.setattr(plots, "plot_slice", broken)
    with pytest.raises(TypeError, match="a bug"):
        optuna_figures(SPACE, TRIALS)
