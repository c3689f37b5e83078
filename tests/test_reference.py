"""`tune-rl reference`: a published configuration, run as a one-trial sweep,
drawn beside its published curve, and contained in the algorithm's space.

What a user relies on: the command writes a curve (PNG, markdown table, CSV)
into the sweep folder and into MLflow; the run is the published
configuration as RLlib really built it (a 512 hidden layer in the module, the
annealed learning rate in the learner's optimizer, not only in the config);
and a sweep over the algorithm's space can always try the reference.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from ray.tune.search.sample import Categorical, Float, Integer

from tune_rl.cli import main
from tune_rl.config import build_config
from tune_rl.envs import ENVS
from tune_rl.presets import PRESETS
from tune_rl.references import (
    PPO_TOTAL_STEPS,
    REFERENCES,
    get_reference,
    plan_reference,
    reference_spec,
)
from tune_rl.spaces import load_space


def _contains(domain, value) -> bool:
    if isinstance(domain, Categorical):
        return value in domain.categories
    if isinstance(domain, Integer):
        return domain.lower <= value < domain.upper
    if isinstance(domain, Float):
        return domain.lower <= value <= domain.upper
    return domain == value


@pytest.mark.parametrize("algo", list(REFERENCES))
def test_the_breakout_space_contains_the_reference(algo):
    reference = get_reference(algo)
    space = load_space(PRESETS[algo], ENVS["breakout"])
    for name, value in reference.values("params").items():
        assert name in space, f"{algo} space does not search {name}"
        assert _contains(space[name], value), (name, value, space[name])
    lr = reference.values("training").get("lr")
    if isinstance(lr, list):  # a schedule: its starting value is in the space
        assert _contains(space["lr"], lr[0][1]) and reference.values("params")["lr_schedule"]


def test_the_ppo_reference_is_what_rllib_builds_and_its_lr_schedule_reaches_the_learner(
        local_ray, tmp_path):
    reference = get_reference("PPO")
    spec = reference_spec(reference, 1024, "built", str(tmp_path / "rr"),
                          f"sqlite:///{tmp_path / 'mlflow.db'}")
    plan = plan_reference(reference, spec)
    plan.env.register()
    algo = build_config(plan.preset, plan.env, reference.values("params"),
                        plan.settings).build_algo()
    try:
        learner = algo.learner_group._learner  # the local learner (num_learners=0)
        module = learner.module["default_policy"]
        linear = [(name, m.in_features, m.out_features)
                  for name, m in module.named_modules() if type(m).__name__ == "Linear"]
        # The Nature encoder's 3,136 features into a 512 hidden layer, in both heads.
        assert ("pi.net.mlp.0", 3136, 512) in linear and ("vf.net.mlp.0", 3136, 512) in linear
        assert algo.config.num_envs_per_env_runner == 8
        assert algo.config.get_rollout_fragment_length() == 128
        assert algo.config.use_kl_loss is False

        def learner_lr() -> float:
            return learner.get_optimizer().param_groups[0]["lr"]

        assert learner_lr() == pytest.approx(2.5e-4)
        steps = algo.train()["num_env_steps_sampled_lifetime"]
        # Annealed linearly to 0 over the published run's 10M env steps.
        assert steps >= 1024
        assert learner_lr() == pytest.approx(2.5e-4 * (1 - steps / PPO_TOTAL_STEPS))
        assert learner_lr() < 2.5e-4
    finally:
        algo.stop()


def _mlflow_reference_runs(tracking_uri: str, algo: str):
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(f"breakout-{algo}-reference")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, trials


@pytest.mark.parametrize(("algo", "env_steps"), [("PPO", 2048), ("Rainbow_DQN", 3000)])
def test_a_tiny_reference_run_writes_its_curve_beside_the_published_one(
        algo, env_steps, local_ray, tmp_path, capsys):
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    output = tmp_path / "results"
    code = main(["reference", "--algo", algo, "--env-steps", str(env_steps), "--name", "tiny",
                 "--storage-path", str(tmp_path / "rr"), "--tracking-uri", tracking_uri,
                 "--output", str(output)])
    assert code == 0, capsys.readouterr().err[-3000:]

    stem = f"reference-{algo.lower()}"
    for folder in (tmp_path / "rr" / "tiny", output):
        png, md, table = (folder / f"{stem}.{ext}" for ext in ("png", "md", "csv"))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        rows = list(csv.DictReader(table.open()))  # one per iteration
        assert rows and int(rows[-1]["env_steps"]) >= env_steps
        assert any(r["score"] for r in rows), rows  # training games ended and were scored
        text = md.read_text()
        published = get_reference(algo).published[0]
        # The published run's last point at least, with where it comes from.
        assert published.source in text and f"{published.points[-1].score:g}" in text

    client, parents, trials = _mlflow_reference_runs(tracking_uri, algo)
    assert len(parents) == 1 and len(trials) == 1
    assert parents[0].info.status == "FINISHED"
    logged = {Path(a.path).name for a in client.list_artifacts(parents[0].info.run_id,
                                                                 "reference")}
    assert logged == {f"{stem}.png", f"{stem}.md", f"{stem}.csv"}
    # The trial's parameters are the reference's, as a sweep's trial would log them.
    params = trials[0].data.params
    for name, value in get_reference(algo).values("params").items():
        assert params[name] == str(value)


def test_curve_only_redraws_a_run_that_is_not_there_with_a_clear_error(tmp_path, capsys):
    code = main(["reference", "--algo", "PPO", "--name", "nothing", "--curve-only",
                 "--storage-path", str(tmp_path)])
    assert code == 2
    assert "no reference trial in" in capsys.readouterr().err


def test_terminal_on_life_loss_ends_an_episode_per_life_and_scores_the_whole_game():
    from tune_rl.envs import GAME_OVER, SCORE_KEY, make_breakout

    env = make_breakout({"terminal_on_life_loss": True, "repeat_action_probability": 0.0})
    env.action_space.seed(0)
    env.reset(seed=0)
    episodes, game_points, rewards = 0, 0.0, 0.0
    while True:
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        rewards += reward  # clipped to its sign, summed over all lives
        if terminated or truncated:
            episodes += 1
            if info[GAME_OVER]:
                break
            points_so_far = info[SCORE_KEY]
            _, info = env.reset()
            # A new episode, the same game: the score carries on, one life fewer.
            assert info[SCORE_KEY] >= points_so_far and not info[GAME_OVER]
        game_points = info[SCORE_KEY]
    env.close()
    assert episodes == 5  # Breakout's five lives
    assert info[SCORE_KEY] >= max(game_points, rewards)
