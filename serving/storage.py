"""Read-only access to the published models under a lake root: a local folder or s3://bucket/prefix.

boto3 is imported only for an s3 root (it costs ≈ 0.3 s of a cold start), and the endpoint can be
pointed at moto_server or MinIO with CANDLELAKE_S3_ENDPOINT, as for the pipeline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol


class NotFound(Exception):
    """The object does not exist."""


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

    def folders(self, name: str) -> list[str]:
        folder = self.root / name
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

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
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise NotFound(self.uri(name)) from None

    def folders(self, name: str) -> list[str]:
        base = self._key(name).rstrip("/") + "/"
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base, Delimiter="/")
        return sorted(p["Prefix"][len(base) :].rstrip("/") for page in pages for p in page.get("CommonPrefixes", []))

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"


def open_store(root: str, s3_endpoint: str | None = None) -> Store:
    match = re.match(r"^s3a?://([^/]+)/?(.*)$", root)
    if match:
        return S3Store(match.group(1), match.group(2), s3_endpoint)
    return LocalStore(root)
