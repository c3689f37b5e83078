"""`tune-rl report`: a finished sweep as one HTML file that opens offline.

A real CartPole PPO sweep (4 trials, ASHA's rungs at 1,000 and 2,000 env
steps), then `tune-rl report --with-gif`: one file whose every image is
inside it, a row per trial, logged to the sweep's MLflow parent run, and
drawn by headless Chromium (as tests/test_mlflow_ui.py drives it) without a
single request leaving the file. Bad input exits 2 with one line; a study
Optuna cannot rank the parameters of gets a sentence, not a plot.
"""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from test_mlflow_ui import CHROMIUM, CHROMIUM_ARGS
from tune_rl.cli import main
from tune_rl.plan import plan_sweep
from tune_rl.spec import load_spec
from tune_rl.storage import Storage

ITERATION = 1000


class Page(HTMLParser):
    """The report's images (their src) and the rows of its trials table."""

    def __init__(self):
        super().__init__()
        self.images, self.trial_rows, self.tags = [], [], set()
        self._in_trials, self._row = False, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "table":
            self._in_trials = attrs.get("id") == "trials"
        if tag == "tr" and self._in_trials:
            self._row = []

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.trial_rows.append(self._row)
            self._row = None
        if tag == "table":
            self._in_trials = False

    def handle_data(self, data):
        if self._row is not None and data.strip():
            self._row.append(data.strip())


