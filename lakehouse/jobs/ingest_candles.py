"""Job body of ingest_candles: source → bronze/candles (append-only), incremental by watermark.

Each interval is fetched from the oldest watermark of the requested symbols (see lakehouse/bronze.py),
and only rows after their own series' watermark are appended, as one batch with its lineage.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from functools import reduce

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from lakehouse import delta_io
from lakehouse.bronze import WATERMARK, only_new_rows, watermarks, with_lineage
from lakehouse.config import LakeConfig
from lakehouse.job_summary import JobSummary
from lakehouse.jobs import Log
from lakehouse.sources import CandleSource, FetchRequest, get_source, utc_timestamp
from lakehouse.tables import BRONZE_CANDLES, CANDLE_SCHEMA

JOB = "ingest_candles"


def run(
    spark: SparkSession,
    cfg: LakeConfig,
    *,
    run_id: str | None,
    now: datetime,
    log: Log,
    source: CandleSource | None = None,
) -> JobSummary:
    """Fetch what is new since each series' watermark and append it to bronze as one batch.

    `source` replaces the configured one (tests pass a recorded yfinance); `run_id` is part of the
    shared frame only: a bronze row is traced by its `batch_id`, which the summary names."""
    root = cfg.resolved_root
    source = source or _source_for(cfg)
    batch_id = _new_batch_id(now)
    summary = JobSummary(JOB, details={"batch_id": batch_id, "source": source.name})
    bronze_df = delta_io.read(spark, BRONZE_CANDLES, root)
    marks_df = watermarks(bronze_df, now) if not cfg.backfill else watermarks(bronze_df.limit(0), now)
    marks_by_interval = _marks_by_interval(marks_df)
    new_frames: list[DataFrame] = []
    missing: list[str] = []
    for interval in cfg.intervals:
        fetched, absent = _fetch_interval(cfg, source, interval, marks_by_interval.get(interval, {}), log)
        summary.rows_read += len(fetched)
        missing.extend(f"{interval}:{s}" for s in absent)
        if not fetched.empty:
            new_frames.append(spark.createDataFrame(fetched, schema=CANDLE_SCHEMA))
    if new_frames:
        candles_df = reduce(DataFrame.unionByName, new_frames)
        batch_df = with_lineage(
            only_new_rows(candles_df, marks_df), source=source.name, batch_id=batch_id, ingested_at=now
        )
        result = delta_io.append(spark, batch_df, BRONZE_CANDLES, root)
        summary.rows_written = result.rows_inserted
    summary.versions[BRONZE_CANDLES.name] = delta_io.version(spark, BRONZE_CANDLES, root)
    summary.details["new_rows"] = summary.rows_written
    if missing:
        summary.details["missing_symbols"] = ",".join(missing)
    if summary.rows_written == 0:
        log(f"[{JOB}] nothing new since the watermark: bronze unchanged")
    return summary


def _marks_by_interval(marks_df: DataFrame) -> dict[str, dict[str, datetime]]:
    """interval → symbol → watermark, collected: one small row per series."""
    marks: dict[str, dict[str, datetime]] = {}
    for r in marks_df.collect():
        marks.setdefault(r["interval"], {})[r["symbol"]] = r[WATERMARK]
    return marks


def _fetch_interval(
    cfg: LakeConfig, source: CandleSource, interval: str, marks: dict[str, datetime], log: Log
) -> tuple[pd.DataFrame, list[str]]:
    """The bars of one interval from the source, and the requested symbols it returned no rows for."""
    started = time.monotonic()
    request = FetchRequest(
        cfg.symbols,
        interval,
        _fetch_start(cfg, marks, cfg.symbols),
        utc_timestamp(cfg.end) if cfg.end else None,
    )
    log(
        f"[{JOB}] fetching {interval} from {source.name} "
        f"({', '.join(cfg.symbols) or 'all symbols'}; since {request.start or 'the beginning'}) ..."
    )
    fetched = source.fetch(request)
    log(f"[{JOB}] {interval}: {len(fetched)} rows fetched in {time.monotonic() - started:.1f}s")
    absent = sorted(set(cfg.symbols) - set(fetched["symbol"].dropna()))
    if absent:
        # A partial answer is written (see lakehouse.sources.yfinance_source); the symbols without
        # rows keep their watermark, so the next run asks for them again. Named so nobody misses it.
        log(f"[{JOB}] {interval}: {source.name} returned no rows for {', '.join(absent)}")
    return fetched, absent


def _source_for(cfg: LakeConfig) -> CandleSource:
    if cfg.source == "csv":
        return get_source("csv", path=cfg.csv_path, single_interval=len(cfg.intervals) == 1, endpoint=cfg.s3_endpoint)
    if cfg.source == "synthetic":
        return get_source(
            "synthetic",
            n_symbols=cfg.synthetic_symbols,
            n_bars=cfg.synthetic_bars,
            seed=cfg.seed,
            calendar=cfg.calendar,
        )
    return get_source(cfg.source)


def _new_batch_id(now: datetime) -> str:
    """Sortable by time, unique across runs started in the same second."""
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _fetch_start(cfg: LakeConfig, marks: dict[str, datetime], symbols: tuple[str, ...]) -> datetime | None:
    """The earliest bar to ask the source for: the configured start, else the oldest watermark
    of the requested symbols (None: some series has none yet, fetch the whole history)."""
    if cfg.start:
        return utc_timestamp(cfg.start).to_pydatetime()
    if cfg.backfill or not symbols or any(s not in marks for s in symbols):
        return None
    return min(marks[s] for s in symbols)
