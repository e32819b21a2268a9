"""The storage host service: files by key, in a local directory or an S3 bucket.

Python workers use the *_bytes methods; Ruby and Node children reach only HOST_METHODS,
which carry file contents as base64 because the guest protocol is JSON lines.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from simbi_workers.config import Settings
from simbi_workers.errors import JobError, PermanentJobError

log = logging.getLogger(__name__)

# S3 answers for a key that is not there (get_object says NoSuchKey, head_object says 404).
_MISSING_CODES = ("NoSuchKey", "404", "NotFound")


class Storage:
    """The shared host-call surface; subclasses implement the four *_key/_bytes methods."""

    HOST_METHODS = ("put", "get", "delete")

    def put(
        self, key: str, data_base64: str, content_type: str = "application/octet-stream"
    ) -> dict:
        try:
            data = base64.b64decode(data_base64, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise PermanentJobError(
                f"storage.put: data_base64 for key {key!r} is not base64"
            ) from None
        self.put_bytes(key, data, content_type)
        return {"key": key, "bytes": len(data)}

    def get(self, key: str) -> dict:
        return {"data_base64": base64.b64encode(self.get_bytes(key)).decode("ascii")}

    def delete(self, key: str) -> dict:
        return {"deleted": self.delete_key(key)}

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        raise NotImplementedError

    def get_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def delete_key(self, key: str) -> bool:
        """Remove the file; True when it existed."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError


def check_key(key: str) -> str:
    """Keys are relative slash-separated paths; anything else could escape the root."""
    if not isinstance(key, str) or not key:
        raise PermanentJobError(f"storage key {key!r} must be a non-empty string")
    segments = key.split("/")
    if key.startswith("/") or "\\" in key or "\0" in key:
        raise PermanentJobError(f"storage key {key!r} must be a relative path")
    if any(segment in ("", ".", "..") for segment in segments):
        raise PermanentJobError(f"storage key {key!r} has an empty, '.' or '..' segment")
    return key


class StorageKeyMissing(PermanentJobError):
    """A get of a key that was never stored (or was deleted); no retry brings it back."""

    def __init__(self, key: str):
        super().__init__(f"storage key {key!r} does not exist")
        self.key = key


class LocalStorage(Storage):
    """Files under var/storage/: the default that needs no account."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        # A symlink inside the root could still point outside it.
        if not path.is_relative_to(self.root):
            raise PermanentJobError(f"storage key {key!r} resolves outside the storage root")
        return path

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)

        # Write then rename, so a reader never sees half a file and a crash leaves none.
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise StorageKeyMissing(key) from None

    def delete_key(self, key: str) -> bool:
        path = self.path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        self._prune(path.parent)
        return True

    def _prune(self, directory: Path) -> None:
        """Remove folders the delete left empty, as S3 has no empty folders either."""
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return  # not empty, or already gone
            directory = directory.parent

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()


class S3Storage(Storage):
    """An S3 bucket (AWS, MinIO, ...). Credentials come from boto3's own chain and are
    never read or logged here."""

    def __init__(self, bucket: str, endpoint_url: str | None = None):
        self.bucket = bucket
        config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3})
        self.client = boto3.client("s3", endpoint_url=endpoint_url, config=config)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        with self._errors("put", key):
            self.client.put_object(
                Bucket=self.bucket, Key=check_key(key), Body=data, ContentType=content_type
            )

    def get_bytes(self, key: str) -> bytes:
        with self._errors("get", key):
            response = self.client.get_object(Bucket=self.bucket, Key=check_key(key))
            return response["Body"].read()

    def delete_key(self, key: str) -> bool:
        # S3 deletes silently whether or not the key exists; ask first to answer honestly.
        existed = self.exists(key)
        with self._errors("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=key)
        return existed

    def exists(self, key: str) -> bool:
        try:
            with self._errors("head", key):
                self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except StorageKeyMissing:
            return False
        return True

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """Translate botocore errors where they enter: a missing key is permanent; the rest
        (throttling, network, 5xx) is a JobError that the retry policy may fix."""
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_CODES:
                raise StorageKeyMissing(key) from None
            raise JobError(f"S3 {action} of {key!r} in {self.bucket} failed: {code}") from exc
        except BotoCoreError as exc:
            raise JobError(f"S3 {action} of {key!r} in {self.bucket} failed: {exc}") from exc


def from_settings(settings: Settings) -> Storage:
    if settings.s3_bucket:
        log.info("storage backend=s3 bucket=%s", settings.s3_bucket)
        return S3Storage(settings.s3_bucket, settings.s3_endpoint_url)
    return LocalStorage(settings.var_dir / "storage")
