"""candlelake: a Spark + Delta Lake batch lakehouse for market candles.

Pure DataFrame functions and the job bodies live here; `glue_jobs/` only parses arguments
and calls into this package, so everything is testable without AWS Glue.
"""

__version__ = "0.1.0"
