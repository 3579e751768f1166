"""A self-contained HTML data-quality report per pipeline run, and an index of all of them.

GX Data Docs load their CSS and JavaScript from the internet and render empty tables offline
(DESIGN.md "Data quality"), so we write our own: inline CSS, no script, no external link, every
value HTML-escaped. Layout under the lake root:

    reports/dq/<run_id>.html   one report per pipeline run (all validations sharing that run_id)
    reports/dq/<run_id>.json   the same results as JSON: the index is rebuilt from these
    reports/dq/index.html      every report, newest first, with pass/fail counts per tier

The root is a local folder or s3://bucket/prefix (s3a:// too); S3 is written with boto3, at
the job's configured endpoint (`s3_endpoint`: `--s3-endpoint` / CANDLELAKE_S3_ENDPOINT, e.g.
moto_server or MinIO) — the same one Spark writes the tables to.

    python -m lakehouse.quality.report [--lake-root ROOT]   # prints the latest report's path
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from lakecontract.objectstore import ObjectStore
from lakehouse.config import ConfigError, add_config_arguments, config_from
from lakehouse.quality.rules import TIERS
from lakehouse.quality.validate import ValidationRun

REPORTS_DIR = "reports/dq"
INDEX = "index.html"


def _store(root: str, s3_endpoint: str | None = None) -> ObjectStore:
    return ObjectStore(root, REPORTS_DIR, endpoint=s3_endpoint)


def _file_stem(run_id: str) -> str:
    """The run id as a safe file name: anything but letters, digits, `.`, `_`, `-` becomes `_`."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", run_id).lstrip(".")
    return stem or "_"


