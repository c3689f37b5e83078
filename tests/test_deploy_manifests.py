"""The KubeRay manifests parse, carry what KubeRay requires, and name a
sweep file that exists and validates."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from tune_rl.cli import _parser
from tune_rl.plan import resolve_plan
from tune_rl.spec import PROJECT_ROOT, load_spec

MANIFESTS = sorted((PROJECT_ROOT / "deploy" / "kuberay").glob("*.yaml"))


def entrypoint_args(entrypoint: str) -> list[str]:
    words = shlex.split(entrypoint)
    if words[:2] == ["bash", "-c"]:
        words = shlex.split(words[2].replace("$(date +%Y-%m-%d)", "2026-11-25"))
    assert words[0] == "tune-rl", entrypoint
    return words[1:]


def test_there_are_rayjob_and_raycronjob_manifests():
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in MANIFESTS}
    assert kinds == {"RayJob", "RayCronJob"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_has_kuberay_fields_and_a_valid_sweep(path: Path):
    manifest = yaml.safe_load(path.read_text())
    assert manifest["apiVersion"] == "ray.io/v1"
    job = manifest["spec"]
    if manifest["kind"] == "RayCronJob":
        assert len(job["schedule"].split()) == 5
        job = job["jobTemplate"]
    assert "rayClusterSpec" in job or "clusterSelector" in job
    assert job.get("shutdownAfterJobFinishes") is True

    args = _parser().parse_args(entrypoint_args(job["entrypoint"]))
    assert args.command == "sweep" and args.resume_if_unfinished
    spec_file = PROJECT_ROOT / args.spec
    assert spec_file.is_file()
    spec = load_spec(args.algo, spec_file, args.profile, name=args.name)
    resolve_plan(spec)  # validates the spec and its search space
