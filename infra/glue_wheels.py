"""The Glue jobs' Python modules as hashed wheel bundles: `<kind>.gluewheels.zip` (Glue 5.0+).

Each job installs one bundle with `--python-modules-installer-option --no-index`: nothing comes
from PyPI or any other index at run time, so no job run resolves a dependency afresh and none can be
handed a look-alike package. Two kinds, because the ETL jobs need none of the ML stack:

| kind  | jobs                                                  | lock                    |
|-------|-------------------------------------------------------|-------------------------|
| `etl` | ingest_candles, build_silver, build_features, record_failure | `infra/glue/etl.lock` |
| `ml`  | train_models, export_models                           | `infra/glue/ml.lock`    |

    python -m infra.glue_wheels lock     # re-resolve both locks (make glue-lock)
    python -m infra.glue_wheels bundle   # download every locked wheel, hash-checked, and zip it (make glue-wheels)

The locks are resolved for Glue 5.1's Python 3.11 on x86_64 (Amazon Linux 2023, glibc 2.34) at
the versions `requirements.lock` pins (what the tests ran with), with a sha256 hash on every line.
Left out: Glue's own Spark (`pyspark`, `py4j`) and, in `ml`, the CUDA stack that PyPI's Linux torch
wheel pulls in (`nvidia-*`, `cuda-*`, `triton`). torch itself is the CPU build from the PyTorch
index, named by its exact file URL and hash: a direct reference, not an extra index searched for
every package (the dependency-confusion pattern the jobs used before).

`bundle` runs `pip download --require-hashes`: a wheel whose hash is not in the lock fails the
build, naming it. The zip holds `wheels/*.whl` and `wheels/requirements.txt` (the lock), written
with fixed timestamps so an unchanged lock gives the same CDK asset.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from infra import packaging
from infra.settings import REPO

GLUE_PYTHON = "3.11"
GLUE_PLATFORM = "x86_64-manylinux_2_34"  # uv's name; pip's is below
PIP_PLATFORMS = ("manylinux_2_34_x86_64", "manylinux_2_28_x86_64", "manylinux2014_x86_64")
LOCK_DIR = REPO / "infra" / "glue"
BUNDLE_DIR = REPO / "build" / "glue"
KINDS = ("etl", "ml")
# Glue's own Spark: installing PyPI's over it would replace the runtime Glue configured.
GLUE_PROVIDED = ("pyspark", "py4j")
# What PyPI's Linux torch wheel brings for CUDA: gigabytes a CPU-only Glue worker has no use for.
CUDA_ONLY = re.compile(r"^(nvidia-.*|cuda-.*|triton|torch)$")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_MISSING = "# torch: MISSING"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


class BundleError(RuntimeError):
    """A lock that cannot be bundled (or resolved), with what to do about it."""


def kind_of(job: str) -> str:
    return "ml" if job in packaging.ML_JOBS else "etl"


def lock_path(kind: str) -> Path:
    return LOCK_DIR / f"{kind}.lock"


def bundle_name(kind: str) -> str:
    return f"{kind}.gluewheels.zip"


def top_level(kind: str, pins: dict[str, str] | None = None) -> list[str]:
    """The modules a kind of job imports beyond Glue's, each at the version requirements.lock pins."""
    pins = pins or packaging.lock_pins()
    names = packaging.GLUE_MODULES_COMMON + (packaging.GLUE_MODULES_ML if kind == "ml" else ())
    missing = [n for n in names if n not in pins]
    if missing:
        raise BundleError(f"requirements.lock pins no version for {missing}")
    return [f"{n}=={pins[n]}" for n in names]


def blocks(text: str) -> list[tuple[str, str]]:
    """A compiled requirements file as (package name, its whole block: pin, hashes, `# via` lines)."""
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        start = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(==| @ )", line)
        if start:
            out.append((start.group(1).lower(), [line]))
        elif out and (line.startswith(" ") or not line):
            out[-1][1].append(line)
    return [(name, "\n".join(lines).rstrip() + "\n") for name, lines in out]


def _dropped(name: str, kind: str) -> bool:
    return name in GLUE_PROVIDED or (kind == "ml" and bool(CUDA_ONLY.match(name)))


def _uv(*args: str, stdin: str) -> str:
    uv = Path(sys.executable).parent / "uv"
    done = subprocess.run([str(uv), "pip", "compile", "-q", "-", *args], input=stdin, capture_output=True, text=True)
    if done.returncode:
        raise BundleError(f"uv pip compile {' '.join(args)} failed:\n{done.stderr.strip()}")
    return done.stdout


def _torch_cpu(version: str) -> str:
    """torch's CPU wheel for Glue as a direct reference with its hash (the PyTorch index, no deps)."""
    local = f"{version}+cpu"
    text = _uv(
        "--no-deps", "--generate-hashes", "--index-url", TORCH_CPU_INDEX,
        "--python-version", GLUE_PYTHON, "--python-platform", GLUE_PLATFORM,
        stdin=f"torch=={local}\n",
    )  # fmt: skip
    hashes = re.findall(r"--hash=(sha256:[0-9a-f]{64})", text)
    return f"torch=={local} \\\n" + " \\\n".join(f"    --hash={h}" for h in hashes) + "\n    # the CPU build\n"