# --- HTML -----------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem; color: #1f2328; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; } h2 { font-size: 1.15rem; margin: 2rem 0 .25rem; }
.meta { color: #59636e; margin: 0 0 .75rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d1d9e0; padding: .3rem .55rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.obs { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; word-break: break-all; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 1rem; font-size: 12px; font-weight: 600; }
.pass { background: #dafbe1; color: #1a7f37; } .fail { background: #ffebe9; color: #cf222e; }
.warn { background: #fff8c5; color: #9a6700; }
"""


def _e(value: object) -> str:
    """HTML-escaped text. `://` is written as a character reference too (it renders the same),
    so the page's source holds no URL at all, even when an observed value quotes one."""
    return html.escape("" if value is None else str(value), quote=True).replace("://", ":&#47;&#47;")


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_e(title)}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _badge(success: bool, tier: str) -> str:
    if success:
        return '<span class="badge pass">pass</span>'
    css = "fail" if tier == "halt" else "warn"
    return f'<span class="badge {css}">fail</span>'


def _time(value: datetime | str) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _tier_counts(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {tier: {"passed": 0, "failed": 0} for tier in TIERS}
    for run in runs:
        for outcome in run["outcomes"]:
            counts[outcome["tier"]]["passed" if outcome["success"] else "failed"] += 1
    return counts


def _run_section(run: dict[str, Any]) -> str:
    rows = []
    for o in run["outcomes"]:
        percent = "" if o["unexpected_percent"] is None else f"{o['unexpected_percent']:.4g}%"
        rows.append(
            "<tr>"
            f"<td>{_e(o['rule'])}</td><td>{_e(o['expectation_type'])}</td><td>{_e(o['tier'])}</td>"
            f'<td>{_badge(o["success"], o["tier"])}</td><td class="obs">{_e(o["observed_value"])}</td>'
            f'<td class="num">{_e(o["unexpected_count"])}</td><td class="num">{_e(percent)}</td>'
            f'<td class="num">{_e(o["element_count"])}</td>'
            "</tr>"
        )
    halted = any(o["tier"] == "halt" and not o["success"] for o in run["outcomes"])
    status = '<span class="badge fail">halted</span>' if halted else '<span class="badge pass">passed</span>'
    return (
        f"<h2>{_e(run['layer'])} · {_e(run['table_name'])} {status}</h2>\n"
        f'<p class="meta">suite <b>{_e(run["suite"])}</b> · started {_e(_time(run["started_at"]))}'
        f" · ended {_e(_time(run['ended_at']))}</p>\n"
        "<table>\n<tr><th>rule</th><th>expectation type</th><th>tier</th><th>result</th>"
        "<th>observed value</th><th>unexpected</th><th>unexpected %</th><th>rows checked</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>"
    )


def _counts_cells(counts: dict[str, dict[str, int]]) -> str:
    cells = []
    for tier in TIERS:
        failed = counts[tier]["failed"]
        css = "pass" if failed == 0 else ("fail" if tier == "halt" else "warn")
        cells.append(f'<td class="num">{counts[tier]["passed"]} / <span class="badge {css}">{failed}</span></td>')
    return "".join(cells)


def _counts_header() -> str:
    return "".join(f"<th>{_e(tier)} passed / failed</th>" for tier in TIERS)


def render_report(document: dict[str, Any]) -> str:
    """The HTML of one pipeline run's report, from its JSON document."""
    counts = _tier_counts(document["runs"])
    summary = (
        f"<table>\n<tr><th>validations</th>{_counts_header()}</tr>\n"
        f'<tr><td class="num">{len(document["runs"])}</td>{_counts_cells(counts)}</tr>\n</table>'
    )
    sections = "\n".join(_run_section(run) for run in document["runs"])
    body = (
        f"<h1>Data quality · run {_e(document['run_id'])}</h1>\n"
        f'<p class="meta">started {_e(_time(document["started_at"]))} · report written'
        f' {_e(_time(document["written_at"]))} · <a href="{INDEX}">all reports</a></p>\n'
        f"{summary}\n{sections}"
    )
    return _page(f"Data quality · {document['run_id']}", body)


def render_index(documents: Sequence[dict[str, Any]]) -> str:
    """The HTML index of all reports, newest first."""
    rows = []
    for doc in documents:
        halted = any(o["tier"] == "halt" and not o["success"] for run in doc["runs"] for o in run["outcomes"])
        status = '<span class="badge fail">halted</span>' if halted else '<span class="badge pass">passed</span>'
        tables = ", ".join(sorted({run["table_name"] for run in doc["runs"]}))
        rows.append(
            f'<tr><td><a href="{_e(quote(doc["file"]))}">{_e(doc["run_id"])}</a></td>'
            f"<td>{_e(_time(doc['started_at']))}</td><td>{status}</td><td>{_e(tables)}</td>"
            f"{_counts_cells(_tier_counts(doc['runs']))}</tr>"
        )
    body = (
        "<h1>Data quality reports</h1>\n"
        f'<p class="meta">{len(documents)} pipeline run(s), newest first</p>\n'
        f"<table>\n<tr><th>run</th><th>started</th><th>status</th><th>tables</th>{_counts_header()}</tr>\n"
        + "\n".join(rows)
        + "\n</table>"
    )
    return _page("Data quality reports", body)


# --- public API -----------------------------------------------------------------------------------


def _document(runs: Sequence[ValidationRun], file: str) -> dict[str, Any]:
    def run_dict(run: ValidationRun) -> dict[str, Any]:
        data = asdict(run)
        data["started_at"] = run.started_at.isoformat()
        data["ended_at"] = run.ended_at.isoformat()
        return data

    return {
        "run_id": runs[0].run_id,
        "file": file,
        "started_at": min(r.started_at for r in runs).isoformat(),
        "written_at": datetime.now(UTC).isoformat(),
        "runs": [run_dict(r) for r in runs],
    }


def _newest_first(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(doc: dict[str, Any]) -> tuple[datetime, datetime]:
        return datetime.fromisoformat(doc["started_at"]), datetime.fromisoformat(doc["written_at"])

    return sorted(documents, key=key, reverse=True)


def _documents(store: ObjectStore) -> list[dict[str, Any]]:
    return _newest_first([json.loads(store.read(name)) for name in store.names(".json")])


def write_report(runs: Sequence[ValidationRun], root: str, *, s3_endpoint: str | None = None) -> str:
    """Write the report of one pipeline run (all `runs` share its run_id), rewrite the index,
    and return the report's path or URI. Each job of a pipeline run adds its validations to the
    run's report; validating the same table and suite again replaces that part only."""
    if not runs:
        raise ValueError("write_report needs at least one validation run")
    run_ids = {r.run_id for r in runs}
    if len(run_ids) != 1:
        raise ValueError(f"one report per pipeline run: got run ids {sorted(run_ids)}")
    store = _store(root, s3_endpoint)
    stem = _file_stem(runs[0].run_id)
    document = _document(runs, f"{stem}.html")
    if f"{stem}.json" in store.names(".json"):
        earlier = json.loads(store.read(f"{stem}.json"))
        replaced = {(r["layer"], r["table_name"], r["suite"]) for r in document["runs"]}
        kept = [r for r in earlier["runs"] if (r["layer"], r["table_name"], r["suite"]) not in replaced]
        document["runs"] = kept + document["runs"]
        document["started_at"] = min(document["started_at"], earlier["started_at"])
    store.write(f"{stem}.json", json.dumps(document, indent=1), "application/json")
    path = store.write(f"{stem}.html", render_report(document), "text/html")
    store.write(INDEX, render_index(_documents(store)), "text/html")
    return path


def run_report(root: str, run_id: str, *, s3_endpoint: str | None = None) -> tuple[str, bytes, bytes] | None:
    """(its run id, the JSON, the HTML) of the report of `run_id`, or — when that run validated nothing
    (a run that found no new bars) — of the newest run that did; None when no run ever validated.
    Export publishes it beside the model version (the API reads gold/models/ only)."""
    store = _store(root, s3_endpoint)
    names = store.names(".json")
    stem = _file_stem(run_id)
    if f"{stem}.json" not in names:
        documents = _documents(store)
        if not documents:
            return None
        stem = _file_stem(documents[0]["run_id"])
    document = store.read(f"{stem}.json")
    return json.loads(document)["run_id"], document.encode(), store.read(f"{stem}.html").encode()


def latest_report(root: str, *, s3_endpoint: str | None = None) -> str | None:
    """The path or URI of the newest report under `root` (by pipeline run start), or None."""
    store = _store(root, s3_endpoint)
    documents = _documents(store)
    return store.uri(documents[0]["file"]) if documents else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lakehouse.quality.report", description="Print the path of the latest data-quality report."
    )
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = config_from(args)
        root = cfg.resolved_root
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    latest = latest_report(root, s3_endpoint=cfg.s3_endpoint)
    if latest is None:
        print(
            f"no data-quality report under {root}/{REPORTS_DIR}: run the pipeline first (make run)",
            file=sys.stderr,
        )
        return 1
    print(latest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
