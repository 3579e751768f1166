"""Thin AWS Glue entry scripts: parse arguments, build the session, call `lakehouse`, exit."""
