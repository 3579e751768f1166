"""What the Glue jobs and the Lambda run: deterministic zips of our sources and pinned modules.

Zips are written with fixed timestamps and sorted entries so the asset hash changes only when a
source file does (a redeploy with no change uploads nothing).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from infra.settings import REPO

# Glue 5.1 ships pyspark, pandas, numpy, pyarrow and boto3; the jobs need these beyond them, at the
# versions requirements.lock pins (what the tests ran with). infra/glue_wheels.py locks them (with
# their dependencies, hashed) for Glue's platform and bundles the wheels each job installs.
GLUE_MODULES_COMMON = ("great-expectations", "tenacity", "yfinance", "scipy", "delta-spark")
GLUE_MODULES_ML = (
    "scikit-learn",
    "joblib",
    "skl2onnx",
    "onnx",
    "onnxruntime",
    "matplotlib",
    "torch",
    "lightning",
    # xgboost.spark trains on the job's executors; barrier stages need a fixed executor count (Glue
    # auto-scaling off), which the train job's definition keeps.
    "xgboost-cpu",
    "onnxmltools",
)
ML_JOBS = ("train_models", "export_models")
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def lock_pins(lock: Path = REPO / "requirements.lock") -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def _add_tree(zf: zipfile.ZipFile, package: Path, arc_root: Path, pattern: str = "*.py") -> None:
    for path in sorted(package.rglob(pattern)):
        if "__pycache__" in path.parts or "node_modules" in path.parts or not path.is_file():
            continue
        info = zipfile.ZipInfo(str(path.relative_to(arc_root)), date_time=_FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        zf.writestr(info, path.read_bytes())


def source_zip(target: Path, packages: tuple[str, ...], data: tuple[str, ...] = ()) -> Path:
    """A zip of the named top-level packages (their .py files) and of every file under the `data`
    folders (relative to the repository): the Glue jobs' --extra-py-files and the Lambda's code
    (with the dashboard's static files)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as zf:
        for name in packages:
            _add_tree(zf, REPO / name, REPO)
        for folder in data:
            _add_tree(zf, REPO / folder, REPO, "*")
    return target
