"""The API's view of the lake's object store (lakecontract.objectstore): read-only, and a store that
cannot be read is an answer (503 storage_unavailable), not a 500.

The store itself is the one the jobs write with, so a root, a key or an endpoint means the same to
both; this module only turns its `StoreUnavailable` into the API's error, in one place.
"""

from __future__ import annotations

from lakecontract.objectstore import ObjectStore, StoreUnavailable
from serving.api_error import ApiError


class StorageUnavailable(ApiError):
    """The store could not be read (permissions, a broken mount, S3 unreachable or denying).

    An ApiError (503) so a request that needs the store answers a clear JSON error instead of a
    500; the model cache catches it to keep serving the version it already holds."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "storage_unavailable", message)


def open_store(root: str, s3_endpoint: str | None = None) -> ObjectStore:
    return ObjectStore(root, endpoint=s3_endpoint)


def read(store: ObjectStore, name: str) -> bytes:
    """The object's bytes; ObjectNotFound if absent, StorageUnavailable if the store cannot be read."""
    try:
        return store.read_bytes(name)
    except StoreUnavailable as exc:
        raise StorageUnavailable(str(exc)) from exc


def folders(store: ObjectStore, name: str) -> list[str]:
    try:
        return store.folders(name)
    except StoreUnavailable as exc:
        raise StorageUnavailable(str(exc)) from exc
