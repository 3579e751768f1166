"""What the batch side (lakehouse, Glue jobs, the local runner) and the API (serving) agree on.

The published-artifact contract (`artifacts`), the one object store for files under a lake root
(`objectstore`: a local folder or S3, with an atomic replace), the Athena named queries
(`named_queries`), the constants both sides name (`constants`), and the candles' own definitions
that both sides compute with: the feature specification (`feature_spec`), the per-bar feature math
(`feature_math`, numpy) and the silver rules a bar must pass (`candle_rules`). Gold runs the same
feature code on the lake that `POST /predict/candles` runs on a caller's bars, so the served
features cannot drift from the trained ones. It imports nothing of ours; numpy is the one
third-party import at module level (scipy where installed), so the API's Lambda and the Glue
library zip can both carry it without carrying each other. import-linter (pyproject.toml) holds
that direction.
"""
