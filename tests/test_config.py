import argparse

import pytest

from lakehouse.config import ConfigError, LakeConfig, add_config_arguments, config_from, normalise_root


def _parse(argv: list[str]) -> argparse.Namespace:
    return add_config_arguments(argparse.ArgumentParser()).parse_args(argv)


def test_flags_override_environment_which_overrides_defaults():
    env = {"CANDLELAKE_LAKE_ROOT": "s3://bucket/env", "CANDLELAKE_SYMBOLS": "AAPL,MSFT"}
    cfg = config_from(_parse(["--symbols", "IBM"]), environ=env)
    assert cfg.lake_root == "s3://bucket/env"
    assert cfg.symbols == ("IBM",)
    assert cfg.intervals == ("1d",)
    assert cfg.origins["symbols"] == "flag --symbols"
    assert cfg.origins["lake_root"] == "env CANDLELAKE_LAKE_ROOT"
    assert "s3://bucket/env" in cfg.describe() and "(default)" in cfg.describe()


def test_glue_style_snake_case_flags_are_accepted():
    cfg = config_from(_parse(["--lake_root", "s3a://b/p", "--intervals", "1d,1h"]), environ={})
    assert cfg.resolved_root == "s3a://b/p"
    assert cfg.intervals == ("1d", "1h")


def test_backfill_from_env_and_flag():
    assert config_from(_parse([]), environ={"CANDLELAKE_BACKFILL": "1"}).backfill
    assert config_from(_parse(["--backfill"]), environ={}).backfill
    assert not config_from(_parse([]), environ={}).backfill


def test_glue_style_arguments_a_state_machine_passes():
    """A state machine lists every argument: `--backfill false` and empty values mean unset/false."""
    cfg = config_from(_parse(["--backfill", "false", "--start", "", "--symbols", "MSFT"]), environ={})
    assert cfg.backfill is False and cfg.start is None and cfg.symbols == ("MSFT",)
    assert config_from(_parse(["--backfill", "true"]), environ={}).backfill
    with pytest.raises(ConfigError, match="expected true or false"):
        config_from(_parse(["--backfill", "maybe"]), environ={})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "bloomberg"}, "unknown source"),
        ({"intervals": ("1w",)}, "unsupported interval"),
        ({"source": "csv"}, "--csv-path"),
        ({"lake_root": "gs://bucket"}, "unsupported lake root scheme"),
        ({"source": "synthetic", "calendar": "lunar"}, "unknown --calendar 'lunar'"),
        ({"source": "sample", "calendar": "24x7"}, "training measures from their timestamps"),
    ],
)
def test_bad_values_get_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        _ = LakeConfig(**kwargs).resolved_root


def test_unparseable_number_names_the_flag():
    with pytest.raises(ConfigError, match="--synthetic-bars"):
        config_from(_parse(["--synthetic-bars", "many"]), environ={})


def test_local_roots_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalise_root("lake") == str(tmp_path / "lake")
    assert normalise_root("s3://bucket/prefix/") == "s3://bucket/prefix"


def test_synthetic_source_defaults_to_its_own_symbols():
    assert config_from(_parse(["--source", "synthetic"]), environ={}).symbols == ()
