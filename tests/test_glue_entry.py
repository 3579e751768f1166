"""The Glue entry scripts as a user runs them: `python -m glue_jobs.<name>`."""

import os
import subprocess
import sys

import pytest

from glue_jobs import build_silver, ingest_candles

JOBS = ("ingest_candles", "build_silver", "build_features", "train_models", "export_models")


@pytest.mark.parametrize("job", JOBS)
def test_help_runs_without_spark(job):
    out = subprocess.run(
        [sys.executable, "-m", f"glue_jobs.{job}", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "--lake-root" in out.stdout and "CANDLELAKE_LAKE_ROOT" in out.stdout


def test_bad_configuration_exits_1_with_a_message_and_no_traceback(capsys, tmp_path):
    code = ingest_candles.main(["--lake-root", str(tmp_path), "--source", "csv"])
    err = capsys.readouterr().err
    assert code == 1
    assert "FAILED: --source csv needs --csv-path" in err and "Traceback" not in err


def test_source_error_exits_1_and_writes_nothing(capsys, tmp_path):
    code = ingest_candles.main(["--lake-root", str(tmp_path / "lake"), "--intervals", "5m"])
    assert code == 1
    assert "no 5m bars of ^GSPC, ^IXIC, MSFT" in capsys.readouterr().err
    assert not (tmp_path / "lake").exists()


def test_glue_system_arguments_are_ignored_not_fatal(capsys):
    code = build_silver.main(["--JOB_NAME", "x", "--intervals", "1w"])
    captured = capsys.readouterr()
    assert code == 1 and "unsupported interval" in captured.err
    assert "ignoring arguments not meant for this job: --JOB_NAME x" in captured.err


def test_a_job_without_the_local_jars_stops_naming_them_and_make_setup(tmp_path):
    """CANDLELAKE_JARS_DIR is honoured, and a job stops before any Spark starts, saying what to run."""
    empty = tmp_path / "jars"
    empty.mkdir()
    env = {**os.environ, "CANDLELAKE_JARS_DIR": str(empty)}
    out = subprocess.run(
        [sys.executable, "-m", "glue_jobs.build_silver", "--lake-root", str(tmp_path / "lake")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 1
    assert f"missing JARs in {empty}: delta-spark_2.12-3.3.2.jar" in out.stderr
    assert "Run `make setup`" in out.stderr
    assert "[build_silver] FAILED: " in out.stderr and "Traceback" not in out.stderr  # a known failure, no trace
    assert not (tmp_path / "lake").exists()


@pytest.mark.spark
def test_train_and_export_on_an_empty_lake_say_what_to_run_first(spark, capsys, tmp_path):
    from glue_jobs import export_models, train_models

    assert train_models.main(["--lake-root", str(tmp_path / "lake")]) == 1
    assert export_models.main(["--lake-root", str(tmp_path / "lake")]) == 1
    err = capsys.readouterr().err
    assert "does not exist: run build_features first" in err
    assert "does not exist: run train_models first" in err
    assert "Traceback" not in err


def _csv_of_other_symbols(tmp_path):
    """Two symbols the sample's defaults (^GSPC, ^IXIC, MSFT) do not name, three daily bars each."""
    path = tmp_path / "mine.csv"
    rows = [f"{s},2024-01-0{d},10,11,9,10.5,100" for s in ("AAA", "BBB") for d in (2, 3, 4)]
    path.write_text("symbol,ts,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.spark
def test_csv_ingest_without_symbols_takes_every_symbol_in_the_file(spark, capsys, monkeypatch, tmp_path):
    """README: csv defaults to all symbols in the file, not the sample's ^GSPC,^IXIC,MSFT."""
    monkeypatch.delenv("CANDLELAKE_SYMBOLS", raising=False)
    lake = tmp_path / "lake"
    code = ingest_candles.main(
        ["--lake-root", str(lake), "--source", "csv", "--csv-path", str(_csv_of_other_symbols(tmp_path))]
    )
    assert code == 0, capsys.readouterr().err
    bronze = spark.read.format("delta").load(str(lake / "bronze" / "candles"))
    counts = {r["symbol"]: r["count"] for r in bronze.groupBy("symbol").count().collect()}
    assert counts == {"AAA": 3, "BBB": 3}


@pytest.mark.spark
def test_csv_ingest_with_symbols_the_file_lacks_fails_naming_the_files_symbols(spark, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("CANDLELAKE_SYMBOLS", raising=False)
    lake = tmp_path / "lake"
    argv = ["--lake-root", str(lake), "--source", "csv", "--csv-path", str(_csv_of_other_symbols(tmp_path))]
    code = ingest_candles.main([*argv, "--symbols", "MSFT,ZZZ"])
    err = capsys.readouterr().err
    assert code == 1
    assert "[ingest_candles] FAILED: " in err and "it holds AAA, BBB" in err and "Traceback" not in err
    assert not (lake / "bronze" / "candles" / "_delta_log").exists()
