"""What each Glue job may write under the lake root: its own tables' and reports' prefixes.

Every job may read the whole lake (market data and what the jobs derived from it); writes are what
least privilege guards here. The ingest job runs third-party code on data from the internet, so it
must not reach `gold/models/`, whose `latest` pointer the API serves: that prefix is export's alone.
No job may delete an object version (the buckets are versioned, so an overwrite or a delete by any
job stays recoverable). tests/test_step_functions.py runs the pipeline and checks that every file
each job wrote lies under the prefixes named here, so this table cannot drift from the code.

Imports nothing from the CDK, so that test stays light.
"""

from __future__ import annotations

# glue_jobs module → prefixes under the lake root it writes (a prefix may end mid-name:
# `gold/features_` is every bar size's features table).
WRITES: dict[str, tuple[str, ...]] = {
    "ingest_candles": ("bronze/",),
    "build_silver": ("silver/", "gold/dq_results/", "reports/dq/"),
    "build_features": ("gold/features_", "gold/dq_results/", "reports/dq/"),
    "train_models": ("gold/model_artifacts/", "gold/model_registry/", "reports/training/"),
    "export_models": ("gold/models/", "gold/model_registry/", "gold/predictions/"),
    "record_failure": ("gold/pipeline_failures/",),
    # Compaction and VACUUM rewrite and delete the files of every Delta table (not gold/models/, not reports).
    "maintain_tables": (
        "bronze/",
        "silver/",
        "gold/features_",
        "gold/dq_results/",
        "gold/model_registry/",
        "gold/predictions/",
        "gold/pipeline_failures/",
    ),
}
# The prefix only export may write: the published model versions and the `latest` pointer.
PUBLISHED_MODELS = "gold/models/"
