"""Secrets kept out of everything tune-rl uploads to MLflow.

A secret is the value of an environment variable, or of a sweep setting
(`env_config.api_token`, say), whose name contains TOKEN, KEY, SECRET,
PASSWORD or CREDENTIAL. Text is redacted by replacing the value with `***`.
RLlib checkpoints are binary: each component pickles the whole algorithm
config, `env_config` included, in its `class_and_ctor_args.pkl`, so a
checkpoint is uploaded from a copy whose pickles were unpickled, redacted
and pickled again. The top one also names the sweep's trainable, a class
made at run time and pickled by value with the closure it was made in (the
sweep's settings, env_config included): the copy names its nearest
importable base instead, RLlib's own algorithm class.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "CREDENTIAL")
MASK = "***"
_MIN_LENGTH = 4  # shorter values ("1", "yes") would mask unrelated text

logger = logging.getLogger(__name__)


def looks_secret(name: str) -> bool:
    return any(word in name.upper() for word in SECRET_WORDS)


def secret_values(settings: dict[str, Any] | None = None) -> list[str]:
    """The secret values in the environment and in `settings`, longest first."""
    named = [*os.environ.items(), *(settings or {}).items()]
    values = {str(v) for k, v in named if looks_secret(k) and len(str(v)) >= _MIN_LENGTH}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every secret value replaced by `***`."""
    for value in secret_values() if secrets is None else secrets:
        text = text.replace(value, MASK)
    return text


def _importable(cls: type) -> bool:
    try:
        found = importlib.import_module(cls.__module__)
        for name in cls.__qualname__.split("."):
            found = getattr(found, name)
    except (ImportError, AttributeError):
        return False
    return found is cls


def _redact_object(obj: Any, secrets: list[str], seen: set[int]) -> Any:
    """Redacts the strings inside an unpickled object graph, in place where it can.

    Classes are never changed (those made at run time may be the live ones:
    cloudpickle hands back the class it already has): one made at run time
    is replaced by its nearest importable base, which pickles by name.
    """
    if isinstance(obj, str):
        return redact(obj, secrets)
    if isinstance(obj, type):
        return next(cls for cls in obj.__mro__ if _importable(cls))
    if isinstance(obj, (bytes, int, float, complex, type(None))) or id(obj) in seen:
        return obj
    seen.add(id(obj))
    if isinstance(obj, dict):
        for key in list(obj):
            obj[key] = _redact_object(obj[key], secrets, seen)
    elif isinstance(obj, list):
        obj[:] = [_redact_object(v, secrets, seen) for v in obj]
    elif isinstance(obj, tuple):
        items = [_redact_object(v, secrets, seen) for v in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
    elif isinstance(obj, (set, frozenset)):
        return type(obj)(_redact_object(v, secrets, seen) for v in obj)
    elif hasattr(obj, "__dict__") and not callable(obj):
        # vars(), not setattr: RLlib's frozen configs refuse setattr.
        attributes = vars(obj)
        for key in list(attributes):
            attributes[key] = _redact_object(attributes[key], secrets, seen)
    return obj


def _redacted_bytes(data: bytes, secrets: list[str]) -> bytes | None:
    """The file's content without the secrets, or None where that cannot be done."""
    if data[:1] == b"\x80":  # a pickle (protocol 2 or later)
        from ray import cloudpickle  # RLlib pickled with it: classes made at run time

        try:
            return cloudpickle.dumps(_redact_object(pickle.loads(data), secrets, set()))
        except Exception as err:  # anything unpickling or pickling can raise
            logger.warning("could not redact a pickle: %s", err)
            return None
    try:
        return redact(data.decode(), secrets).encode()
    except UnicodeDecodeError:
        return None


@contextlib.contextmanager
def redacted_copy(folder: str | Path, secrets: list[str],
                  leave_out: tuple[str, ...] = ()) -> Iterator[Path]:
    """`folder`, or where it holds a secret a redacted copy of it.

    A file whose secret cannot be removed is left out of the copy, with a warning:
    an incomplete checkpoint in MLflow is better than a leaked secret. Files
    named in `leave_out` are not in the copy either, and not read.
    """
    folder = Path(folder)
    needles = [s.encode() for s in secrets]

    def holds_secret(path: Path) -> bool:
        data = path.read_bytes()
        return any(n in data for n in needles)

    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    left_out = [p for p in files if p.name in leave_out]
    found = [p.relative_to(folder) for p in files
             if p.name not in leave_out and needles and holds_secret(p)]
    if not found and not left_out:
        yield folder
        return
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp, folder.name)
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(*leave_out))
        for name in found:
            path = copy / name
            data = _redacted_bytes(path.read_bytes(), secrets)
            if data is None or any(n in data for n in needles):
                logger.warning("%s holds a secret that cannot be redacted: not uploaded", name)
                path.unlink()
            else:
                path.write_bytes(data)
        yield copy
