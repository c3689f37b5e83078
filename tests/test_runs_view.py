"""A sweep saves the MLflow UI's view of its trials, and the links open it.

What the browser shows from it is tests/test_mlflow_ui.py's; here, without a
browser, what the view holds and which one `tune-rl ui-links` links to.
"""

from __future__ import annotations

import base64
import json
import zlib

from mlflow.tracking import MlflowClient

from tune_rl.cli import main
from tune_rl.tracking import VIEW_TAG, MLflowTracking


def saved_view(client: MlflowClient, experiment_id: str, key: str) -> tuple[str, dict]:
    """A view as the MLflow UI reads it: the tag's JSON, its state deflated."""
    tag = json.loads(client.get_experiment(experiment_id).tags[VIEW_TAG + key])
    kind, packed = tag["state"].split(";", 1)
    assert kind == "deflate"
    return tag["name"], json.loads(zlib.decompress(base64.b64decode(packed)))


def start(uri: str, name: str, params: list[str], select: str) -> MLflowTracking:
    tracking = MLflowTracking(uri, "breakout-DQN", name, {}, {"sweep": name})
    tracking.start_sweep()
    tracking.save_runs_view(params, select)
    return tracking


def test_a_sweep_saves_its_trials_view_and_ui_links_opens_the_latest(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    first = start(uri, "sweep-a", ["lr", "grad_clip"], "eval")
    name, state = saved_view(client, first.experiment_id, first.view_key)
    assert name == "sweep-a: trials by eval_score"
    assert state["searchFilter"] == f"tags.mlflow.parentRunId = '{first.parent_run_id}'"
    assert (state["orderByKey"], state["orderByAsc"]) == ("metrics.`eval_score`", False)
    columns = ["metrics.`eval_score`", "metrics.`score`", "metrics.`env_steps`",
               "params.`lr`", "params.`grad_clip`"]
    assert state["selectedColumns"] == state["columnOrder"] == columns

    second = start(uri, "sweep-b", ["lr"], "train")
    _, state = saved_view(client, second.experiment_id, second.view_key)
    assert state["orderByKey"] == "metrics.`score`"
    assert state["selectedColumns"][:3] == ["metrics.`score`", "metrics.`eval_score`",
                                            "metrics.`env_steps`"]
    # A view a person saved in the UI later is theirs: the link stays tune-rl's.
    client.set_experiment_tag(second.experiment_id, VIEW_TAG + "17959500040455rj7o094",
                              json.dumps({"name": "mine", "updatedAt": 2**50, "state": "{}"}))

    assert main(["ui-links", "--tracking-uri", uri]) == 0
    assert (f"breakout-DQN  http://127.0.0.1:5000/#/experiments/{second.experiment_id}"
            f"/runs?viewStateShareKey=tune-rl-{second.parent_run_id}") in capsys.readouterr().out
