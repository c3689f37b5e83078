"""`tune-rl submit`: a sweep as a Ray job, through Ray's Jobs API.

The project folder is the job's working dir (Ray uploads it, minus what git
ignores); the job's driver runs `python -m tune_rl.cli sweep ...` on the
cluster with `src/` on its path, so the cluster runs the code and sweep files
that were submitted, not whatever version its image holds. Ray sets
RAY_ADDRESS for the driver, and the sweep joins that cluster.

The sweep is checked here first (algorithm, sweep file, space, flags), so a
typo fails in a second instead of after a job start. What only the cluster
can answer (is the storage folder mounted on every node, does the MLflow
server answer from there) the job's driver checks, exiting 2 like locally.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shlex
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tune_rl.cluster import check_answers
from tune_rl.errors import UsageError
from tune_rl.spec import PROJECT_ROOT, SweepSpec
from tune_rl.storage import is_uri
from tune_rl.tracking import GIT_COMMIT_ENV, git_commit

# Never uploaded: run output and local environments (most are git-ignored too,
# which Ray honours; these hold even where .gitignore is edited).
EXCLUDES = [".git", ".venv", "ray_results", "mlartifacts", "mlruns", "mlflow.db*",
            "**/__pycache__", ".pytest_cache", ".ruff_cache", "benchmarks/results.json"]

# Exit status of the job as the sweep's: the driver's own code when it ran.
JOB_STOPPED = 130
AGENT_WAIT_ATTEMPTS, AGENT_WAIT_S = 12, 5


@dataclass
class Job:
    address: str
    entrypoint: str
    runtime_env: dict[str, Any]
    submission_id: str

    def describe(self) -> dict[str, Any]:
        return {"address": self.address, "submission_id": self.submission_id,
                "entrypoint": self.entrypoint, "runtime_env": self.runtime_env}


def prepare_job(address: str | None, spec: SweepSpec, sweep_args: list[str],
                install_dependencies: bool = False) -> Job:
    """The job to submit, after every check that needs no cluster."""
    if not address:
        raise UsageError("submit needs the cluster's dashboard address: --address "
                         "http://<head>:8265 (or set RAY_ADDRESS)")
    parsed = urlparse(address)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or not parsed.port:
        raise UsageError(f"address {address!r} is not the Ray dashboard's http://host:port "
                         "(the Jobs API listens there, by default on port 8265)")
    _check_project()
    if not spec.tracking_uri.startswith(("http://", "https://")):
        raise UsageError(
            f"tracking_uri {spec.tracking_uri!r} is not an MLflow server; the job runs on the "
            "cluster in a temporary copy of the project, and a local store there is lost "
            "with it: pass --tracking-uri http://<mlflow server>")
    if not (is_uri(spec.storage_path) or spec.storage_path.startswith("/")):
        raise UsageError(
            f"storage_path {spec.storage_path!r} is relative; the job runs in a temporary "
            "copy of the project that Ray deletes later: pass an absolute folder mounted "
            "on every node, or a cloud URI (s3://, gs://), as --storage-path")
    check_answers(address, "Ray Jobs API")
    runtime_env: dict[str, Any] = {
        "working_dir": str(PROJECT_ROOT),
        "excludes": EXCLUDES,
        # PYTHONPATH relative to the working dir, where Ray starts the driver
        # and every worker; the commit, because the working dir has no .git.
        "env_vars": {"PYTHONPATH": "src", GIT_COMMIT_ENV: git_commit()},
    }
    if install_dependencies:
        # Ray builds a virtualenv per node from the cluster's Python, once per
        # distinct list; needs the package index reachable from the nodes.
        runtime_env["pip"] = {"packages": project_dependencies(), "pip_check": False}
    entrypoint = shlex.join(["python", "-m", "tune_rl.cli", "sweep", *sweep_args])
    return Job(address, entrypoint, runtime_env,
               submission_id=f"tune-rl-{spec.name}-{secrets.token_hex(3)}")


def submit_and_follow(job: Job, follow: bool = True) -> int:
    """Submits the job, prints its id, streams its logs; returns its exit status."""
    from ray.job_submission import JobSubmissionClient

    # Ray's job client logs each upload and socket close at INFO, and warns that
    # .git and .venv are no longer uploaded (which we exclude anyway).
    for name in ("ray", "ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ray._private.runtime_env.working_dir").setLevel(logging.ERROR)
    try:
        client = JobSubmissionClient(job.address)
    except (ConnectionError, RuntimeError) as err:
        raise UsageError(f"Ray Jobs API at {job.address!r} refused the connection: "
                         f"{str(err).splitlines()[0]}") from None
    job_id = _submit(client, job)
    print(f"Submitted job {job_id} to {job.address}", flush=True)
    how = (f"  follow: ray job logs --follow --address {job.address} {job_id}\n"
           f"  stop:   ray job stop --address {job.address} {job_id}")
    if not follow:
        print(how)
        return 0
    try:
        asyncio.run(_print_logs(client, job_id))
    except KeyboardInterrupt:
        # Leaving the job alone: a sweep outlives the terminal that sent it.
        print(f"\nStopped following; job {job_id} goes on running.\n{how}", file=sys.stderr)
        return JOB_STOPPED
    return job_exit_status(client, job_id)


def _submit(client, job: Job) -> str:
    # A cluster that has just started may not have its job agent yet; Ray
    # answers "No available agent ... try again later". Worth a minute.
    attempt = 0
    while True:
        try:
            return client.submit_job(entrypoint=job.entrypoint, runtime_env=job.runtime_env,
                                     submission_id=job.submission_id)
        except RuntimeError as err:
            message = str(err).strip().splitlines()[-1]
            attempt += 1
            if "No available agent" not in message or attempt == AGENT_WAIT_ATTEMPTS:
                raise UsageError(f"Ray Jobs API at {job.address!r} refused the job: "
                                 f"{message}") from None
            if attempt == 1:
                print("The cluster has no job agent ready yet; waiting for it...",
                      file=sys.stderr, flush=True)
            time.sleep(AGENT_WAIT_S)


def job_exit_status(client, job_id: str) -> int:
    from ray.job_submission import JobStatus

    info = client.get_job_info(job_id)
    code = info.driver_exit_code
    line = f"Job {job_id} {info.status.value}"
    if info.status == JobStatus.SUCCEEDED:
        print(line)
        return 0
    # The driver's own errors are in the logs just followed; Ray's message
    # matters when the driver never ran (a runtime env that failed to build).
    print(f"{line} (exit code {code})" if code is not None else f"{line}: {info.message}",
          file=sys.stderr)
    return JOB_STOPPED if info.status == JobStatus.STOPPED else (code or 1)


def project_dependencies() -> list[str]:
    with open(PROJECT_ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["dependencies"]


async def _print_logs(client, job_id: str) -> None:
    async for lines in client.tail_job_logs(job_id):
        print(lines, end="", flush=True)


def _check_project() -> None:
    needed = ["pyproject.toml", "sweeps", "search_spaces", "src/tune_rl"]
    missing = [name for name in needed if not (PROJECT_ROOT / name).exists()]
    if missing:
        raise UsageError(f"submit ships the project folder as the job's working dir, and "
                         f"{PROJECT_ROOT} lacks {', '.join(missing)}: run it from a checkout "
                         "of tune-rl (pip install -e .)")



def job_sweep_args(args, options, spec: SweepSpec) -> list[str]:
    """The `tune-rl sweep` flags the user gave, for the job's driver.

    The sweep's name is fixed here, so the job and this terminal agree on it
    (and a restarted job resumes the same sweep); a sweep file is passed
    relative to the project, which is where the job will find it.
    """
    given = []
    for action in options._actions:
        if not action.option_strings or action.dest in ("name", "spec"):
            continue
        value = getattr(args, action.dest)
        if value is None or value is False or value == action.default:
            continue
        given += [action.option_strings[0]] if value is True else [
            action.option_strings[0], str(value)]
    if args.spec:
        given += ["--spec", _inside_project(args.spec)]
    return [*given, "--name", spec.name]


def _inside_project(spec_file: str) -> str:
    path = Path(spec_file).resolve()
    if not path.is_relative_to(PROJECT_ROOT):
        raise UsageError(f"sweep file {spec_file!r} is outside the project folder "
                         f"{PROJECT_ROOT}, which is all the job receives: move it into "
                         "sweeps/")
    return str(path.relative_to(PROJECT_ROOT))

