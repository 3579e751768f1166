"""Every Markdown file of the repository renders as its author meant: fences closed, tables whole, links alive.

Why a test: the README once lost the closing fence of its run output, and GitHub rendered everything from
"Configuration" to "Prediction API" as one code block (issue 13); no check noticed, because a Markdown file that
renders wrongly is still a valid file. The files are parsed with markdown-it-py's CommonMark parser (GitHub's
Markdown is CommonMark plus tables), and the checks are stated against the source lines the parser maps its
tokens to:

- a fenced code block ends on a closing fence line of its own kind (same character, at least as long). One that
  runs to the end of the document or of its list item has no such line. A lost closing fence can also leave every
  fence balanced: the next bare "```" closes the block and the text between renders as code. The sign of that is
  a line inside the block that looks like another opening fence with an info string ("```bash"), which cannot
  close a block, so such a line is reported too. (A fence that shows Markdown with fences inside uses a longer
  fence or tildes, and is not reported.)
- each table row has as many cells as its header row: GitHub splits cells at every unescaped "|", even inside
  code spans, so "sum(|Δclose|, 5)" in a cell shifts the rest of the row (write "\\|").
- every relative link or image names a file or folder that a fresh clone has (tracked, or new and not ignored), and
  a "#fragment" of a Markdown file names one of its headings (GitHub's anchors).

Plus: docs/features.md holds the table `make docs` writes from lakecontract/feature_spec.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = {".git", ".venv", "node_modules", "build", "lake", ".jars", ".stamps", ".pytest_cache"}

PARSER = MarkdownIt("commonmark").enable("table")
FENCE = re.compile(r"(?P<fence>`{3,}|~{3,})(?P<info>.*)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")


def repository_files() -> set[str]:
    """Paths (relative, '/'-separated) a fresh clone would have: tracked files and new files git does not ignore.

    Deleted-but-tracked files are left out. Outside a git checkout, every file under the root except the usual
    build and environment folders.
    """
    git = shutil.which("git")
    if git and (ROOT / ".git").exists():
        listed = subprocess.run(
            [git, "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout.decode()
        return {name for name in listed.split("\0") if name and (ROOT / name).is_file()}
    return {
        p.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("*")
        if p.is_file() and not SKIPPED_DIRS.intersection(p.relative_to(ROOT).parts)
    }


REPO_FILES = repository_files()
MARKDOWN_FILES = sorted(name for name in REPO_FILES if name.endswith(".md"))


# --- the checks ------------------------------------------------------------------------------------------------


def _bare(line: str) -> str:
    """The line without its indentation and blockquote markers: what a fence inside a list or quote looks like."""
    return line.lstrip(" \t>")


def fence_problems(text: str) -> list[str]:
    """Code fences that do not end on a closing fence line, or that swallowed what looks like another opening fence."""
    lines = text.splitlines()
    problems = []
    for token in PARSER.parse(text):
        if token.type != "fence" or token.map is None:
            continue
        start, end = token.map
        char, length = token.markup[0], len(token.markup)
        last = _bare(lines[end - 1]).rstrip() if end - 1 > start else ""
        closing = FENCE.fullmatch(last)
        if not (closing and closing["fence"][0] == char and len(closing["fence"]) >= length and not closing["info"]):
            where = "the end of the file" if end >= len(lines) else f"line {end}, where its container ends"
            problems.append(f"line {start + 1}: the code fence {token.markup!r} is never closed (it runs to {where})")
        for number in range(start + 1, end - 1):
            inner = FENCE.fullmatch(_bare(lines[number]).rstrip())
            if inner and inner["fence"][0] == char and len(inner["fence"]) >= length and inner["info"].strip():
                problems.append(
                    f"line {number + 1}: {lines[number].strip()!r} sits inside the code block opened at line "
                    f"{start + 1}: an earlier fence is not closed, so the text between renders as code"
                )
    return problems


def _cells(row: str) -> int:
    """How many cells GitHub sees in a table row: split at every "|" not escaped by a backslash."""
    parts = re.split(r"(?<!\\)\|", row.strip())
    if parts and parts[0].strip() == "":
        parts = parts[1:]
    if parts and parts[-1].strip() == "":
        parts = parts[:-1]
    return len(parts)


def table_problems(text: str) -> list[str]:
    """Table rows whose cell count differs from their header's (an unescaped "|" inside a cell shifts the row)."""
    lines = text.splitlines()
    problems = []
    header = 0
    for token in PARSER.parse(text):
        if token.type == "table_open" and token.map is not None:
            header = _cells(lines[token.map[0]])
        elif token.type == "tr_open" and token.map is not None:
            row = lines[token.map[0]]
            if (found := _cells(row)) != header:
                problems.append(f"line {token.map[0] + 1}: {found} cells where the header has {header}: {row.strip()}")
    return problems


