"""Orchestration: the pipeline's state machine and the local runner that executes it."""
