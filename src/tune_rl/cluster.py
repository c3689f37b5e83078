"""Where a sweep runs: a local Ray, or an existing Ray cluster.

Ray is the distributed engine; tune-rl only connects to it and refuses the
setups that would lose results on a cluster: a results folder that other
nodes cannot see, and an SQLite MLflow store on the driver's disk.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import ray
from ray.exceptions import AuthenticationError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tune_rl.errors import UsageError
from tune_rl.storage import is_uri


def check_before_connecting(address: str | None, tracking_uri: str) -> None:
    """Refusals that need no Ray: an SQLite store for a cluster, a silent address.

    Inside a Ray job, Ray sets RAY_ADDRESS: the sweep runs on that cluster.
    """
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        return
    if tracking_uri.startswith("sqlite:"):
        raise UsageError(
            f"tracking_uri {tracking_uri!r} is an SQLite file on this machine's disk; on a "
            "cluster (--address) the sweep's driver may run elsewhere and the file is "
            "lost with it: start an MLflow server and pass --tracking-uri http://...")
    if address != "auto":
        check_answers(address, "Ray cluster")


def connect(address: str | None) -> None:
    """Starts a local Ray, or joins the cluster at `address` (or $RAY_ADDRESS)."""
    where = address or os.environ.get("RAY_ADDRESS")
    if where:
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                     logging_level="WARNING")
        except (ConnectionError, TimeoutError) as err:
            # Past check_answers' TCP probe this is seldom silence: Ray 2.60 also
            # reports a token it refused this way (InvalidAuthToken in its log).
            hint = ("" if os.environ.get("RAY_AUTH_MODE") == "token" else
                    "; if the cluster uses token authentication (Ray 2.60 starts clusters "
                    "with it), set RAY_AUTH_MODE=token and make its token available here")
            raise UsageError(f"Ray cluster at {where!r} did not accept the connection: "
                             f"{_first_line(err)}{hint}") from None
        except AuthenticationError as err:
            raise UsageError(f"Ray cluster at {where!r} refused this client: "
                             f"{err.message}") from None
        except RuntimeError as err:
            if not str(err).startswith("Version mismatch"):
                raise  # not the cluster's answer: a bug, shown as one
            raise UsageError(f"Ray cluster at {where!r} runs other versions than this "
                             f"machine: {_first_line(err)}") from None
        return
    # Loopback only: the local Ray serves no one else.
    ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")


def check_storage_is_shared(storage_path: str) -> None:
    """Every node must see the results folder, or trials' results scatter.

    Asked of the nodes themselves: the driver leaves a marker file in the
    folder and a task on each node looks for it. A folder mounted on every
    node passes; a folder on one machine's own disk does not.
    """
    if is_uri(storage_path):  # s3://, gs://, ...: every node reaches it
        return
    nodes = [node for node in ray.nodes() if node["Alive"]]
    if len(nodes) < 2:
        return
    folder = Path(storage_path).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f".tune_rl-visible-{uuid.uuid4().hex}"
    marker.touch()
    asks = {_exists.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        node["NodeID"], soft=False)).remote(str(marker)): node for node in nodes}
    try:
        answered, silent = ray.wait(list(asks), num_returns=len(asks), timeout=120)
        blind = [_node_name(asks[ask]) for ask in answered if not ray.get(ask)]
    finally:
        marker.unlink()
    if silent:  # a busy or draining node: its trials, if any, will tell
        print(f"tune-rl: warning: {', '.join(_node_name(asks[a]) for a in silent)} did not "
              f"say within 120 s whether it sees {storage_path!r}", file=sys.stderr)
    if blind:
        raise UsageError(
            f"storage_path {storage_path!r} is not visible from every node of this cluster: "
            f"{', '.join(blind)} cannot see it. Trials there would write their results to "
            "their own disk: pass a cloud URI (s3://, gs://) or a folder mounted on every node")


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _node_name(node: dict) -> str:
    return f"{node['NodeManagerAddress']} (node {node['NodeID'][:8]})"


@ray.remote(num_cpus=0)
def _exists(path: str) -> bool:
    return os.path.exists(path)


def check_answers(address: str, what: str) -> None:
    """`address` ([scheme://]host:port) accepts a connection, or UsageError.

    ray.init keeps retrying a dead address for minutes; a TCP probe tells at once.
    """
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"address {address!r} is not host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise UsageError(f"{what} at {address!r} does not answer ({err})") from None
