"""Files under the lake root that are not Delta tables: reports, model artifacts, pointers, run history.

One store for both sides: the jobs write through it, the API reads through it, so a path, a key or
an error means the same thing to both. The root is a local folder or s3://bucket/prefix (s3a://
too). S3 is written with boto3 (not Spark), because these files are read by things that have no
Spark (the serving Lambda, a person's browser); boto3 is imported only for an S3 root (it costs
≈ 0.3 s of the API's cold start). The endpoint is the one the job or the API was configured with
(`--s3-endpoint`, CANDLELAKE_S3_ENDPOINT): without an `endpoint` argument the environment variable
is used, then AWS.

`replace` is the one operation with a guarantee: a reader sees the old content or the new one,
never a torn file — `os.replace` of a temporary file locally, and a single PUT on S3 (object
writes are atomic there). The model `latest` pointer relies on it.

Reads tell two failures apart, because their readers act differently on them: `ObjectNotFound`
(the object is not there: "nothing published yet") and `StoreUnavailable` (the store cannot be
read — permissions, a broken mount, S3 unreachable or denying: the object may well exist, so an
API keeps serving what it holds).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

_S3_ROOT = re.compile(r"^(s3a?)://([^/]+)/?(.*)$")


class ObjectNotFound(FileNotFoundError):
    """The object does not exist (a FileNotFoundError, local or not, so callers catch one type)."""


class StoreUnavailable(OSError):
    """The store could not be read or listed; says nothing about whether the object exists."""


class ObjectStore:
    """Read, write and list files under `<root>/<folder>`."""

    def __init__(self, root: str, folder: str = "", endpoint: str | None = None) -> None:
        root = root.rstrip("/")
        # Resolved once here so a store keeps the endpoint it was built for.
        self.endpoint = endpoint or os.environ.get("CANDLELAKE_S3_ENDPOINT") or None
        self.root = root
        folder = folder.strip("/")
        self._s3: Any = None
        match = _S3_ROOT.match(root)
        if match:
            self.scheme, self.bucket, prefix = match.groups()
            self.prefix = "/".join(p for p in (prefix.strip("/"), folder) if p)
            self.folder: Path | None = None
        else:
            local = root[len("file://") :] if root.startswith("file://") else root
            self.folder = Path(local) / folder if folder else Path(local)

    @property
    def is_local(self) -> bool:
        return self.folder is not None

    def _client(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3", endpoint_url=self.endpoint)
        return self._s3

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def uri(self, name: str = "") -> str:
        if self.folder is not None:
            return str(self.folder / name) if name else str(self.folder)
        return (
            f"{self.scheme}://{self.bucket}/{self._key(name)}"
            if name
            else f"{self.scheme}://{self.bucket}/{self.prefix}"
        )

    def write_bytes(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        if self.folder is not None:
            path = self.folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            self._client().put_object(Bucket=self.bucket, Key=self._key(name), Body=data, ContentType=content_type)
        return self.uri(name)

    def write(self, name: str, text: str, content_type: str = "text/plain") -> str:
        return self.write_bytes(name, text.encode("utf-8"), f"{content_type}; charset=utf-8")

    def replace(self, name: str, text: str, content_type: str = "application/json") -> str:
        """Write `name` atomically: readers see the previous content or this one, nothing between."""
        if self.folder is None:
            return self.write(name, text, content_type)
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; the pointer is read by other users (serving)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)

    def create(self, name: str, text: str, content_type: str = "application/json") -> bool:
        """Write `name` only if it does not exist, atomically: of two writers racing, exactly one gets True.
        Locally an O_EXCL create; on S3 a conditional PUT (`If-None-Match: *`, answered 412 when the key
        exists), so the lake's run lock needs no other service."""
        if self.folder is not None:
            path = self.folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            return True
        from botocore.exceptions import ClientError

        try:
            self._client().put_object(
                Bucket=self.bucket, Key=self._key(name), Body=text.encode(), ContentType=content_type, IfNoneMatch="*"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def delete(self, name: str) -> None:
        """Remove `name`; a missing one is not an error."""
        if self.folder is not None:
            (self.folder / name).unlink(missing_ok=True)
        else:
            self._client().delete_object(Bucket=self.bucket, Key=self._key(name))

    def read_bytes(self, name: str) -> bytes:
        if self.folder is not None:
            try:
                return (self.folder / name).read_bytes()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise ObjectNotFound(self.uri(name)) from None
            except OSError as exc:  # EACCES, ELOOP, EIO, a stale mount: the object may exist but cannot be read
                raise StoreUnavailable(f"cannot read {self.uri(name)}: {exc.strerror or exc}") from exc
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client()
        try:
            return client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except client.exceptions.NoSuchKey:
            raise ObjectNotFound(self.uri(name)) from None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("AccessDenied", "403") and self._absent(name):
                raise ObjectNotFound(self.uri(name)) from None
            raise StoreUnavailable(f"cannot read {self.uri(name)}: {exc}") from exc
        except BotoCoreError as exc:  # no bucket, endpoint unreachable
            raise StoreUnavailable(f"cannot read {self.uri(name)}: {exc}") from exc

    def _absent(self, name: str) -> bool:
        """After a GetObject AccessDenied: is the object simply not there? S3 answers 403, not 404, for a
        missing key when the caller may not list the bucket at that key — and a role listing only under
        a prefix (the API's: gold/models/) never may for GetObject, whose request carries no prefix. A
        listing under the key itself is allowed, and tells a missing file (→ ObjectNotFound, a 404 or
        "nothing published") from a real denial (→ StoreUnavailable). If the listing fails too, nothing
        is known: not absent."""
        key = self._key(name)
        try:
            listed = self._client().list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        except Exception:  # botocore's errors: cannot tell
            return False
        return not any(obj.get("Key") == key for obj in listed.get("Contents", []))

    def read(self, name: str) -> str:
        return self.read_bytes(name).decode("utf-8")

    def exists(self, name: str) -> bool:
        if self.folder is not None:
            return (self.folder / name).is_file()
        try:
            self._client().head_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:  # botocore ClientError 404; anything else is re-raised
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def names(self, suffix: str = "") -> list[str]:
        """Names of the files directly in the folder that end with `suffix`."""
        if self.folder is not None:
            if not self.folder.is_dir():
                return []
            return sorted(p.name for p in self.folder.iterdir() if p.is_file() and p.name.endswith(suffix))
        base = f"{self.prefix}/" if self.prefix else ""
        pages = self._client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base)
        keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        return sorted(k[len(base) :] for k in keys if k.endswith(suffix) and "/" not in k[len(base) :])

    def folders(self, name: str = "") -> list[str]:
        """Names of the sub-folders of `name` (the published model versions under gold/models).

        An absent folder lists as empty; a folder that cannot be looked at raises StoreUnavailable,
        because an empty listing would be a lie."""
        if self.folder is not None:
            folder = self.folder / name
            try:
                return sorted(p.name for p in folder.iterdir() if p.is_dir())
            except (FileNotFoundError, NotADirectoryError):
                return []
            except OSError as exc:
                raise StoreUnavailable(f"cannot list {self.uri(name)}: {exc.strerror or exc}") from exc
        from botocore.exceptions import BotoCoreError, ClientError

        base = self._key(name).rstrip("/") + "/" if name or self.prefix else ""
        pages = self._client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base, Delimiter="/")
        try:
            return sorted(
                p["Prefix"][len(base) :].rstrip("/") for page in pages for p in page.get("CommonPrefixes", [])
            )
        except (BotoCoreError, ClientError) as exc:
            raise StoreUnavailable(f"cannot list {self.uri(name)}: {exc}") from exc
