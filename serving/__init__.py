"""The prediction API: FastAPI + Mangum on AWS Lambda, serving what the export job published.

Importing this package imports nothing; `serving.app` builds the app. It depends on fastapi,
mangum, pydantic, numpy, onnxruntime and (for s3 lakes) boto3 only — see requirements.in.
"""