def _inline_text(token: Token) -> str:
    return "".join(child.content for child in token.children or () if child.type in {"text", "code_inline", "image"})


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings: lower case, punctuation dropped, spaces as '-', repeats numbered."""
    anchors: set[str] = set()
    seen: Counter[str] = Counter()
    tokens = PARSER.parse(text)
    for opening, inline in zip(tokens, tokens[1:], strict=False):
        if opening.type != "heading_open":
            continue
        slug = re.sub(r"[^\w\- ]", "", _inline_text(inline).strip().lower()).replace(" ", "-")
        anchors.add(slug if seen[slug] == 0 else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return anchors


def _links(tokens: list[Token]) -> Iterator[tuple[int, str]]:
    for token in tokens:
        line = token.map[0] + 1 if token.map else 0
        for child in token.children or ():
            if child.type == "link_open":
                yield line, str(child.attrs.get("href", ""))
            elif child.type == "image":
                yield line, str(child.attrs.get("src", ""))


def link_problems(path: str, text: str, root: Path, files: set[str]) -> list[str]:
    """Relative links of the Markdown file `path` (relative to `root`) that name no file, folder or heading."""
    folders = {parent.as_posix() for name in files for parent in Path(name).parents} - {"."}
    problems = []
    for line, href in _links(PARSER.parse(text)):
        if not href or SCHEME.match(href):
            continue  # web and mail links: not this test's to check
        target, _, fragment = urllib.parse.unquote(href).partition("#")
        if target:
            base = root if target.startswith("/") else (root / path).parent
            resolved = (base / target.lstrip("/")).resolve()
            try:
                name = resolved.relative_to(root.resolve()).as_posix()
            except ValueError:
                problems.append(f"line {line}: {href} leaves the repository")
                continue
            if name not in files and name not in folders and name != ".":
                problems.append(f"line {line}: {href} names no file or folder of the repository ({name})")
                continue
        else:
            name = path
        if fragment and name.endswith(".md"):
            anchors = heading_anchors((root / name).read_text(encoding="utf-8"))
            if fragment not in anchors:
                problems.append(f"line {line}: {href}: {name} has no heading with the anchor #{fragment}")
    return problems


def _read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


# --- every Markdown file of the repository -----------------------------------------------------------------------


def test_the_markdown_files_of_the_repository_are_all_found():
    """Guards the tests below against checking nothing: the files they must see are in the list."""
    expected = {"README.md", "docs/features.md", "serving/README.md", "step_functions/README.md", "infra/README.md"}
    assert expected <= set(MARKDOWN_FILES)
    assert not [name for name in MARKDOWN_FILES if SKIPPED_DIRS.intersection(Path(name).parts)]


@pytest.mark.parametrize("name", MARKDOWN_FILES)
def test_every_code_fence_is_closed(name):
    assert fence_problems(_read(name)) == []


@pytest.mark.parametrize("name", MARKDOWN_FILES)
def test_every_table_row_has_its_headers_cell_count(name):
    assert table_problems(_read(name)) == []


@pytest.mark.parametrize("name", MARKDOWN_FILES)
def test_relative_links_name_files_and_headings_that_exist(name):
    assert link_problems(name, _read(name), ROOT, REPO_FILES) == []


def test_the_readme_is_a_front_door_of_at_most_200_lines():
    readme = _read("README.md")
    assert len(readme.splitlines()) <= 200
    linked = {href for _, href in _links(PARSER.parse(readme))}
    for page in ("docs/features.md", "docs/models.md", "docs/data-quality.md", "docs/run-output.md"):
        assert page in linked, f"the README does not link {page}"
    for folder_readme in ("serving/README.md", "step_functions/README.md", "infra/README.md"):
        assert folder_readme in linked, f"the README does not link {folder_readme}"


# --- the checks catch what they are for ------------------------------------------------------------------------


def test_the_readme_with_any_one_fence_line_removed_is_caught():
    """Each fence line of the real README, removed in turn (an opening or a closing one), is reported."""
    lines = _read("README.md").splitlines(keepends=True)
    fence_lines = [i for i, line in enumerate(lines) if FENCE.fullmatch(_bare(line).rstrip())]
    assert len(fence_lines) >= 4
    for i in fence_lines:
        broken = "".join(lines[:i] + lines[i + 1 :])
        assert fence_problems(broken), f"removing README line {i + 1} ({lines[i].strip()!r}) went unnoticed"


def test_the_issue_13_readme_shape_is_caught_although_every_fence_pairs_up():
    """The lost closing fence of issue 13: the next bare fence closes the block, so nothing runs to the end."""
    text = "Output:\n\n```\nrun output\n\n## Configuration\n\nprose\n\n```bash\nmake serve\n```\n\nmore prose\n"
    problems = fence_problems(text)
    assert problems == [
        "line 10: '```bash' sits inside the code block opened at line 3: an earlier fence is not closed, "
        "so the text between renders as code"
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("# t\n\n```python\nx = 1\n", 3),  # runs to the end of the file
        ("```\n", 1),  # an opening fence on the last line
        ("- item\n\n  ```\n  code\n\nparagraph\n", 3),  # ends with its list item
        ("> ```\n> code\n\nafter\n", 1),  # ends with its block quote
        ("````\ncode\n```\n", 1),  # a shorter fence does not close a longer one
        ("~~~\ncode\n```\n", 1),  # nor a fence of the other character
        ("```\ncode\n``` not a close\n", 1),  # a closing fence carries no info string
    ],
)
def test_an_unclosed_fence_is_reported(text, line):
    problems = fence_problems(text)
    assert problems and problems[0].startswith(f"line {line}: the code fence"), problems


@pytest.mark.parametrize(
    "text",
    [
        "```bash\nmake run\n```\n",
        "````markdown\n```bash\nmake run\n```\n````\n",  # Markdown shown inside a longer fence
        "~~~\n```bash\nx\n```\n~~~\n",  # backtick fences inside a tilde fence
        "```\ncode\n`````\n",  # a longer closing fence closes
        "- item\n\n  ```\n  code\n  ```\n\n> ```\n> quoted\n> ```\n",
        "    ```\n    indented code, not a fence\n",
    ],
)
def test_closed_fences_are_not_reported(text):
    assert fence_problems(text) == []


def test_a_pipe_inside_a_table_cell_is_reported_unless_escaped():
    table = "| name | formula | window |\n|---|---|---|\n"
    assert table_problems(table + "| `SUMP5` | sum(|Δclose|, 5) | 6 |\n") == [
        "line 3: 5 cells where the header has 3: | `SUMP5` | sum(|Δclose|, 5) | 6 |"
    ]
    assert table_problems(table + "| `SUMP5` | sum(\\|Δclose\\|, 5) | 6 |\n") == []
    assert table_problems(table + "| `x` | `a|b` | 1 |\n"), "GitHub splits inside code spans too"


def test_broken_relative_links_and_anchors_are_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Why `this` — and how?\n\n## Why `this` — and how?\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("")
    files = {"README.md", "docs/page.md", "pkg/mod.py"}
    text = (
        "[ok](docs/page.md) [ok](docs/page.md#why-this--and-how) [ok](docs/page.md#why-this--and-how-1)\n"
        "[ok](pkg/) [ok](pkg/mod.py) [ok](#top) [web](https://example.com/x.md) [mail](mailto:a@b.c)\n\n"
        "# Top\n\n"
        "[gone](docs/gone.md) [anchor](docs/page.md#nowhere) [up](../outside.md) ![img](img/none.png)\n"
    )
    (tmp_path / "README.md").write_text(text)
    assert link_problems("README.md", text, tmp_path, files) == [
        "line 6: docs/gone.md names no file or folder of the repository (docs/gone.md)",
        "line 6: docs/page.md#nowhere: docs/page.md has no heading with the anchor #nowhere",
        "line 6: ../outside.md leaves the repository",
        "line 6: img/none.png names no file or folder of the repository (img/none.png)",
    ]
    inner = "[back](../README.md#top) [self](#a-page) [bad](#nope)\n"
    assert link_problems("docs/page.md", "# A page\n\n" + inner, tmp_path, files) == [
        "line 3: #nope: docs/page.md has no heading with the anchor #nope"
    ]


def test_a_link_to_an_ignored_file_is_reported_because_a_fresh_clone_lacks_it(tmp_path):
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "report.html").write_text("")
    assert link_problems("README.md", "[r](lake/report.html)\n", tmp_path, {"README.md"}) == [
        "line 1: lake/report.html names no file or folder of the repository (lake/report.html)"
    ]


# --- docs/features.md is what `make docs` writes -----------------------------------------------------------------


def test_the_feature_page_holds_the_table_make_docs_writes():
    from lakecontract.feature_spec import FEATURES_PAGE, page_with_table

    page = _read(FEATURES_PAGE)
    assert page_with_table(page) == page, f"{FEATURES_PAGE} is stale: run `make docs`"


def test_the_feature_page_lists_every_feature_then_the_labels_once_in_spec_order():
    """Read back from the rendered table, not from the generator: one row per feature and label, in order."""
    from lakecontract.feature_spec import FEATURES, LABELS

    tokens = PARSER.parse(_read("docs/features.md"))
    first_cells = [
        _inline_text(tokens[i + 2])
        for i, token in enumerate(tokens)
        if token.type == "tr_open" and tokens[i + 1].type == "td_open"
    ]
    assert first_cells == [f.name for f in FEATURES] + list(LABELS)
    assert len(first_cells) == 117


def test_update_docs_rewrites_a_stale_table_and_keeps_the_prose(tmp_path, capsys):
    from lakecontract.feature_spec import TABLE_BEGIN, TABLE_END, main

    page = tmp_path / "features.md"
    page.write_text(f"# Prose before\n\n{TABLE_BEGIN}\n| stale |\n{TABLE_END}\n\nProse after.\n", encoding="utf-8")
    assert main(["--update-docs", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith(f"# Prose before\n\n{TABLE_BEGIN}\n| feature | family | formula | window | warm-up bars |")
    last_row = "| `label_ret_1` | label | close[t+1] / close[t] - 1; null on the last bar | – | – |"
    assert text.endswith(f"{last_row}\n{TABLE_END}\n\nProse after.\n")
    assert "| `SUMP5` | alpha158 SUMP | sum(max(Δclose, 0), 5) / (sum(\\|Δclose\\|, 5) + 1e-12) | 6 | 5 |" in text
    assert "| stale |" not in text and "feature table updated (115 features, 2 labels)" in capsys.readouterr().out
    assert main(["--update-docs", str(page)]) == 0 and page.read_text(encoding="utf-8") == text
    assert "already up to date" in capsys.readouterr().out


def test_update_docs_refuses_a_page_without_the_markers_and_leaves_it_as_it_was(tmp_path, capsys):
    from lakecontract.feature_spec import main

    page = tmp_path / "features.md"
    page.write_text("# A page someone wrote\n", encoding="utf-8")
    assert main(["--update-docs", str(page)]) == 1
    assert page.read_text(encoding="utf-8") == "# A page someone wrote\n"
    assert "lacks the markers" in capsys.readouterr().err
    assert main(["--update-docs", str(tmp_path / "missing.md")]) == 1
    assert "No such file" in capsys.readouterr().err


def test_make_docs_regenerates_the_feature_page():
    """The Makefile's `docs` recipe is the generator's call on docs/features.md (not the old README rewrite)."""
    recipe = re.search(r"^docs:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe, "the Makefile has no docs target"
    assert "-m lakecontract.feature_spec --update-docs docs/features.md" in recipe[1]
