"""Load a published model version once, verified, and keep it in memory; follow `latest`.

A version is served only if every file the API reads matches the manifest's sha256 and the
manifest matches the sha256 that `gold/models/latest` names: a tampered or half-copied artifact is
refused (503 with the reason), never served. The API reads the ONNX graphs, their io.json,
features.json and registry.json; it never reads (or unpickles) the native joblib / torch files.

Predictions for the published symbols depend only on the version's feature snapshot, so they are
computed for every symbol when the version loads (one batched ONNX run per task) and `/predict` is
a dictionary lookup. The ONNX sessions stay loaded for `POST /predict/candles`, which runs them on
features computed from the caller's bars (serving/candles.py).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from lakecontract.artifacts import (
    FEATURES,
    LATEST,
    MANIFEST,
    MODELS_DIR,
    REGISTRY,
    SIGNAL_THRESHOLDS,
    chart_file,
    output_column,
    sha256,
    signal,
    snapshot_inputs,
    valid_version,
)
from lakecontract.constants import TASKS
from lakecontract.objectstore import ObjectNotFound, ObjectStore
from serving import storage
from serving.api_error import ApiError
from serving.storage import StorageUnavailable

log = logging.getLogger("candlelake.serving")


class ArtifactError(ApiError):
    """Why a version cannot be served; the subclass fixes the status and code."""

    status = 503
    code = "artifact_error"

    def __init__(self, message: str) -> None:
        super().__init__(self.status, self.code, message)


class NoModel(ArtifactError):
    code = "no_model"


class ArtifactRefused(ArtifactError):
    code = "artifact_refused"


class NoChart(ArtifactError):
    status = 404
    code = "no_chart"


class NoQualityReport(ArtifactError):
    status = 404
    code = "no_quality_report"


class UnknownVersion(ArtifactError):
    status = 404
    code = "unknown_model_version"


@dataclass(frozen=True)
class Prediction:
    symbol: str
    asof: str
    close: float
    prob_up: float
    predicted_return: float
    direction_source: str  # the algorithm, or "baseline"
    return_source: str
    notes: tuple[str, ...] = ()


@dataclass
class Bundle:
    """One verified version in memory."""

    version: str
    manifest: dict[str, Any]
    snapshot: dict[str, Any]
    registry: list[dict[str, Any]]
    predictions: dict[str, Prediction]
    published_at: str | None
    loaded_at: float
    load_seconds: float
    verified_files: list[str] = field(default_factory=list)
    sessions: dict[str, Any] = field(default_factory=dict)
    """task → ONNX session of its promoted model (tasks that serve the baseline have none)."""
    charts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """symbol → its chart/<symbol>.json, read (and verified) on first request."""
    extras: dict[str, bytes] = field(default_factory=dict)
    """Other published files read on first request (the data-quality report), verified."""

    @property
    def interval(self) -> str:
        return self.manifest["interval"]

    @property
    def symbols(self) -> list[str]:
        return sorted(self.snapshot["symbols"])

    @property
    def baseline_prob_up(self) -> float:
        return float(self.manifest["baselines"]["direction"]["prob_up"])

    def signal(self, prob_up: float) -> Literal["buy", "hold", "sell"]:
        return signal(prob_up, self.manifest.get("signal_thresholds") or SIGNAL_THRESHOLDS)


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN: starlette refuses to encode one (a 500), so non-finite numbers become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def _read_verified(store: ObjectStore, folder: str, name: str, manifest: dict[str, Any]) -> bytes:
    meta = manifest["files"].get(name)
    if meta is None:
        raise ArtifactRefused(f"{store.uri(f'{folder}/{name}')} is not listed in the manifest")
    try:
        data = storage.read(store, f"{folder}/{name}")
    except ObjectNotFound:
        raise ArtifactRefused(f"{store.uri(f'{folder}/{name}')} is missing") from None
    digest = sha256(data)
    if digest != meta["sha256"]:
        raise ArtifactRefused(
            f"{store.uri(f'{folder}/{name}')}: sha256 {digest[:16]}… does not match the manifest's "
            f"{meta['sha256'][:16]}…; refusing to serve version {manifest.get('version')}"
        )
    return data


def _sessions(manifest: dict, files: dict[str, bytes]) -> dict[str, Any]:
    """task → its ONNX session, for the tasks whose model is promoted; built once per version and
    kept, for the predictions of the snapshot and for the bars a caller sends."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # tiny graphs: threads cost more than they save
    options.inter_op_num_threads = 1
    sessions = {}
    for task in TASKS:
        doc = manifest["models"][task]
        if doc["serve"] != "model":
            continue
        try:
            sessions[task] = ort.InferenceSession(
                files[doc["files"]["onnx"]], options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ArtifactRefused(f"{task}: the ONNX model cannot be loaded: {exc}") from exc
    return sessions


def run_task(session: Any, io_spec: dict[str, Any], x: Any) -> Any:
    """The task's one number per input row (float64), from the model input `snapshot_inputs` built."""
    return output_column(session.run([io_spec["output"]], {io_spec["input"]: x})[0], io_spec)


def task_outputs(manifest: dict, sessions: dict[str, Any], snap: dict) -> dict[str, dict[str, float]]:
    """task → symbol → the served model's number for the symbol's newest row in `snap` (a
    features.json-shaped snapshot: the published one, or one built from a caller's bars)."""
    out: dict[str, dict[str, float]] = {}
    for task, session in sessions.items():
        io_spec = manifest["models"][task]["input"]
        symbols, x = snapshot_inputs(snap, io_spec)
        if not symbols:
            out[task] = {}
            continue
        try:
            values = run_task(session, io_spec, x)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ArtifactRefused(f"{task}: the ONNX model cannot run: {exc}") from exc
        out[task] = dict(zip(symbols, (float(v) for v in values), strict=True))
    return out


def prediction(manifest: dict, symbol: str, asof: str, close: float, outputs: dict[str, float | None]) -> Prediction:
    """The served answer for one bar from the tasks' model outputs (task → number, or None): the
    model's number where the task serves a model and it is finite, the baseline otherwise."""
    base = {
        "direction": float(manifest["baselines"]["direction"]["prob_up"]),
        "return": float(manifest["baselines"]["return"]["predicted_return"]),
    }
    notes: list[str] = []
    sources, values = {}, {}
    for task in TASKS:
        doc = manifest["models"][task]
        value = outputs.get(task)
        if doc["serve"] == "model" and value is not None and math.isfinite(value):
            sources[task], values[task] = doc["algorithm"], value
        else:
            sources[task], values[task] = "baseline", base[task]
            if doc["serve"] == "model":
                notes.append(f"{task}: {doc['algorithm']} has no finite output for this bar; baseline served")
    return Prediction(
        symbol=symbol,
        asof=asof,
        close=close,
        prob_up=values["direction"],
        predicted_return=values["return"],
        direction_source=sources["direction"],
        return_source=sources["return"],
        notes=tuple(notes),
    )


def _predictions(manifest: dict, snap: dict, outputs: dict[str, dict[str, float]]) -> dict[str, Prediction]:
    close = snap["columns"].index("close")
    result = {}
    for symbol, body in snap["symbols"].items():
        if not body["ts"]:
            continue
        per_task = {task: values.get(symbol) for task, values in outputs.items()}
        result[symbol] = prediction(manifest, symbol, body["ts"][-1], float(body["values"][-1][close]), per_task)
    return result


def load_version(store: ObjectStore, version: str, pointer: dict[str, Any] | None = None) -> Bundle:
    """Read and verify `gold/models/<version>`; `pointer` (the parsed `latest`) pins the manifest.

    A verified file that still does not have the layout the API reads (a manifest without
    `models`, a features.json that is not JSON: an export bug) is refused like a tampered one,
    not left to escape as a 500."""
    try:
        return _load_version(store, version, pointer)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ArtifactRefused(f"model version {version} has a malformed artifact: {exc!r}") from exc


def _load_version(store: ObjectStore, version: str, pointer: dict[str, Any] | None) -> Bundle:
    if not valid_version(version):
        raise UnknownVersion(f"{version!r} is not a model version name")
    started = time.monotonic()
    folder = f"{MODELS_DIR}/{version}"
    try:
        manifest_bytes = storage.read(store, f"{folder}/{MANIFEST}")
    except ObjectNotFound:
        if pointer is not None:
            raise ArtifactRefused(
                f"gold/models/latest names version {version} but {store.uri(f'{folder}/{MANIFEST}')} does not exist"
            ) from None
        raise UnknownVersion(f"model version {version} is not published under {store.uri(MODELS_DIR)}") from None
    if pointer is not None and sha256(manifest_bytes) != pointer.get("manifest_sha256"):
        raise ArtifactRefused(
            f"{store.uri(f'{folder}/{MANIFEST}')}: sha256 does not match the one gold/models/latest names; "
            f"refusing to serve version {version}"
        )
    try:
        manifest = json.loads(manifest_bytes)
    except json.JSONDecodeError as exc:
        raise ArtifactRefused(f"{store.uri(f'{folder}/{MANIFEST}')} is not JSON: {exc}") from None
    if manifest.get("version") != version:
        raise ArtifactRefused(f"{store.uri(folder)} holds a manifest of version {manifest.get('version')!r}")
    names = [FEATURES] + [manifest["models"][t]["files"][k] for t in TASKS for k in ("onnx", "io")]
    if REGISTRY in manifest["files"]:  # versions exported before registry.json existed have none
        names.append(REGISTRY)
    files = {name: _read_verified(store, folder, name, manifest) for name in names}
    snap = json.loads(files[FEATURES])
    sessions = _sessions(manifest, files)
    outputs = task_outputs(manifest, sessions, snap)
    registry = json.loads(files[REGISTRY]) if REGISTRY in files else []
    bundle = Bundle(
        version=version,
        manifest=finite_or_none(manifest),
        snapshot=snap,
        registry=finite_or_none(registry),
        predictions=_predictions(manifest, snap, outputs),
        sessions=sessions,
        published_at=(pointer or {}).get("published_at"),
        loaded_at=time.time(),
        load_seconds=time.monotonic() - started,
        verified_files=sorted(names),
    )
    log.info(
        "loaded model version",
        extra={
            "event": "model_loaded",
            "model_version": version,
            "files_verified": len(names),
            "symbols": len(bundle.predictions),
            "load_ms": round(bundle.load_seconds * 1000, 1),
        },
    )
    return bundle


def parse_pointer(raw: bytes) -> dict[str, Any]:
    """`gold/models/latest` as export writes it: a JSON object naming `version` and `manifest_sha256`.

    Anything else (not UTF-8, not JSON, a list, a missing or non-string key) is refused with a
    message that says what is wrong, rather than escaping as a 500."""
    try:
        pointer = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        raise ArtifactRefused(f"gold/models/latest is not JSON: {exc}") from None
    if not isinstance(pointer, dict):
        raise ArtifactRefused(f"gold/models/latest is a JSON {type(pointer).__name__}, not an object")
    for key in ("version", "manifest_sha256"):
        if not isinstance(pointer.get(key), str):
            raise ArtifactRefused(f"gold/models/latest: {key!r} is missing or not a string (got {pointer.get(key)!r})")
    return pointer


def artifact_age_seconds(bundle: Bundle, now: float | None = None) -> float | None:
    stamp = bundle.published_at or bundle.manifest.get("created_at")
    if not stamp:
        return None
    published = datetime.fromisoformat(stamp).timestamp()
    return round((time.time() if now is None else now) - published, 1)


class ModelCache:
    """The version `latest` names (re-checked at most every `reload_seconds`) plus a few others."""

    def __init__(self, store: ObjectStore, reload_seconds: float, cached_versions: int = 4) -> None:
        self.store = store
        self.reload_seconds = reload_seconds
        self.cached_versions = max(0, cached_versions)
        self._current: Bundle | None = None
        self._error: ApiError | None = None
        # Why the last look at the store failed while a good version stayed in memory (for /health).
        self._store_error: str | None = None
        self._pointer_bytes: bytes | None = None
        self._checked = float("-inf")
        self._others: OrderedDict[str, Bundle] = OrderedDict()
        self._manifests: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @property
    def checked_at(self) -> float | None:
        return None if self._checked == float("-inf") else self._checked

    def refresh(self, force: bool = False) -> None:
        """Read `latest`; load the version it names when it changed. Never raises: the outcome is
        kept (a bundle, or the error that requests will answer with).

        A store that cannot be read — `latest` gone (lake wiped or unmounted), permissions, S3
        unreachable — says nothing about the models, so the verified version in memory keeps being
        served and `store_error` says why it may be stale. A pointer that can be read but is
        malformed, or names a version that fails verification, is a bad publish: refused (503)."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._checked < self.reload_seconds:
                return
            self._checked = now
            latest_uri = self.store.uri(f"{MODELS_DIR}/{LATEST}")
            try:
                raw = storage.read(self.store, f"{MODELS_DIR}/{LATEST}")
            except ObjectNotFound:
                self._keep_or_fail(
                    f"{latest_uri} does not exist",
                    NoModel(f"no model published yet: {latest_uri} does not exist (run the pipeline: make run)"),
                )
                return
            except Exception as exc:  # storage unreachable: keep what we have, report it
                error = exc if isinstance(exc, ApiError) else NoModel(f"cannot read {latest_uri}: {exc}")
                self._keep_or_fail(str(exc), error)
                return
            self._store_error = None
            if raw == self._pointer_bytes and self._current is not None:
                return
            try:
                pointer = parse_pointer(raw)
                bundle = load_version(self.store, pointer["version"], pointer)
            except StorageUnavailable as exc:  # half-read new version: retry at the next check
                self._keep_or_fail(str(exc), exc)
                return
            except ArtifactError as exc:
                self._current, self._error = None, ArtifactRefused(str(exc))
                log.error("model version refused", extra={"event": "model_refused", "reason": str(exc)})
            else:
                self._current, self._error = bundle, None
            self._pointer_bytes = raw

    def _keep_or_fail(self, reason: str, error: ApiError) -> None:
        """The store failed: keep serving the bundle in memory (reporting why), or answer `error`."""
        log.warning("cannot read the model store", extra={"event": "store_unreadable", "error": reason})
        if self._current is not None:
            self._store_error = f"{reason}; serving version {self._current.version} loaded before"
        else:
            self._error, self._store_error = error, None

    @property
    def store_error(self) -> str | None:
        return self._store_error

    def current(self) -> Bundle:
        self.refresh()
        if self._current is None:
            raise self._error or NoModel("no model loaded")
        return self._current

    def version(self, version: str | None) -> Bundle:
        """`None` or "latest" → the current bundle; another version → loaded once, verified against
        its own manifest, and kept among the `cached_versions` most recently used."""
        if version in (None, "", "latest"):
            return self.current()
        current = self._current
        if current is not None and current.version == version:
            return current
        with self._lock:
            if version in self._others:
                self._others.move_to_end(version)
                return self._others[version]
        bundle = load_version(self.store, version)
        with self._lock:
            self._others[version] = bundle
            while len(self._others) > self.cached_versions:
                self._others.popitem(last=False)
        return bundle

    def published_file(self, bundle: Bundle, name: str) -> bytes | None:
        """A file of `bundle`'s version the load did not read (a chart, the data-quality report),
        verified against the manifest and kept with the bundle; None when the version has none."""
        if name not in bundle.extras:
            if name not in bundle.manifest["files"]:
                return None
            bundle.extras[name] = _read_verified(self.store, f"{MODELS_DIR}/{bundle.version}", name, bundle.manifest)
        return bundle.extras[name]

    def chart(self, bundle: Bundle, symbol: str) -> dict[str, Any]:
        """The symbol's chart bars of `bundle`'s version (read on first use: a page view asks for one
        symbol, the init phase for none)."""
        if symbol not in bundle.charts:
            raw = self.published_file(bundle, chart_file(symbol))
            if raw is None:
                raise NoChart(
                    f"model version {bundle.version} has no chart for {symbol!r}: it was published before "
                    "export wrote chart bars (run the pipeline again to publish a version that has them)"
                )
            bundle.charts[symbol] = finite_or_none(json.loads(raw))
        return bundle.charts[symbol]

    def manifest(self, version: str) -> dict[str, Any]:
        """A version's manifest alone (for listings; not verified until the version is served).
        Manifests never change once published, so each is read once."""
        if version not in self._manifests:
            try:
                raw = storage.read(self.store, f"{MODELS_DIR}/{version}/{MANIFEST}")
            except ObjectNotFound:
                raise UnknownVersion(f"model version {version} has no manifest") from None
            self._manifests[version] = finite_or_none(json.loads(raw))
        return self._manifests[version]

    def published_versions(self) -> list[str]:
        return [v for v in storage.folders(self.store, MODELS_DIR) if valid_version(v)]

    def status(self) -> tuple[Bundle | None, ApiError | None]:
        self.refresh()
        return self._current, self._error


def latest_rows(bundle: Bundle, symbol: str, limit: int) -> tuple[list[str], list[dict[str, Any]]]:
    """(feature columns, the newest `limit` rows of the symbol, oldest first)."""
    body = bundle.snapshot["symbols"][symbol]
    columns = bundle.snapshot["columns"]
    rows = []
    for ts, values in zip(body["ts"][-limit:], body["values"][-limit:], strict=True):
        rows.append({"ts": ts, **dict(zip(columns, values, strict=True))})
    return columns, rows
