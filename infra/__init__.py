"""The AWS CDK (Python) app: storage, analytics (Glue catalog + Athena), pipeline, API.

It reads the repository's files (ASL definitions, Glue entry scripts, the lakehouse and serving
sources, the lock file's pins) as assets and imports none of the runtime code except
`step_functions.definitions`, the ASL's placeholder → job table, which is plain data.
"""
