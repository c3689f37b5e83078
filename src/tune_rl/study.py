"""A sweep's Optuna study, kept where Optuna Dashboard can open it.

TPE and random sweeps keep their study (every trial's params, its selected
score at each evaluation, by env steps, and its final value) in Optuna's own
storage, written as the sweep runs:

- by default, a journal file beside the sweep's folder,
  `<storage_path>/<name>.optuna.journal` (Optuna's JournalStorage): beside,
  not in, for the reason the MLflow run mapping is (plan.tracking_state_file):
  a resumed run ends by syncing its driver's copy of the folder back over it,
  which would put back the copy taken at the resume;
- with `optuna_storage` (`--optuna-storage`), an RDB URL such as
  `postgresql://host/db` (for a cluster, where the dashboard runs elsewhere)
  or a journal file path of one's choosing. The URL is pickled with the
  searcher into the sweep's folder (Tune saves the searcher whole), so a
  password is better left to the driver's own means (PGPASSWORD, .pgpass).

The study is named after the sweep; a finished sweep run again under its
name keeps its old journal beside it (`keep_finished_study`). On cloud storage (s3://...) with no
`optuna_storage`, the study stays in memory (Optuna cannot write a journal
to a bucket) and Tune pickles it with the sweep, as for every sweep.
PBT and PB2 have no study: Tune's own generator draws their population.
`make optuna-dashboard NAME=<sweep>` serves it (`serve_dashboard`).
"""

from __future__ import annotations

import os
import re
from typing import Any

from tune_rl.errors import UsageError
from tune_rl.selection import metric

JOURNAL_SUFFIX = ".optuna.journal"
NO_STUDY = ("none: PBT and PB2 draw their population with Tune's own generator, not "
            "Optuna, and change it as it trains; their lineage goes to MLflow")


def study_location(spec) -> str | None:
    """Where the sweep's study is kept: an RDB URL or a journal file path;
    None when it stays in memory (cloud storage without `optuna_storage`)."""
    return spec.optuna_storage or default_journal(spec.storage, spec.name)


def default_journal(storage, name: str) -> str | None:
    """The journal beside sweep `name`'s folder in `storage` (a storage.Storage);
    None on cloud storage."""
    return None if storage.scheme else storage.path(name + JOURNAL_SUFFIX)


def is_url(location: str) -> bool:
    return "://" in location


def shown(location: str) -> str:
    """A location for people: an RDB URL's password replaced by ***."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", location)


def open_storage(location: str):
    """The Optuna storage at `location`: RDBStorage for a URL, else a journal file."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if is_url(location):
        return optuna.storages.RDBStorage(location)
    path = os.path.abspath(location)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return JournalStorage(JournalFileBackend(path))


def check_new_study(location: str, name: str) -> None:
    """A new sweep's study must be new: Optuna would otherwise load the old
    one (OptunaSearch creates its study with load_if_exists) and mix the two
    sweeps' trials. Also opens an RDB once, so that a wrong URL or an
    unreachable server is said before any trial starts."""
    import optuna
    import sqlalchemy.exc

    if not is_url(location) and not os.path.exists(location):
        return  # left uncreated: JournalFileBackend would create an empty file
    try:
        names = optuna.study.get_all_study_names(open_storage(location))
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as err:  # ImportError: no DB driver
        detail = str(err.__cause__ or err).splitlines()[0]
        raise UsageError(f"optuna_storage {shown(location)!r} cannot be opened ({detail}); "
                         "give an RDB URL Optuna can reach (sqlite:///file.db, "
                         "postgresql://..., mysql://...) or a journal file path") from None
    if name in names:
        raise UsageError(f"{shown(location)} already holds an Optuna study named {name!r} "
                         "(a sweep of that name ran before), which this sweep would load and "
                         "add to: pass a new --name, or delete that study first")


def keep_finished_study(spec) -> str | None:
    """A finished sweep run again under its name keeps its study, as it keeps
    its summary: the default journal is moved aside to
    `<name>.optuna-<time>.journal` (where optuna-dashboard still opens it),
    and the new run starts a study of its own. Returns the moved file."""
    import time

    location = None if spec.optuna_storage else study_location(spec)
    if location is None or not os.path.exists(location):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(os.path.getmtime(location)))
    kept = location[: -len(JOURNAL_SUFFIX)] + f".optuna-{stamp}.journal"
    os.replace(location, kept)
    return kept


def describe_study(plan) -> str:
    """Where the plan's study is kept and how to open it (--dry-run)."""
    spec = plan.spec
    if plan.mutable:
        return NO_STUDY
    if plan.configs:
        return "none: the configurations are fixed, nothing is searched"
    location = study_location(spec)
    if location is None:
        return ("in memory, pickled with the sweep (cloud storage): pass --optuna-storage "
                "to keep it where optuna-dashboard can open it")
    command = f"make optuna-dashboard NAME={spec.name}" + (
        f" OPTUNA_STORAGE={shown(spec.optuna_storage)}" if spec.optuna_storage else
        f" STORAGE={spec.storage_path}" if spec.storage_path != "ray_results" else "")
    return (f"study {spec.name!r} in {shown(location)}: each trial's params and its "
            f"{metric(spec.select, spec.search)} at each evaluation, by env steps; open it "
            f"with {command}")


def dashboard_command(location: str, host: str, port: int) -> list[str]:
    """optuna-dashboard's command line for a study location."""
    import sys

    command = [os.path.join(os.path.dirname(sys.executable), "optuna-dashboard"), location,
               "--host", host, "--port", str(port)]
    if not is_url(location):
        command += ["--storage-class", "JournalFileStorage"]
    return command


def serve_dashboard(location: str | None, name: str, port: int,
                    host: str = "127.0.0.1") -> Any:
    """Replaces this process with optuna-dashboard serving the study at
    `location` (sweep `name`'s), on `host` only."""
    if location is None or not is_url(location) and not os.path.isfile(location):
        raise UsageError(
            f"sweep {name!r} has no Optuna study at {location}: check --name and "
            "--storage-path (or pass the --optuna-storage the sweep used). PBT and PB2 "
            "sweeps, confirmations and train runs have none, nor do sweeps on cloud "
            "storage run without --optuna-storage")
    print(f"Optuna Dashboard of {shown(location)} at http://{host}:{port} (study {name!r})",
          flush=True)
    command = dashboard_command(location, host, port)
    os.execv(command[0], command)
