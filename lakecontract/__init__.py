"""What the batch side (lakehouse, Glue jobs, the local runner) and the API (serving) agree on.

The published-artifact contract (`artifacts`), the one object store for files under a lake root
(`objectstore`: a local folder or S3, with an atomic replace), the Athena named queries
(`named_queries`) and the constants both sides name (`constants`). It imports nothing of ours and
only the standard library at import time (numpy and boto3 are imported by the functions that need
them), so the API's Lambda and the Glue library zip can both carry it without carrying each other.
import-linter (pyproject.toml) holds that direction.
"""
