"""Lambda proxy events as AWS sends them (payload format 2.0), for driving the Mangum handler.

Shapes follow the AWS docs' examples for API Gateway HTTP APIs ("Working with AWS Lambda proxy
integrations for HTTP APIs") and Lambda Function URLs ("Invoking Lambda function URLs"): the two
differ in requestContext (apiId, domainName, routeKey "$default" vs "<METHOD> <path>", stage) and
in the null-valued fields a Function URL sends.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


@dataclass
class LambdaContext:
    aws_request_id: str = "6bc28136-xmpl-4365-b021-0ce6b2e64ab0"
    function_name: str = "candlelake-api"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:candlelake-api"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def _body(body: Any, b64: bool) -> dict[str, Any]:
    """`body`: bytes or text sent as they are, anything else as JSON. API Gateway and Function URLs
    pass a body that is not UTF-8 text only base64-encoded, so such bytes need `b64=True`."""
    if body is None:
        return {"isBase64Encoded": False}
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    if b64:
        return {"body": base64.b64encode(raw).decode(), "isBase64Encoded": True}
    try:
        return {"body": raw.decode(), "isBase64Encoded": False}
    except UnicodeDecodeError:
        raise ValueError("a body that is not UTF-8 reaches Lambda base64-encoded: pass b64=True") from None


def _headers(host: str, body: Any, extra: dict[str, str] | None) -> dict[str, str]:
    headers = {
        "accept": "application/json",
        "host": host,
        "user-agent": "curl/8.5.0",
        "x-amzn-trace-id": "Root=1-65f0c0de-0123456789abcdef01234567",
        "x-forwarded-for": "203.0.113.10",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if body is not None:
        headers["content-type"] = "application/json"
    return {**headers, **(extra or {})}


def http_api_v2(
    method: str, path: str, body: Any = None, query: str = "", headers: dict | None = None, b64: bool = False
) -> dict[str, Any]:
    """API Gateway HTTP API, $default stage, route `ANY /{proxy+}`. rawPath keeps percent-escapes."""
    host = "abc123defg.execute-api.us-east-1.amazonaws.com"
    raw_path = quote(path, safe="/")
    return {
        "version": "2.0",
        "routeKey": "ANY /{proxy+}",
        "rawPath": raw_path,
        "rawQueryString": query,
        "cookies": [],
        "headers": _headers(host, body, headers),
        "queryStringParameters": dict(p.split("=", 1) for p in query.split("&")) if query else None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123defg",
            "domainName": host,
            "domainPrefix": "abc123defg",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "Jx1abcDEfGhIJkL=",
            "routeKey": "ANY /{proxy+}",
            "stage": "$default",
            "time": "25/Nov/2026:14:03:58 +0000",
            "timeEpoch": 1795615438390,
        },
        "stageVariables": None,
        **_body(body, b64),
    }


def function_url(
    method: str, path: str, body: Any = None, query: str = "", headers: dict | None = None, b64: bool = False
) -> dict[str, Any]:
    """Lambda Function URL (auth type NONE)."""
    host = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6.lambda-url.us-east-1.on.aws"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": quote(path, safe="/"),
        "rawQueryString": query,
        "headers": _headers(host, body, headers),
        "queryStringParameters": dict(p.split("=", 1) for p in query.split("&")) if query else None,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6",
            "authentication": None,
            "authorizer": None,
            "domainName": host,
            "domainPrefix": "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": "python-requests/2.32.3",
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:14:03:58 +0000",
            "timeEpoch": 1795615438390,
        },
        "pathParameters": None,
        "stageVariables": None,
        **_body(body, b64),
    }


def response_json(response: dict[str, Any]) -> Any:
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body)
