"""The MLflow UI shows a sweep: its runs, and each trial's searched params.

MLflow 3 opens an experiment on its GenAI overview, where runs are not
listed: the sweep's summary and `make mlflow-ui` (`tune-rl ui-links`) give
the link to the runs list, opened on the view the sweep saved (its trials,
best first, with the columns worth comparing), and that link is the one
opened here.

Served by a real `mlflow server` on 127.0.0.1 and opened in headless
Chromium (Debian's /usr/bin/chromium, or $CHROMIUM, driven by Playwright;
`make test` installs the browser). Screenshots land in the test's tmp folder.
"""

from __future__ import annotations

import os
import shutil

import pytest
from mlflow.tracking import MlflowClient

from tune_rl.cli import main
from tune_rl.plan import plan_sweep
from tune_rl.report import format_summary
from tune_rl.runner import run_sweep
from tune_rl.spec import load_spec

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium reaches for Google's hosts at start, and this
# machine's closed network refuses them.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.mark.slow
def test_experiment_page_lists_the_runs_and_the_params_are_visible(
        local_ray, mlflow_server, tmp_path, capsys):
    from playwright.sync_api import sync_playwright

    # Games capped at 100 frames (25 env steps): each of DQN's 8 envs ends
    # one in its ~40 steps, so that trials have a training score to show.
    spec = load_spec("DQN", env="breakout", trials=2, max_env_steps=300,
                     min_env_steps_per_iteration=300, evaluation=False, name="ui-sweep",
                     env_config={"max_frames_per_episode": 100},
                     experiment="ui-breakout-DQN", tracking_uri=mlflow_server,
                     storage_path=str(tmp_path / "ray_results"))
    summary = run_sweep(plan_sweep(spec))
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("ui-breakout-DQN")
    child = client.search_runs([experiment.experiment_id],
                               "tags.mlflow.parentRunId != ''", max_results=1)[0]
    trial_name = child.data.tags["mlflow.runName"]
    runs_list = f"{mlflow_server}/#/experiments/{experiment.experiment_id}/runs"
    parent_run_id = summary["mlflow"]["parent_run_id"]
    runs_link = f"{runs_list}?viewStateShareKey=tune-rl-{parent_run_id}"
    assert format_summary(summary).endswith(runs_link)
    capsys.readouterr()
    assert main(["ui-links", "--tracking-uri", mlflow_server, "--ui", mlflow_server]) == 0
    assert f"ui-breakout-DQN  {runs_link}" in capsys.readouterr().out

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        viewport = {"width": 1600, "height": 1000}
        page = browser.new_page(viewport=viewport)
        # The printed link, before any click: the sweep's trials, best
        # evaluation first, under columns for both scores, env steps and
        # the searched params, on screen.
        page.goto(runs_link)
        trials = client.search_runs([experiment.experiment_id],
                                    f"tags.mlflow.parentRunId = '{parent_run_id}'")
        for trial in trials:
            page.get_by_text(trial.data.tags["mlflow.runName"], exact=True).first.wait_for(
                timeout=60_000)
        page.screenshot(path=tmp_path / "sweep-view.png")
        grid = page.locator("[role=grid]").first.bounding_box()
        # On screen: the scores, env steps and the first searched param; the
        # other params are columns too, a sideways scroll away at this width.
        on_screen = {"eval_score", "score", "env_steps", "lr"}
        columns = {"eval_score": "metrics", "score": "metrics", "env_steps": "metrics",
                   **{param: "params" for param in summary["trials"][0]["params"]}}
        assert list(columns)[3] == "lr"
        for name, kind in columns.items():
            header = page.locator(f'[role=columnheader][col-id="{kind}.`{name}`"]')
            box = header.bounding_box()
            assert header.inner_text() == name and box, name
            if name in on_screen:
                assert box["x"] + box["width"] <= grid["x"] + grid["width"], f"{name} off screen"
            for trial in trials:
                logged = getattr(trial.data, kind)[name]
                cell = page.locator(f'[role=row][row-id="{trial.info.run_id}"] '
                                    f'[col-id="{kind}.`{name}`"]').inner_text()
                if kind == "params":
                    assert cell == logged, (name, cell, logged)
                else:
                    assert float(cell) == pytest.approx(logged, rel=1e-2), (name, cell, logged)
        shown = page.locator('[role=row][row-id] [col-id="metrics.`eval_score`"]').all_inner_texts()
        assert len(shown) == len(trials) == 2
        assert [float(v) for v in shown] == sorted((float(v) for v in shown), reverse=True)

        # The whole runs list: the sweep's parent run, expanded to show its
        # trials. In a new tab: in the same one, the UI keeps the view's
        # search for a link that differs only after its `?`.
        page = browser.new_page(viewport=viewport)
        page.goto(runs_list)
        parent = page.get_by_text("ui-sweep", exact=True).first
        parent.wait_for(timeout=60_000)
        row = parent.locator("xpath=ancestor::*[@role='row'][1]")
        row.locator("button[data-component-id*='runnamecellrenderer']").first.click()
        for trial in summary["trials"]:
            page.get_by_text(trial["trial"], exact=True).first.wait_for(timeout=30_000)
        page.screenshot(path=tmp_path / "experiment.png", full_page=True)

        page.goto(f"{mlflow_server}/#/experiments/{experiment.experiment_id}"
                  f"/runs/{child.info.run_id}")
        page.get_by_text(trial_name).first.wait_for(timeout=60_000)
        for param in summary["trials"][0]["params"]:
            page.get_by_text(param, exact=True).first.wait_for(timeout=30_000)
        page.get_by_text(child.data.params["conv_filters"], exact=True).first.wait_for()
        page.screenshot(path=tmp_path / "trial.png", full_page=True)
        browser.close()

    assert (tmp_path / "experiment.png").stat().st_size > 10_000
    assert (tmp_path / "sweep-view.png").stat().st_size > 10_000
