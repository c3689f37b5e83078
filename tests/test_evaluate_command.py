"""`tune-rl evaluate`: a trained policy's games, scored, watched and recorded.

Two tiny real sweeps give real checkpoints and registered models: PPO on
Breakout (float frames stacked as RLlib's connector does) and Rainbow DQN on
CartPole (the DQN family's own module: noisy, dueling, distributional). Each
is evaluated through the CLI's own entry point, as a user runs it: from its
checkpoint folder, from the registered model and as the sweep's best.
"""

from __future__ import annotations

import colorsys
import json
import re
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from tune_rl.cli import main
from tune_rl.envs import make_breakout
from tune_rl.plan import plan_sweep
from tune_rl.runner import run_sweep
from tune_rl.spec import load_spec
from tune_rl.trainable import CHECKPOINT_RECORD_FILE

# Games capped at 400 frames (100 agent steps): the GIF and the games stay short.
SHORT_GAMES = {"max_frames_per_episode": 400}


def tiny_sweep(root: Path, algo: str, env: str, **settings) -> dict:
    spec = load_spec(algo, env=env, trials=1, evaluation=False, eval_episodes=1,
                     name=f"tiny-{algo}", storage_path=str(root / "ray_results"),
                     tracking_uri=f"sqlite:///{root / 'mlflow.db'}", **settings)
    summary = run_sweep(plan_sweep(spec))
    assert summary["best"] and summary["best"]["model"], summary
    return summary


