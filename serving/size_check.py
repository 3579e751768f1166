"""Install the serving dependency set as the Lambda runtime would get it and check its size.

A zip-deployed Lambda may hold 250 MB unzipped (function code + layers). This installs
serving/requirements.txt for the target Python and platform into a temporary folder (uv,
binary wheels only — what a deploy step would upload), adds the code the Lambda ships (serving/ with
the dashboard's static files, and lakecontract/, as infra/stacks/api.py packages it), prints the
size per distribution, and exits 1 when the total reaches the limit.

    python -m serving.size_check [--python-version 3.12] [--platform x86_64-manylinux_2_34]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LIMIT_BYTES = 262_144_000  # 250 MB as AWS counts it (250 × 2^20)
SERVING = Path(__file__).resolve().parent
CODE = ("serving", "lakecontract")  # the Lambda's own code: infra/stacks/api.py API_CODE
MB = 2**20


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def install(target: Path, python_version: str, platform: str) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        raise SystemExit("uv not found: run `make setup`")
    cmd = [
        uv,
        "pip",
        "install",
        "-q",
        "--target",
        str(target),
        "--python-version",
        python_version,
        "--python-platform",
        platform,
        "--only-binary",
        ":all:",
        "--require-hashes",
        "-r",
        str(SERVING / "requirements.txt"),
    ]
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.size_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--python-version", default="3.12")
    parser.add_argument("--platform", default="x86_64-manylinux_2_34")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="candlelake-serving-") as tmp:
        target = Path(tmp)
        install(target, args.python_version, args.platform)
        skip = shutil.ignore_patterns("__pycache__", "*.txt", "*.in", "node_modules", "package*.json")
        for package in CODE:
            shutil.copytree(SERVING.parent / package, target / package, ignore=skip)
        sizes: dict[str, int] = {}
        for entry in target.iterdir():
            if entry.name.endswith((".dist-info", ".libs")):
                key = entry.name.split("-")[0].split(".")[0].lower()
            else:
                key = entry.stem.lower()
            sizes[key] = sizes.get(key, 0) + (folder_bytes(entry) if entry.is_dir() else entry.stat().st_size)
        total = sum(sizes.values())
        runtime_has = sum(v for k, v in sizes.items() if k in ("boto3", "botocore", "s3transfer"))
    print(f"serving dependency set for python{args.python_version} / {args.platform}:")
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {name:<20} {size / MB:7.1f} MB")
    print(
        f"  {'total':<20} {total / MB:7.1f} MB installed (limit {LIMIT_BYTES / MB:.0f} MB unzipped); "
        f"{(total - runtime_has) / MB:.1f} MB without boto3/botocore/s3transfer, which the Lambda runtime ships"
    )
    if total >= LIMIT_BYTES:
        print(
            f"FAIL: {total / MB:.1f} MB ≥ {LIMIT_BYTES / MB:.0f} MB: too big for a zip-deployed Lambda", file=sys.stderr
        )
        return 1
    print("OK: fits a zip-deployed Lambda")
    return 0


if __name__ == "__main__":
    sys.exit(main())
