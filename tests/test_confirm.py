"""After a sweep: confirm its top configurations on new seeds, write the
winner as a sweep file, and train it longer, as a user runs them.

One real CartPole PPO sweep (3 trials), then `tune-rl confirm --top 2
--seeds 2`, `tune-rl best` and `tune-rl train` through the CLI's own entry
point, read back from the results folders, MLflow and the registry.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tune_rl.cli import main
from tune_rl.plan import plan_sweep
from tune_rl.runner import run_sweep
from tune_rl.spec import load_spec
from tune_rl.trainable import CHECKPOINT_RECORD_FILE, EVAL_SCORE

BUDGET = 4000


@pytest.fixture(scope="module")
def swept(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("confirm")
    spec = load_spec("PPO", env="cartpole", trials=3, max_env_steps=BUDGET, seed=3,
                     grace_env_steps=2000, min_env_steps_per_iteration=1000,
                     evaluation=False, training={"train_batch_size_per_learner": 1000},
                     name="to-confirm", storage_path=str(root / "ray_results"),
                     tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return spec, run_sweep(plan_sweep(spec)), root


@pytest.fixture(scope="module")
def confirmed(swept):
    spec, summary, root = swept
    rc = main(["confirm", spec.name, "--top", "2", "--seeds", "2",
               "--storage-path", spec.storage_path])
    assert rc == 0
    folder = Path(spec.storage_path) / f"{spec.name}-confirm"
    return json.loads((folder / "summary.json").read_text())


def params_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


@pytest.mark.slow
def test_confirm_trains_the_top_k_on_s_new_seeds_and_gives_intervals(swept, confirmed):
    spec, summary, _ = swept
    runs = confirmed["trials"]
    assert len(runs) == 4 and all(r["env_steps"] >= BUDGET for r in runs)
    top = sorted((t for t in summary["trials"]), key=lambda t: -t["selected_score"])[:2]
    assert {params_key(r["params"]) for r in runs} == {params_key(t["params"]) for t in top}
    # The same two new seeds for both configurations, none of the sweep's.
    seeds = {params_key(t["params"]): sorted(r["seed"] for r in runs
                                             if params_key(r["params"]) == params_key(t["params"]))
             for t in top}
    first, second = seeds.values()
    assert first == second and len(set(first)) == 2
    assert not set(first) & {t["seed"] for t in summary["trials"]}

    table = json.loads((Path(spec.sweep_location) / "confirmation.json").read_text())
    assert [row["trial"] for row in table["rows"]] == [t["trial"] for t in top]
    for row in table["rows"]:
        assert len(row["scores"]) == 2
        assert row["mean"] == pytest.approx(sum(row["scores"]) / 2)
        low, high = row["interval"]
        assert math.isfinite(low) and low <= row["mean"] <= high
    winner = max(table["rows"], key=lambda r: r["mean"])
    assert table["winner"]["trial"] == winner["trial"]
    assert table["winner_held"] == (winner["sweep_rank"] == 1)


@pytest.mark.slow
def test_confirmation_is_nested_under_the_sweep_and_registers_the_winner(swept, confirmed):
    spec, summary, _ = swept
    client = MlflowClient(spec.tracking_uri)
    sweep_run = client.get_run(summary["mlflow"]["parent_run_id"])
    confirmation = client.get_run(confirmed["mlflow"]["parent_run_id"])
    assert confirmation.data.tags["mlflow.parentRunId"] == sweep_run.info.run_id
    experiment = confirmation.info.experiment_id
    nested = client.search_runs(
        [experiment], f"tags.mlflow.parentRunId = '{confirmation.info.run_id}'")
    assert len(nested) == 4
    artifacts = {a.path for a in client.list_artifacts(confirmation.info.run_id)}
    assert {"confirmation.txt", "confirmation.json"} <= artifacts
    table = confirmed["confirmation"]
    for run in (confirmation, sweep_run):
        assert run.data.tags["confirmed_winner"] == table["winner"]["trial"]

    _, name, version = table["model"].split("/")
    tags = client.get_model_version(name, version).tags
    assert tags["confirmed"] == "true"
    winner_row = next(r for r in table["rows"] if r["trial"] == table["winner"]["trial"])
    checkpoint = Path(winner_row["best_run"]["checkpoint"])
    record = json.loads((checkpoint / CHECKPOINT_RECORD_FILE).read_text())
    assert float(tags["score"]) == pytest.approx(record[EVAL_SCORE])


@pytest.mark.slow
def test_best_writes_the_winner_and_train_runs_it(swept, confirmed, tmp_path):
    spec, summary, root = swept
    best_file = tmp_path / "best.yaml"
    assert main(["best", spec.name, "--storage-path", spec.storage_path,
                 "-o", str(best_file)]) == 0
    written = yaml.safe_load(best_file.read_text())
    assert written["params"] == confirmed["confirmation"]["winner"]["params"]
    assert "confirmed by" in best_file.read_text().splitlines()[0]

    rc = main(["train", "--config", str(best_file), "--env-steps", "2000", "--name", "longer",
               "--storage-path", spec.storage_path, "--tracking-uri", spec.tracking_uri])
    assert rc == 0
    trained = json.loads((Path(spec.storage_path) / "longer" / "summary.json").read_text())
    (trial,) = trained["trials"]
    assert trial["params"] == written["params"] and trial["seed"] == written["seed"]
    assert trial["env_steps"] >= 2000 and trial["status"] == "FINISHED"
    assert trained["best"]["checkpoint"] and trained["best"]["model"]
    client = MlflowClient(spec.tracking_uri)
    run = client.get_run(trained["mlflow"]["parent_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["trials"] == "1"


def cli(*args: str) -> subprocess.CompletedProcess:
    # A fresh interpreter: "before Ray starts" means this command started none.
    code = ("import sys, ray; from tune_rl.cli import main; rc = main(sys.argv[1:]); "
            "assert not ray.is_initialized(), 'Ray started'; sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
def test_confirm_refuses_what_it_cannot_do_before_ray_starts(swept):
    spec, _, _ = swept
    where = ["--storage-path", spec.storage_path]
    unknown = cli("confirm", "to-confirn", *where)
    assert unknown.returncode == 2 and "to-confirm" in unknown.stderr, unknown.stderr
    too_many = cli("confirm", spec.name, "--top", "9", *where)
    assert too_many.returncode == 2
    assert "--top must be between 1 and 3" in too_many.stderr
    one_seed = cli("confirm", spec.name, "--seeds", "1", *where)
    assert one_seed.returncode == 2 and "--seeds must be at least 2" in one_seed.stderr
