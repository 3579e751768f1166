"""Read-only access to the published models under a lake root: a local folder or s3://bucket/prefix.

boto3 is imported only for an s3 root (it costs ≈ 0.3 s of a cold start), and the endpoint can be
pointed at moto_server or MinIO with CANDLELAKE_S3_ENDPOINT, as for the pipeline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol

from serving.api_error import ApiError


class NotFound(Exception):
    """The object does not exist."""


class StorageUnavailable(ApiError):
    """The store could not be read (permissions, a broken mount, S3 unreachable or denying).

    An ApiError (503) so a request that needs the store answers a clear JSON error instead of a
    500; the model cache catches it to keep serving the version it already holds."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "storage_unavailable", message)


class Store(Protocol):
    def read(self, name: str) -> bytes: ...
    def folders(self, name: str) -> list[str]: ...
    def uri(self, name: str) -> str: ...


class LocalStore:
    def __init__(self, root: str) -> None:
        self.root = Path(root[len("file://") :] if root.startswith("file://") else root)

    def read(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(self.uri(name)) from None
        except OSError as exc:  # EACCES, ELOOP, EIO, a stale mount: the object may exist but cannot be read
            raise StorageUnavailable(f"cannot read {self.uri(name)}: {exc.strerror or exc}") from exc

    def folders(self, name: str) -> list[str]:
        folder = self.root / name
        try:
            return sorted(p.name for p in folder.iterdir() if p.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:  # not "no folder" (an empty listing would be a lie) but "cannot look"
            raise StorageUnavailable(f"cannot list {self.uri(name)}: {exc.strerror or exc}") from exc

    def uri(self, name: str) -> str:
        return str(self.root / name)


class S3Store:
    def __init__(self, bucket: str, prefix: str, endpoint: str | None) -> None:
        import boto3

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client: Any = boto3.client("s3", endpoint_url=endpoint)

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def read(self, name: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise NotFound(self.uri(name)) from None
        except (BotoCoreError, ClientError) as exc:  # access denied, no bucket, endpoint unreachable
            raise StorageUnavailable(f"cannot read {self.uri(name)}: {exc}") from exc

    def folders(self, name: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        base = self._key(name).rstrip("/") + "/"
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base, Delimiter="/")
        try:
            return sorted(
                p["Prefix"][len(base) :].rstrip("/") for page in pages for p in page.get("CommonPrefixes", [])
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"cannot list {self.uri(name)}: {exc}") from exc

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"


def open_store(root: str, s3_endpoint: str | None = None) -> Store:
    match = re.match(r"^s3a?://([^/]+)/?(.*)$", root)
    if match:
        return S3Store(match.group(1), match.group(2), s3_endpoint)
    return LocalStore(root)
