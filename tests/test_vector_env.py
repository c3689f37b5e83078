"""The vectorised Breakout plays each game exactly as today's env does.

Real ALE on both sides: `make_breakout` (gymnasium's wrappers) against
`VectorBreakout` (ale-py's C++ vector env), same seed, same actions,
compared step by step: observations bit for bit, rewards, game score,
lives, frame numbers, terminated and truncated.
"""

from __future__ import annotations

import numpy as np
import pytest

from tune_rl.envs import SCORE_KEY, FireOnLifeLoss, make_breakout
from tune_rl.vector_breakout import PLAY, VectorBreakout, supports


def actions(steps: int, seed: int = 0) -> list[int]:
    """Random play with long stretches of mostly NOOP, so that balls are
    lost (FIRE after a lost life) and games end."""
    rng = np.random.default_rng(seed)
    return [int(rng.integers(4)) if (t // 150) % 2 == 0 else (0 if rng.random() < 0.9 else 3)
            for t in range(steps)]


def agent_step(vec: VectorBreakout, action: int):
    """One agent step of game 0 of a one-group VectorBreakout (the other
    games play random actions): rounds until game 0 completes the step, and
    after a game end until the next game starts. Returns the step's obs,
    reward, terminated, truncated, info and the next game's (obs, info) or None."""
    rng = np.random.default_rng(action)
    assert vec.phase[0] == PLAY
    step = start = None
    while start is None and (step is None or step[2] or step[3]):
        vec.send(0, np.array([action, *rng.integers(4, size=vec.num_envs - 1)]))
        r = vec.recv(0)
        if r.stepped[0]:
            step = (r.obs[0], r.rewards[0], r.terminated[0], r.truncated[0], r.infos[0])
        if r.started[0]:
            start = (r.obs[0], r.infos[0])
    return (*step, start)


def compare(env_config: dict, steps: int, seed: int = 3,
            not_compared: tuple[str, ...] = ()) -> dict[str, int]:
    """Plays game 0 of a two-game VectorBreakout against make_breakout with the
    same actions (game 1 plays others), resetting make_breakout when a game
    ends. Returns what happened, asserting equality at every step (of the
    infos without the `not_compared` keys)."""
    ref = make_breakout({**env_config, "stack_frames_in_env": True})
    vec = VectorBreakout(2, env_config)
    seen = {"steps": 0, "fires": 0, "quiet_fires": 0, "terminated": 0, "truncated": 0,
            "points": 0}

    def same(info: dict, vinfo: dict) -> bool:
        return ({k: v for k, v in info.items() if k not in not_compared}
                == {k: v for k, v in vinfo.items() if k not in not_compared})

    try:
        obs, info = ref.reset(seed=seed)
        vobs, vinfos = vec.reset(seed=seed)
        assert vobs.dtype == np.uint8 and vobs.shape == (2, 84, 84, 4)
        assert np.array_equal(obs, vobs[0]) and same(info, vinfos[0])
        for t, action in enumerate(actions(steps)):
            before = info
            obs, reward, terminated, truncated, info = ref.step(action)
            vobs, vreward, vterminated, vtruncated, vinfo, start = agent_step(vec, action)
            assert np.array_equal(obs, vobs), f"step {t}: {(obs != vobs).sum()} pixels"
            assert (reward, terminated, truncated) == (vreward, vterminated, vtruncated), t
            assert same(info, vinfo), f"step {t}"
            seen["steps"] += 1
            seen["points"] += reward > 0
            if info["episode_frame_number"] - before["episode_frame_number"] == 8:
                seen["fires"] += 1  # the agent's 4 frames and FIRE's 4
                seen["quiet_fires"] += info["lives"] == before["lives"]
            if terminated or truncated:
                seen["terminated"] += terminated
                seen["truncated"] += truncated
                obs, info = ref.reset()
                assert np.array_equal(obs, start[0]) and same(info, start[1])
            else:
                assert start is None
    finally:
        ref.close()
        vec.close()
    return seen


def test_games_equal_todays_env_step_by_step_through_lost_lives_and_game_ends():
    seen = compare({"repeat_action_probability": 0.0}, 2500)
    assert seen["terminated"] >= 5  # whole games, each ending with its last life
    assert seen["fires"] >= 20  # FIRE after lost lives
    assert seen["points"] > 0


def test_games_equal_todays_env_when_the_frame_cap_truncates_them():
    seen = compare({"repeat_action_probability": 0.0, "max_frames_per_episode": 400}, 800)
    assert seen["truncated"] >= 3


def test_a_game_whose_serve_ends_it_restarts_unserved_as_todays_env_does():
    """FireOnLifeLoss.reset resets again, without FIRE, when its FIRE step
    ends the game: a 4-frame cap ends every game at its serve. Only the
    frame counter differs: today's env passes the reset's seed to that
    second reset too (its ALE starts counting again, and says `seeds`)."""
    seen = compare({"repeat_action_probability": 0.0, "max_frames_per_episode": 4}, 20,
                   not_compared=("frame_number", "seeds"))
    assert seen["truncated"] == 20


def test_games_equal_todays_env_when_fire_is_pressed_after_quiet_steps(monkeypatch):
    """The quiet FIRE (100 steps without reward or lost life) is rare in
    random play; with a patience of 8 steps both envs press it often."""
    monkeypatch.setattr(FireOnLifeLoss, "PATIENCE", 8)
    seen = compare({"repeat_action_probability": 0.0}, 1200)
    assert seen["quiet_fires"] >= 10


def test_sticky_actions_are_applied():
    """ALE's sticky-action RNG in the vector env is not gymnasium's, so games
    with stickiness cannot be compared step by step: with 0.25 the same
    seed and actions give another game than with 0, in both envs, and with
    0 the game does not depend on the seed."""
    plays = actions(200)

    def frames(make, seed):
        env = make()
        try:
            out = [env.reset(seed=seed)[0]]
            for action in plays:
                out.append(env.step(action)[0])
                if len(out) > 150:
                    break
            return np.stack(out)
        finally:
            env.close()

    def vector(p):
        class One:
            def __init__(self):
                self.env = VectorBreakout(1, {"repeat_action_probability": p})

            def reset(self, seed):
                obs, infos = self.env.reset(seed=seed)
                return obs[0], infos[0]

            def step(self, action):
                return agent_step(self.env, action)

            def close(self):
                self.env.close()
        return One

    for make in (lambda p: (lambda: make_breakout({"repeat_action_probability": p,
                                                   "stack_frames_in_env": True})), vector):
        steady = frames(make(0.0), seed=0)
        assert np.array_equal(steady, frames(make(0.0), seed=1))
        sticky = [frames(make(0.25), seed=s) for s in range(3)]
        assert all(not np.array_equal(steady, f) for f in sticky)
        assert not np.array_equal(sticky[0], sticky[1])


def test_settings_it_does_not_play_are_named():
    assert supports({"repeat_action_probability": 0.25, "max_frames_per_episode": 1000})
    assert not supports({"noop_max": 30})
    assert not supports({"terminal_on_life_loss": True})
    with pytest.raises(ValueError, match="noop_max"):
        VectorBreakout(1, {"noop_max": 30})


def test_game_score_is_the_unclipped_sum():
    vec = VectorBreakout(1, {"repeat_action_probability": 0.0})
    try:
        vec.reset(seed=0)
        total = 0.0
        for action in actions(1500):
            _, reward, terminated, truncated, info, _ = agent_step(vec, action)
            assert reward in (0.0, 1.0)
            total += reward
            if terminated or truncated:
                break
        assert info[SCORE_KEY] >= total > 0
    finally:
        vec.close()
