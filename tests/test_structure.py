"""The shape of the house, checked: what a newcomer is promised about the code's structure.

import-linter (pyproject.toml, run by `make check`) holds the direction of imports between our
packages; these tests hold what it cannot say: that the shared package costs nothing to import,
and that the units a reader meets first stay short enough to read in one screen.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Units that compose others (stack constructors, routes, job bodies, the app factory) stay short; a
# long one is a sign that a named step is hiding inside it.
MAX_FUNCTION_LINES = 60
SHORT_UNITS = ("serving", "infra", "lakehouse/jobs", "glue_jobs", "lakecontract", "step_functions")


def test_lakecontract_imports_only_the_standard_library_at_import_time():
    """Both the Lambda and the Glue jobs carry lakecontract: importing it must not pull numpy, boto3
    (≈ 0.3 s of a cold start) or anything of the batch stack; functions that need them import them."""
    code = (
        "import sys, lakecontract, lakecontract.artifacts, lakecontract.objectstore, lakecontract.constants, "
        "lakecontract.athena_queries; import json; "
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'boto3', 'botocore', 'pyspark', 'pandas', 'lakehouse', 'serving', 'fastapi', 'pydantic'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def _long_functions(folder: str) -> list[str]:
    found = []
    for path in sorted((REPO / folder).rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    return found


@pytest.mark.parametrize("folder", SHORT_UNITS)
def test_no_function_is_longer_than_a_screen(folder):
    assert _long_functions(folder) == []


def test_the_length_check_sees_a_long_function(tmp_path, monkeypatch):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(f"def long():\n{body}\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert _long_functions("pkg") == [f"pkg/m.py:1 long ({MAX_FUNCTION_LINES + 1} lines)"]
