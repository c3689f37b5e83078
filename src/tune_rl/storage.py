"""Where a sweep's files live: a local folder or a cloud URI.

Through pyarrow's filesystems, the ones Tune itself writes trials and
checkpoints through, so `s3://bucket/sweeps` (with pyarrow's query options,
e.g. `?endpoint_override=host:port&scheme=http` for an S3-compatible server)
and `gs://bucket/sweeps` work wherever a local folder does: the summary, the
MLflow run mapping used on resume, and the checks that find an unfinished sweep.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from tune_rl.errors import UsageError


def is_uri(storage_path: str) -> bool:
    return bool(urlparse(storage_path).scheme)


def filesystem(storage_path: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path in it, for Tune's RunConfig and restore."""
    if not is_uri(storage_path):
        return pafs.LocalFileSystem(), str(Path(storage_path).resolve())
    try:
        return pafs.FileSystem.from_uri(storage_path)
    except (ValueError, OSError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise UsageError(f"storage_path {storage_path!r} is neither a folder nor a URI that "
                         f"pyarrow can open (s3://, gs://, hdfs://): {err}") from None


def check_reachable(storage_path: str) -> None:
    """A cloud storage_path must answer, and its bucket exist, before trials start."""
    storage = Storage(storage_path)
    bucket = storage.root.split("/", 1)[0]
    try:
        found = storage.fs.get_file_info(bucket).type != pafs.FileType.NotFound
    except OSError as err:
        raise UsageError(f"storage_path {storage_path!r} cannot be reached: "
                         f"{str(err).splitlines()[0]}") from None
    if not found:
        raise UsageError(f"storage_path {storage_path!r}: bucket {bucket!r} does not exist "
                         "(or these credentials cannot see it)")


class Storage:
    """A storage root (`--storage-path`); names below are relative to it."""

    def __init__(self, storage_path: str):
        self.fs, self.root = filesystem(storage_path)
        self.root = self.root.rstrip("/")
        self.scheme = urlparse(storage_path).scheme

    def location(self, name: str) -> str:
        """For people: the URI without its query (which may carry options)."""
        return self.location_of(self.path(name))

    def path(self, name: str) -> str:
        """For pyarrow and Tune, with `self.fs`."""
        return f"{self.root}/{name}"

    def exists(self, name: str) -> bool:
        return self.fs.get_file_info(self.path(name)).type != pafs.FileType.NotFound

    def modified(self, name: str):
        return self.fs.get_file_info(self.path(name)).mtime

    def read_text(self, name: str) -> str:
        with self.fs.open_input_stream(self.path(name)) as f:
            return f.read().decode()

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode())

    def write_bytes(self, name: str, data: bytes) -> None:
        """Whole or not at all: written beside, then moved into place."""
        self.fs.create_dir(os.path.dirname(self.path(name)), recursive=True)
        with self.fs.open_output_stream(self.path(name) + ".tmp") as f:
            f.write(data)
        self.fs.move(self.path(name) + ".tmp", self.path(name))

    def move(self, name: str, new_name: str) -> None:
        self.fs.move(self.path(name), self.path(new_name))

    def location_of(self, fs_path: str) -> str:
        """A path in `self.fs` (a checkpoint's, say), as shown to people."""
        return f"{self.scheme}://{fs_path}" if self.scheme else fs_path

    @contextlib.contextmanager
    def local_copy(self, location: str):
        """A folder of this storage, as a local folder (downloaded if need be)."""
        if not self.scheme or not location:
            yield location
            return
        with tempfile.TemporaryDirectory() as folder:
            pafs.copy_files(location.split("://", 1)[1], folder, source_filesystem=self.fs)
            yield folder

    def file(self, name: str) -> StoredFile:
        return StoredFile(self, name)


@dataclass
class StoredFile:
    """One file in a Storage, read and written like a Path."""

    storage: Storage
    name: str

    def exists(self) -> bool:
        return self.storage.exists(self.name)

    def read_text(self) -> str:
        return self.storage.read_text(self.name)

    def write_text(self, text: str) -> None:
        self.storage.write_text(self.name, text)
