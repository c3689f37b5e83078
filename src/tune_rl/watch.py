"""A GIF of one evaluation game, in colour and at the game's own speed.

    recorder = GameRecorder(game=0)
    result = evaluate(module, preset, env, episodes=5, seed=0, watch=recorder)
    recorder.write_gif("game.gif")

The recorder watches the evaluation's own loop (evaluation.evaluate), so the
policy plays exactly the game it is scored on: the env only renders on
request, and the policy still sees the grey 84x84 frames. Each image is the
colour screen after one agent step (`env.render()`: for Breakout ALE's
`getScreenRGB()`, the last of the step's 4 frames; for CartPole gymnasium's
own drawing), with a strip below it giving the game's frame counter and the
score so far.

Speed: each image is shown for the game time until the next one, read from
the game's own clock: ALE's episode frame counter at 60 frames per second
(the NTSC Atari's rate: 108,000 frames are Machado et al.'s 30 minutes;
ALE's `metadata["render_fps"]` of 30 is its window's refresh, not the
game's), so one image per agent step is 15 per second, and a step in which
FireOnLifeLoss also pressed FIRE lasts 8 frames; CartPole's 50 steps per
second (`tau` = 0.02 s, its `render_fps`). GIF delays are whole
hundredths of a second, so 1/15 s cannot be written as such: the delays are
rounded on the running clock (7, 7, 6, 7, 7, 6 ... hundredths), which keeps
the GIF in time with the game over its whole length.

Pillow merges an image identical to the previous one into it (adding up their
delays); the frame counter changes at every image, so none are merged and the
GIF holds one image per recorded step.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ATARI_FPS = 60  # ALE emulates the NTSC Atari 2600: 60 frames per second
STRIP = 14  # pixels below the screen for the frame counter and the score
# Default cap: one minute of play, 900 images of Breakout (about 1-2 MB).
GIF_SECONDS = 60.0


class GameRecorder:
    """Keeps the colour screens of one game of an evaluation; `evaluate`'s `watch`.

    `every`: keep one step in `every` (a smaller GIF; each image then lasts
    longer, so the GIF still plays in real time). `max_seconds`: stop
    recording after this much game time.
    """

    def __init__(self, game: int = 0, every: int = 1, max_seconds: float = GIF_SECONDS):
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.game = game
        self.every = every
        self.max_seconds = max_seconds
        self.images: list[Image.Image] = []
        self.clock: list[float] = []  # game seconds at each image
        self._steps = -1  # agent steps of the watched game seen (the reset is step 0)
        self._font = ImageFont.load_default()
        # gymnasium draws CartPole with pygame, which opens an audio device at
        # init: without one it prints ALSA errors on every render.
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

    def __call__(self, game: int, env, score: float) -> None:
        if game != self.game:
            return
        self._steps += 1
        seconds, frame = game_clock(env, self._steps)
        if self._steps % self.every or seconds > self.max_seconds:
            return
        self.images.append(self._annotated(env.render(), frame, score))
        self.clock.append(seconds)

    def _annotated(self, screen: np.ndarray, frame: int, score: float) -> Image.Image:
        height, width, _ = screen.shape
        image = Image.new("RGB", (width, height + STRIP))
        image.paste(Image.fromarray(screen), (0, 0))
        text = f"frame {frame:,}  score {score:g}"
        ImageDraw.Draw(image).text((2, height + 1), text, fill=(255, 255, 255),
                                   font=self._font)
        return image

    def durations_ms(self) -> list[int]:
        """Each image's delay, rounded to GIF's hundredths on the running clock."""
        if not self.clock:
            return []
        step = self.clock[1] - self.clock[0] if len(self.clock) > 1 else 1 / 15
        ends = [*self.clock[1:], self.clock[-1] + step]
        hundredths = [round(t * 100) for t in [self.clock[0], *ends]]
        return [10 * max(1, b - a) for a, b in zip(hundredths, hundredths[1:], strict=False)]

    def write_gif(self, path: str | Path) -> int:
        """Writes the recorded images as a looping GIF; returns its size in bytes."""
        if not self.images:
            raise ValueError(f"game {self.game} was not played: nothing to write")
        first, *rest = self.images
        first.save(path, save_all=True, append_images=rest, duration=self.durations_ms(),
                   loop=0, optimize=False)
        return Path(path).stat().st_size


def game_clock(env, steps: int) -> tuple[float, int]:
    """The game's time in seconds and its frame counter (what the strip shows)."""
    ale = getattr(env.unwrapped, "ale", None)
    if ale is not None:
        frame = int(ale.getEpisodeFrameNumber())
        return frame / ATARI_FPS, frame
    fps = env.unwrapped.metadata.get("render_fps") or 30
    return steps / fps, steps