@pytest.fixture(scope="module")
def sweep(local_ray, tmp_path_factory):
    from tune_rl.runner import run_sweep

    root = tmp_path_factory.mktemp("report")
    spec = load_spec(
        "PPO", env="cartpole", trials=4, max_env_steps=3 * ITERATION, grace_env_steps=ITERATION,
        reduction_factor=2, min_env_steps_per_iteration=ITERATION, checkpoint_every=1,
        keep_checkpoints=1, evaluation=False, eval_episodes=2, seed=1, envs_per_env_runner=1,
        training={"train_batch_size_per_learner": ITERATION}, name="rep",
        storage_path=str(root / "ray_results"), tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return root, run_sweep(plan_sweep(spec))


@pytest.fixture(scope="module")
def report(sweep):
    root, summary = sweep
    path = root / "report.html"
    assert main(["report", "rep", "--storage-path", str(root / "ray_results"), "-o", str(path),
                 "--with-gif", "--episodes", "1"]) == 0
    return path


@pytest.mark.slow
def test_every_image_is_inside_the_file_and_each_trial_has_a_row(sweep, report):
    root, summary = sweep
    text = report.read_text()
    page = Page()
    page.feed(text)
    # Nothing to fetch: no scripts, stylesheets or links, no URL but data: URIs.
    assert not page.tags & {"script", "link", "iframe", "object"}
    assert "http://" not in text and "https://" not in text
    # The curves, Optuna's three plots and the winner's GIF.
    kinds = [src.split(";", 1)[0] for src in page.images]
    assert sorted(kinds) == ["data:image/gif"] + ["data:image/png"] * 4, kinds
    for src in page.images:
        header, payload = src.split(",", 1)
        assert header.endswith(";base64") and payload
        image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
        image.load()
        assert image.format in ("PNG", "GIF")
        assert image.width >= 300 and image.height >= 200, image.size
    header, *rows = page.trial_rows
    assert header[:2] == ["trial", "status"]
    assert sorted(r[0] for r in rows) == sorted(t["trial"] for t in summary["trials"])
    assert {r[1] for r in rows} == {t["status"] for t in summary["trials"]}
    assert "ASHA: grace 1,000 env steps, reduction factor 2, rungs at 1,000, 2,000" in text


@pytest.mark.slow
def test_the_report_is_on_the_sweeps_mlflow_parent_run(sweep, report, tmp_path):
    from mlflow.tracking import MlflowClient

    root, summary = sweep
    client = MlflowClient(summary["mlflow"]["tracking_uri"])
    run_id = summary["mlflow"]["parent_run_id"]
    assert "report.html" in [a.path for a in client.list_artifacts(run_id)]
    logged = client.download_artifacts(run_id, "report.html", str(tmp_path))
    assert Path(logged).read_bytes() == report.read_bytes()


@pytest.mark.slow
def test_chromium_draws_every_image_with_no_request_leaving_the_file(report, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.as_uri(), wait_until="load")
        images = page.eval_on_selector_all(
            "img", "images => images.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        page.screenshot(path=tmp_path / "report.png", full_page=True)
        browser.close()
    assert len(images) == 5 and all(done and w > 0 and h > 0 for done, w, h in images), images
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert requests[0] == report.as_uri()


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    storage = tmp_path / "ray_results"
    (storage / "half-done").mkdir(parents=True)
    cases = {
        ("nope",): "no finished sweep 'nope'",
        ("half-done",): "has not finished (no summary.json)",
        ("half-done", "-o", str(tmp_path / "missing" / "r.html")): "does not exist",
        ("half-done", "--gif", str(tmp_path / "none.gif")): "no such file",
    }
    for args, said in cases.items():
        assert main(["report", *args, "--storage-path", str(storage)]) == 2
        err = capsys.readouterr().err.strip()
        assert said in err and len(err.splitlines()) == 1, err


def test_importances_of_trials_that_all_scored_the_same_are_a_sentence(tmp_path):
    import optuna
    from optuna.distributions import FloatDistribution

    from tune_rl.study import open_storage
    from tune_rl.sweep_report import optuna_section

    storage = Storage(str(tmp_path))
    study = optuna.create_study(study_name="flat", direction="maximize",
                                storage=open_storage(str(tmp_path / "flat.optuna.journal")))
    for lr in (1e-4, 1e-3):
        study.add_trial(optuna.trial.create_trial(
            params={"lr": lr}, distributions={"lr": FloatDistribution(1e-5, 1e-2, log=True)},
            value=9.0))
    summary = {"sweep": "flat", "spec": {"search": "tpe", "params": {}, "optuna_storage": ""}}
    section = optuna_section(summary, storage)
    assert section.count("<img") == 2  # the history and the parallel coordinates
    assert ("Not drawn: 2 completed trial(s), all with the score 9: importances need at "
            "least 2 with different scores") in section
    pbt = optuna_section({**summary, "spec": {**summary["spec"], "search": "pbt"}}, storage)
    assert "<img" not in pbt and "PBT and PB2 have no Optuna study" in pbt


def test_a_confirmed_sweep_shows_its_confirmation_table(tmp_path):
    from tune_rl.sweep_report import confirmation_section

    table = {"sweep": "s", "top": 2, "seeds": 2, "env_steps": 1000, "winner_held": False,
             "spearman_rho": None, "winner_interval_overlaps_runner_up": True,
             "rows": [{"sweep_rank": 1, "trial": "PPO_a", "sweep_score": 50.0, "mean": 20.0,
                       "std": 1.0, "interval": [10.0, 30.0], "runs": 2, "failed": 0,
                       "confirmed_rank": 2},
                      {"sweep_rank": 2, "trial": "PPO_b", "sweep_score": 40.0, "mean": 25.0,
                       "std": 1.0, "interval": [15.0, 35.0], "runs": 2, "failed": 0,
                       "confirmed_rank": 1}]}
    storage = Storage(str(tmp_path))
    storage.write_text("s/confirmation.json", json.dumps(table))
    section = confirmation_section(storage, "s")
    assert section.count("<tr") == 3 and '<tr class="best"><td class=n>2</td>' in section
    assert "The sweep's winner is NOT the confirmed winner" in section
    assert "Not confirmed" in confirmation_section(storage, "other")


@pytest.mark.slow
def test_the_gif_evaluate_made_of_the_winner_is_in_the_next_report(sweep, report, tmp_path):
    # After the tests of the first report: this one logs its own over it.
    root, summary = sweep
    storage = str(root / "ray_results")
    gif = tmp_path / "winner.gif"
    assert main(["evaluate", "--sweep", "rep", "--storage-path", storage, "--episodes", "1",
                 "--gif", str(gif)]) == 0
    path = tmp_path / "again.html"
    assert main(["report", "rep", "--storage-path", storage, "-o", str(path)]) == 0
    page = Page()
    page.feed(path.read_text())
    (kept,) = [src for src in page.images if src.startswith("data:image/gif")]
    assert base64.b64decode(kept.split(",", 1)[1]) == gif.read_bytes()
    assert "recorded by tune-rl evaluate --sweep" in path.read_text()
