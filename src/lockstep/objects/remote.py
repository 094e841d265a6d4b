"""Remotes: where objects and metadata documents go to be shared.

Three kinds behind one small interface: a plain directory (a mounted share, a
USB disk), S3 or any S3-compatible server (boto3; credentials come from the
standard AWS variables or files and are never written to the store), and a lockstep
server (``remote/server.py``). Objects
keep the local layout, ``objects/blake3/ab/cdef...``; metadata documents live
under ``meta/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from lockstep.errors import RemoteError, UsageError

_OBJECTS = "objects/blake3"


class Remote(Protocol):
    url: str

    def list_objects(self) -> set[str]: ...
    def upload(self, digest: str, source: Path) -> None: ...
    def download(self, digest: str, target: Path) -> None: ...
    def list_meta(self, prefix: str) -> list[str]: ...
    def read_meta(self, name: str) -> bytes: ...
    def write_meta(self, name: str, data: bytes) -> None: ...


def _object_key(digest: str) -> str:
    return f"{_OBJECTS}/{digest[:2]}/{digest[2:]}"


def _atomic_write(target: Path, write: Any) -> None:
    """Write through a temporary file in target's directory, then rename into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    os.close(fd)
    try:
        write(name)
        os.replace(name, target)
    finally:
        Path(name).unlink(missing_ok=True)


class DirectoryRemote:
    def __init__(self, url: str) -> None:
        self.url = url
        self.root = Path(url.removeprefix("file://")).expanduser()
        if self.root.exists() and not self.root.is_dir():
            raise RemoteError(f"remote {url} is a file, not a directory; fix the remote's URL")

    def require(self) -> None:
        """Reading a directory remote that is not there is an error, not an empty remote."""
        if not self.root.is_dir():
            raise RemoteError(
                f"remote directory {self.root} does not exist; check the remote's URL "
                "(`lockstep remote ls`) or push to it first"
            )

    def list_objects(self) -> set[str]:
        base = self.root / _OBJECTS
        if not base.is_dir():
            return set()
        return {
            prefix.name + entry.name
            for prefix in base.iterdir()
            if prefix.is_dir()
            for entry in prefix.iterdir()
            if not entry.name.startswith(".")
        }

    def upload(self, digest: str, source: Path) -> None:
        _atomic_write(self.root / _object_key(digest), lambda tmp: shutil.copyfile(source, tmp))

    def download(self, digest: str, target: Path) -> None:
        source = self.root / _object_key(digest)
        if not source.is_file():
            from lockstep.errors import ObjectMissing

            raise ObjectMissing(digest, what=f"object on remote {self.url}")
        _atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))

    def list_meta(self, prefix: str) -> list[str]:
        self.require()
        base = self.root / "meta" / prefix
        if not base.is_dir():
            return []
        return sorted(f"{prefix}/{p.name}" for p in base.iterdir() if p.suffix == ".json")

    def read_meta(self, name: str) -> bytes:
        return (self.root / "meta" / name).read_bytes()

    def write_meta(self, name: str, data: bytes) -> None:
        _atomic_write(self.root / "meta" / name, lambda tmp: Path(tmp).write_bytes(data))


class S3Remote:
    def __init__(self, url: str, endpoint_url: str | None) -> None:
        self.url = url
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise UsageError(f"remote URL {url!r} names no bucket; use s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        try:
            import boto3
            from botocore.config import Config
        except ModuleNotFoundError:
            raise UsageError("S3 remotes need boto3: pip install 'lockstep[s3]'") from None
        self.endpoint_url = endpoint_url
        # One client shared by the transfer threads (boto3 clients are thread-safe). A
        # short connect timeout: an endpoint that is down is said in seconds, not minutes.
        import botocore.exceptions as boto

        try:
            self.client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                config=Config(
                    max_pool_connections=32,
                    connect_timeout=5,
                    read_timeout=120,
                    retries={"max_attempts": 3, "mode": "standard"},
                ),
            )
        except boto.ProfileNotFound as exc:
            raise RemoteError(
                f"remote {url}: AWS profile {exc.kwargs.get('profile')!r} is not in the AWS "
                "config files; fix AWS_PROFILE or add the profile"
            ) from None
        except boto.BotoCoreError as exc:
            raise RemoteError(f"remote {url}: {exc}") from None

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """botocore's errors as lockstep's, each saying what to do."""
        import botocore.exceptions as boto

        where = f"remote {self.url}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")
        try:
            yield
        except boto.NoCredentialsError:
            raise RemoteError(
                f"no S3 credentials for {where}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or ~/.aws/credentials)"
            ) from None
        except (boto.EndpointConnectionError, boto.ConnectTimeoutError) as exc:
            raise RemoteError(
                f"cannot reach {where} ({exc}); check the endpoint URL and that the server is up"
            ) from None
        except boto.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchBucket", "404") and "Key" not in exc.response.get("Error", {}):
                raise RemoteError(
                    f"bucket {self.bucket!r} of {where} does not exist; create it (for "
                    f"example `aws s3 mb s3://{self.bucket}`) or fix the remote's URL"
                ) from None
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise RemoteError(
                    f"{where} refused access ({code}); check the credentials and the "
                    "bucket's permissions"
                ) from None
            raise RemoteError(f"{where} answered {code or 'an error'}: {exc}") from None
        except boto.BotoCoreError as exc:
            raise RemoteError(f"{where}: {exc}") from None

    def require(self) -> None:
        """The bucket exists and these credentials reach it (one request, no listing)."""
        with self._errors():
            self.client.head_bucket(Bucket=self.bucket)

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        start = len(self._key(""))
        with self._errors():
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                keys.extend(item["Key"][start:] for item in page.get("Contents", []))
        return keys

    def list_objects(self) -> set[str]:
        return {key[len(_OBJECTS) + 1 :].replace("/", "") for key in self._list(_OBJECTS + "/")}

    def upload(self, digest: str, source: Path) -> None:
        with self._errors():
            self.client.upload_file(str(source), self.bucket, self._key(_object_key(digest)))

    def download(self, digest: str, target: Path) -> None:
        def fetch(tmp: str) -> None:
            with self._errors():
                self.client.download_file(self.bucket, self._key(_object_key(digest)), tmp)

        _atomic_write(target, fetch)

    def list_meta(self, prefix: str) -> list[str]:
        return sorted(
            k.removeprefix("meta/") for k in self._list(f"meta/{prefix}/") if k.endswith(".json")
        )

    def read_meta(self, name: str) -> bytes:
        with self._errors():
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(f"meta/{name}"))
            return bytes(response["Body"].read())

    def write_meta(self, name: str, data: bytes) -> None:
        with self._errors():
            self.client.put_object(Bucket=self.bucket, Key=self._key(f"meta/{name}"), Body=data)


def open_remote(url: str, endpoint_url: str | None = None) -> Remote:
    if url.startswith("s3://"):
        return S3Remote(url, endpoint_url)
    if url.startswith(("http://", "https://")):
        from lockstep.remote.server import ServerRemote

        return ServerRemote.from_environment(url)
    if "://" in url and not url.startswith("file://"):
        raise UsageError(
            f"unsupported remote URL {url!r}; use s3://bucket/prefix, a lockstep server's "
            "http(s):// URL or a directory"
        )
    return DirectoryRemote(url)
