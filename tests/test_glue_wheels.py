"""The Glue jobs' hashed wheel bundles (infra/glue_wheels.py): the committed locks, and the bundle
builder's hash gate on a wheel made here (the real bundles are hundreds of MB: `make glue-wheels`)."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import pytest

from infra import glue_wheels, packaging


def _pins(text: str) -> dict[str, str]:
    return {name: re.match(r"^\S+==(\S+)", block).group(1) for name, block in glue_wheels.blocks(text)}


@pytest.mark.parametrize("kind", glue_wheels.KINDS)
def test_each_lock_pins_its_jobs_modules_at_the_tested_versions_with_hashes(kind):
    text = glue_wheels.lock_path(kind).read_text()
    pins, tested = _pins(text), packaging.lock_pins()
    for requirement in glue_wheels.top_level(kind):  # a module added to packaging without `make glue-lock` fails here
        name, version = requirement.split("==")
        assert name == "torch" or pins.get(name) == version, requirement
    for name, version in pins.items():  # what Glue installs is what the tests ran with
        assert version.split("+")[0] == tested[name], f"{name}=={version}: requirements.lock has {tested[name]}"
    for name, block in glue_wheels.blocks(text):
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
        assert hashes, f"{name} has no hash"
    # Glue's own Spark stays; no CUDA stack; torch (when locked) is the CPU build
    assert not set(pins) & set(glue_wheels.GLUE_PROVIDED)
    assert not [n for n in pins if glue_wheels.CUDA_ONLY.match(n) and n != "torch"]
    assert "torch" not in pins or pins["torch"].endswith("+cpu")
    assert "index-url" not in text


def test_the_ml_lock_without_its_cpu_torch_line_is_refused_by_the_bundle_builder(tmp_path):
    """Where the PyTorch CPU index could not be read, `lock` writes the marker and `bundle` refuses
    to build an ML bundle without torch rather than ship train/export a set that cannot run."""
    lock = tmp_path / "ml.lock"
    lock.write_text(f"{glue_wheels.TORCH_MISSING}: unreachable\n")
    with pytest.raises(glue_wheels.BundleError, match="no torch line.*make glue-lock"):
        glue_wheels.bundle("ml", lock, tmp_path / "ml.gluewheels.zip")
    committed = glue_wheels.lock_path("ml").read_text()
    assert glue_wheels.missing_torch("ml", committed) == (glue_wheels.TORCH_MISSING in committed)


def _wheel(folder: Path, name: str = "candlelake_probe", version: str = "1.0") -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "")
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


def test_the_bundle_holds_the_locked_wheels_and_a_wheel_whose_hash_differs_is_refused(tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    wheel = _wheel(index)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    lock = tmp_path / "etl.lock"
    lock.write_text(f"candlelake-probe==1.0 \\\n    --hash=sha256:{digest}\n")

    first = glue_wheels.bundle("etl", lock, tmp_path / "a" / "etl.gluewheels.zip", find_links=index)
    second = glue_wheels.bundle("etl", lock, tmp_path / "b" / "etl.gluewheels.zip", find_links=index)
    with zipfile.ZipFile(first) as zf:
        assert zf.namelist() == ["wheels/candlelake_probe-1.0-py3-none-any.whl", "wheels/requirements.txt"]
        assert zf.read("wheels/candlelake_probe-1.0-py3-none-any.whl") == wheel.read_bytes()
        assert zf.read("wheels/requirements.txt").decode() == lock.read_text()
    assert first.read_bytes() == second.read_bytes()  # an unchanged lock is an unchanged CDK asset

    lock.write_text(f"candlelake-probe==1.0 \\\n    --hash=sha256:{'0' * 64}\n")  # a substituted wheel
    with pytest.raises(glue_wheels.BundleError, match="(?s)refused.*(HASH|hash)"):
        glue_wheels.bundle("etl", lock, tmp_path / "c" / "etl.gluewheels.zip", find_links=index)
    assert not (tmp_path / "c" / "etl.gluewheels.zip").exists()