def lock(kind: str) -> str:
    """Resolve a kind's lock text (needs PyPI, and for `ml` the PyTorch CPU index)."""
    pins = packaging.lock_pins()
    constraints = "".join(f"{n}=={v}\n" for n, v in pins.items())
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as c:
        c.write(constraints)
        c.flush()
        text = _uv(
            "--generate-hashes", "--python-version", GLUE_PYTHON, "--python-platform", GLUE_PLATFORM,
            "--constraint", c.name, "--no-header", "--no-annotate",
            stdin="\n".join(top_level(kind, pins)) + "\n",
        )  # fmt: skip
    kept = [block for name, block in blocks(text) if not _dropped(name, kind)]
    header = (
        f"# Glue {kind} jobs' modules for Python {GLUE_PYTHON} on {GLUE_PLATFORM}, hashed:"
        " python -m infra.glue_wheels lock\n"
        f"# (requirements.lock's versions; without {', '.join(GLUE_PROVIDED)}"
        + (", the CUDA stack, torch from PyPI" if kind == "ml" else "")
        + ")\n"
    )
    if kind == "ml":
        try:
            kept.append(_torch_cpu(pins["torch"]))
        except BundleError as exc:
            kept.append(f"{TORCH_MISSING}: the PyTorch CPU index could not be read ({exc.args[0].splitlines()[-1]})\n")
    return header + "".join(kept)


def missing_torch(kind: str, text: str) -> bool:
    return kind == "ml" and not any(name == "torch" for name, _ in blocks(text))


def bundle(kind: str, lock_file: Path, target: Path, *, find_links: Path | None = None) -> Path:
    """Download every wheel `lock_file` names, each checked against its hashes, and zip them.

    `find_links` (tests) reads wheels from a folder instead of the indexes."""
    text = lock_file.read_text()
    if missing_torch(kind, text):
        raise BundleError(
            f"{lock_file} has no torch line: the CPU wheel's hash comes from {TORCH_CPU_INDEX}; run "
            "`make glue-lock` on a machine that reaches it, commit the lock, then `make glue-wheels`"
        )
    with tempfile.TemporaryDirectory(prefix=f"glue-{kind}-") as tmp:
        wheels = Path(tmp) / "wheels"
        # torch from the PyTorch CPU index as the only index (its hash is in the lock), the rest from PyPI
        parts = blocks(text)
        sets = {
            "": "".join(block for name, block in parts if name != "torch"),
            TORCH_CPU_INDEX: "".join(block for name, block in parts if name == "torch"),
        }
        for index, requirements in sets.items():
            if not requirements:
                continue
            listed = Path(tmp) / f"requirements-{len(index)}.txt"
            listed.write_text(requirements)
            _download(listed, wheels, find_links or None, index)
        (wheels / "requirements.txt").write_text(text)
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w") as zf:
            for path in sorted(wheels.iterdir()):
                info = zipfile.ZipInfo(f"wheels/{path.name}", date_time=_FIXED_TIME)
                info.compress_type = zipfile.ZIP_STORED  # wheels are zips already
                info.external_attr = 0o644 << 16
                zf.writestr(info, path.read_bytes())
    return target


def _download(requirements: Path, wheels: Path, find_links: Path | None, index: str) -> None:
    source = ["--index-url", index] if index else []
    if find_links:
        source = ["--no-index", "--find-links", str(find_links)]
    platforms = [part for p in PIP_PLATFORMS for part in ("--platform", p)]
    done = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
            "--require-hashes", "--no-deps", "--only-binary=:all:", *platforms,
            "--python-version", GLUE_PYTHON, "--implementation", "cp", *source,
            "-d", str(wheels), "-r", str(requirements),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if done.returncode:
        raise BundleError(f"pip download refused the set:\n{done.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.glue_wheels", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("lock", "bundle"))
    parser.add_argument("--kind", choices=KINDS, action="append", help="one kind (default: both)")
    parser.add_argument("--out", type=Path, default=BUNDLE_DIR, help=f"bundle folder (default {BUNDLE_DIR})")
    args = parser.parse_args(argv)
    status = 0
    for kind in args.kind or KINDS:
        try:
            if args.command == "lock":
                text = lock(kind)
                lock_path(kind).parent.mkdir(parents=True, exist_ok=True)
                lock_path(kind).write_text(text)
                print(f"[glue-wheels] {lock_path(kind)}: {len(blocks(text))} packages")
                if missing_torch(kind, text):
                    print(f"[glue-wheels] {lock_path(kind)}{text.split(TORCH_MISSING)[1].strip()}", file=sys.stderr)
                    status = 1
            else:
                zipped = bundle(kind, lock_path(kind), args.out / bundle_name(kind))
                print(f"[glue-wheels] {zipped}: {zipped.stat().st_size / 1e6:.0f} MB")
        except BundleError as exc:
            print(f"[glue-wheels] error: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
