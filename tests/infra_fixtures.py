"""Stand-ins for the build outputs the CDK app packages, so the app synthesizes in tests."""

from __future__ import annotations

import zipfile
from pathlib import Path


def stand_in_wheel_bundles(folder: Path) -> Path:
    """Small zips in place of `make glue-wheels`' bundles (hundreds of MB of wheels): the template
    depends on their names and bytes' digest only; tests/test_glue_wheels.py builds a real one."""
    for kind in ("etl", "ml"):
        with zipfile.ZipFile(folder / f"{kind}.gluewheels.zip", "w") as zf:
            zf.writestr("wheels/requirements.txt", f"# stand-in for the {kind} bundle\n")
    return folder