@pytest.fixture(scope="module")
def breakout(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("breakout")
    return root, tiny_sweep(root, "PPO", "breakout", max_env_steps=256,
                            min_env_steps_per_iteration=256, env_config=SHORT_GAMES,
                            training={"train_batch_size_per_learner": 256})


@pytest.fixture(scope="module")
def cartpole(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("cartpole")
    return root, tiny_sweep(root, "Rainbow_DQN", "cartpole", max_env_steps=300,
                            min_env_steps_per_iteration=100)


def scores_printed(out: str) -> list[float]:
    """The per-game rows of `evaluate`'s table: game, score, length."""
    return [float(m[1]) for m in re.finditer(r"^\d+\s+(\S+)\s+[\d,]+$", out, re.M)]


def run(args: list[str], capsys) -> str:
    assert main(["evaluate", *args]) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_a_checkpoint_folder_plays_complete_games_and_prints_each_score(breakout, capsys):
    _, summary = breakout
    checkpoint = Path(summary["best"]["checkpoint"])
    # The checkpoint says what trained it: all `evaluate` needs besides the weights.
    record = json.loads((checkpoint / CHECKPOINT_RECORD_FILE).read_text())
    assert (record["algo"], record["env"], record["env_config"]) == (
        "PPO", "breakout", SHORT_GAMES)
    out = run([str(checkpoint), "--episodes", "3", "--env-config", "noop_max=5"], capsys)
    assert "PPO on breakout, 3 complete games" in out
    assert "'max_frames_per_episode': 400, 'noop_max': 5}" in out  # its own, and the change
    scores = scores_printed(out)
    assert len(scores) == 3 and all(s >= 0 for s in scores)
    assert f"mean {np.mean(scores):.4g}, 95% interval [" in out


@pytest.mark.slow
def test_a_registered_model_logs_its_scores_and_gif_to_its_run(breakout, capsys, tmp_path):
    root, summary = breakout
    uri = f"sqlite:///{root / 'mlflow.db'}"
    gif = tmp_path / "game.gif"
    out = run([summary["best"]["model"], "--tracking-uri", uri, "--episodes", "2",
               "--gif", str(gif)], capsys)
    client = MlflowClient(uri)
    name, version = summary["best"]["model"].removeprefix("models:/").split("/")
    run_id = client.get_model_version(name, version).run_id
    assert f"logged to run {run_id}" in out
    (folder,) = [f.path for f in client.list_artifacts(run_id, "evaluate")]
    assert sorted(f.path for f in client.list_artifacts(run_id, folder)) == [
        f"{folder}/game.gif", f"{folder}/scores.json"]
    record = json.loads(Path(client.download_artifacts(
        run_id, f"{folder}/scores.json", str(tmp_path))).read_text())
    assert record["scores"] == scores_printed(out) and len(record["scores"]) == 2
    history = client.get_metric_history(run_id, "evaluate_game_score")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == record["scores"]

    # One image per agent step of the first game, and its reset: the whole
    # game (400 frames are 27 s, under the GIF's 60).
    with Image.open(gif) as image:
        assert image.n_frames == record["lengths"][0] + 1 == record["gif"]["images"]
        image.seek(image.n_frames // 2)
        frame = np.asarray(image.convert("RGB"))
    assert len(saturated_hues(frame)) >= 4  # Breakout's brick rows, in colour
    # At the game's speed: 4 ALE frames (1/15 s) per image, in GIF's hundredths.
    with Image.open(gif) as image:
        durations = [image.seek(i) or image.info["duration"] for i in range(12)]
    assert set(durations) <= {60, 70} and sum(durations) == 800


def saturated_hues(rgb: np.ndarray) -> set[int]:
    """The hues (in 12 bins) of the frame's strongly coloured pixels."""
    hues = set()
    for r, g, b in {tuple(p) for p in rgb.reshape(-1, 3)}:
        h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        if s > 0.5 and v > 0.3:
            hues.add(int(h * 12) % 12)
    return hues


@pytest.mark.slow
def test_the_best_of_a_sweep_with_a_dqn_policy_on_cartpole(cartpole, capsys, tmp_path):
    root, summary = cartpole
    gif = tmp_path / "cartpole.gif"
    out = run(["--sweep", summary["sweep"], "--storage-path", str(root / "ray_results"),
               "--episodes", "2", "--gif", str(gif), "--gif-every", "2"], capsys)
    assert f"sweep {summary['sweep']}'s best, {summary['best']['trial']}" in out
    assert "Rainbow_DQN on cartpole" in out
    scores = scores_printed(out)
    assert len(scores) == 2 and all(s >= 1 for s in scores)  # a CartPole return is its length
    # gymnasium's own drawing, one image every second step of the first game.
    with Image.open(gif) as image:
        assert image.n_frames == int(scores[0]) // 2 + 1
        assert image.size == (600, 400 + 14)
        assert image.info["duration"] == 40  # 2 steps of CartPole's 0.02 s
    assert "logged to run" in out  # the sweep's registered policy's run


def test_rendering_leaves_what_the_policy_sees_unchanged():
    frames = []
    for render_mode in (None, "rgb_array"):
        env = make_breakout({"stack_frames_in_env": True, "render_mode": render_mode})
        seen = [env.reset(seed=3)[0]] + [env.step(a)[0] for a in (1, 2, 3, 0, 2)]
        frames.append(np.stack(seen))
        if render_mode:
            assert env.render().shape == (210, 160, 3)
        env.close()
    assert np.array_equal(*frames)


@pytest.mark.parametrize("args, says", [
    (["{tmp}/nowhere"], "checkpoint folder '{tmp}/nowhere' does not exist"),
    (["{tmp}"], "is not a checkpoint of a tune-rl trial"),
    ([], "evaluate takes one policy"),
    (["{tmp}", "--sweep", "x"], "evaluate takes one policy"),
    (["models:/m/1", "--tracking-uri", "sqlite:///{tmp}/none.db"], "no MLflow store at"),
    (["models:/m"], "is not models:/<name>/<version>"),
    (["{tmp}", "--episodes", "0"], "--episodes must be at least 1, got 0"),
    (["{tmp}", "--env-config", "noop_max"], "expected KEY=VALUE, e.g. noop_max=30"),
    (["{tmp}", "--gif", "{tmp}/missing/out.gif"], "folder '{tmp}/missing' does not exist"),
    (["{tmp}", "--gif", "{tmp}/out.png"], "the file name must end in .gif"),
    (["--sweep", "never-ran", "--storage-path", "{tmp}"], "no finished sweep 'never-ran'"),
])
def test_bad_input_exits_2_with_one_line(args, says, tmp_path, capsys):
    tmp = str(tmp_path)
    assert main(["evaluate", *[a.format(tmp=tmp) for a in args]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tune-rl: error: ") and err.count("\n") == 1, err
    assert says.format(tmp=tmp) in err
    assert not list(tmp_path.glob("*.db"))  # no store created


@pytest.mark.slow
def test_an_unknown_model_or_version_is_named(breakout, capsys):
    root, summary = breakout
    uri = f"sqlite:///{root / 'mlflow.db'}"
    assert main(["evaluate", "models:/breakout-PPOO/1", "--tracking-uri", uri]) == 2
    assert "did you mean 'breakout-PPO'?" in capsys.readouterr().err
    assert main(["evaluate", "models:/breakout-PPO/9", "--tracking-uri", uri]) == 2
    assert "model 'breakout-PPO' has no version '9': it has 1" in capsys.readouterr().err
    assert main(["evaluate", "models:/breakout-PPO/1", "--tracking-uri", uri,
                 "--env-config", "sticky=0.1"]) == 2
    assert "unknown env_config key for breakout: 'sticky'" in capsys.readouterr().err
