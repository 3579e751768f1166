"""The OpenAPI document tells the truth: every status an operation answers is documented for it, with
its schema, and every status documented is one it answers.

The expected statuses are not read from the app's code. Each operation of the document is driven
with requests meant to fail in every way a client or a lake can make it fail — bodies that are
truncated, not UTF-8, nested too deeply, of the wrong content type or shape; bad or unknown
parameters; unknown symbols, versions and runs; no model published; a store that cannot be read; a
run in progress; an unexpected exception inside — and each answer is recorded under the operation
the router matched (read from the ASGI scope, not from the URL the test built). Then, per operation:

- each status answered is documented, an error status with a `$ref` to the error model, and every
  body validates against the schema the document gives for its status (jsonschema, not pydantic);
- each status documented was answered (a status no request can produce is a false promise).

404 and 405 for a path or a method that no operation has are outside the document by nature: no
operation answers them (tests/test_serving.py checks they are JSON errors too).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from mangum import Mangum

from serving.app import create_app
from serving.artifacts import ModelCache
from serving.pipeline_runs import LocalRuns
from serving.settings import Settings
from tests.lambda_events import LambdaContext, function_url, http_api_v2, response_json

pytestmark = [pytest.mark.spark, pytest.mark.slow]  # the published lake is built with Spark

ERROR_REF = "#/components/schemas/ErrorResponse"
JSON = {"content-type": "application/json"}
# Bodies no operation may accept. The expected status is not stated here: whatever each one gets
# must be documented (today: a JSON syntax error is a 422, an undecodable body a 400).
BAD_BODIES: dict[str, tuple[bytes, dict[str, str]]] = {
    "truncated JSON": (b'{"symbol": ', JSON),
    "not UTF-8": (b'{"symbol": "\xff\xfe"}', JSON),
    "a charset the parser ignores": (b'{"symbol": "\xe9"}', {"content-type": "application/json; charset=latin-1"}),
    "nested deeper than the parser allows": (b"[" * 10_000 + b"]" * 10_000, JSON),
    "an integer of 5,000 digits": (b'{"symbol": 1' + b"0" * 5_000 + b"}", JSON),
    "a JSON array": (b'["SYN0001"]', JSON),
    "a field of the wrong type": (b'{"symbol": 5, "name": 5}', JSON),
    "an unknown field": (b'{"nonsense": true}', JSON),
    "text/plain": (b'{"symbol": "SYN0001"}', {"content-type": "text/plain"}),
    "a form": (b"symbol=SYN0001", {"content-type": "application/x-www-form-urlencoded"}),
}


class RouteRecorder:
    """ASGI wrapper that keeps the scope of the last request: the router writes the route it matched
    into it (`scope["route"]`), which tells which operation answered."""

    def __init__(self, app: Any) -> None:
        self.app, self.scope = app, {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        self.scope = scope
        await self.app(scope, receive, send)


class Probe:
    """One app (one lake, one condition) and the shared record of what each operation answered."""

    def __init__(self, app: Any, observed: dict) -> None:
        self.app, self.recorder, self.observed = app, RouteRecorder(app), observed
        self.client = TestClient(self.recorder)

    def __call__(self, method: str, url: str, **kwargs: Any) -> int:
        response = self.client.request(method, url, **kwargs)
        route = self.recorder.scope.get("route")
        assert route is not None and method in route.methods, f"{method} {url} reached no operation: {response.text}"
        operation = (method.lower(), route.path)
        if operation == ("get", "/quality/report") and response.status_code == 200:  # the one HTML answer
            assert response.headers["content-type"].startswith("text/html"), response.headers
            self.observed[operation].append((200, response.text, f"{method} {url}"))
            return 200
        assert response.headers["content-type"] == "application/json", (method, url, response.text)
        self.observed[operation].append((response.status_code, response.json(), f"{method} {url}"))
        return response.status_code


class _SleepingRuns(LocalRuns):
    """The local launcher with a stand-in runner that just waits: a run stays in progress."""

    def _command(self, run_id: str, fields: dict[str, str]) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(120)"]


def _drive_a_published_lake(probe: Probe, version: str) -> None:
    """What a client can get wrong, and what it can ask for that is not there."""
    probe("GET", "/health")
    probe("GET", "/symbols")
    for params in ({"symbol": "SYN0001"}, {"symbol": "NOPE"}, {}, {"symbol": "SYN0001", "limit": 0}):
        probe("GET", "/latest", params=params)
    probe("GET", "/latest", params={"symbol": "SYN0001", "interval": "5m"})
    for body in ({"symbol": "SYN0001"}, {"symbol": "NOPE"}, {"symbol": "SYN0001", "model": "20990101T000000Z"}, {}):
        probe("POST", "/predict", json=body)
    probe("GET", "/predict/SYN0001")
    probe("GET", "/predict/NOPE")
    probe("GET", "/predict/SYN0001", params={"interval": "1w"})
    probe("GET", "/predict/SYN0001", params={"model": "../x"})
    probe("GET", "/models")
    for name in (version, "latest", "20990101T000000Z", "-not-a-version"):
        probe("GET", f"/models/{name}")
    for url in ("/chart/SYN0001", "/chart/NOPE", "/chart/SYN0001?interval=5m", "/chart/SYN0001?interval=1w"):
        probe("GET", url)
    probe("GET", "/quality")
    probe("GET", "/quality/report")
    # A run in progress (the stand-in waits), then everything else a client can send.
    assert probe("POST", "/pipeline/runs", json={"name": "contract-1"}) == 202
    probe("POST", "/pipeline/runs", json={"name": "contract-2"})
    probe("POST", "/pipeline/runs", json={"source": "ftp"})
    for run_id in ("contract-1", "nope", "-bad"):
        probe("GET", f"/pipeline/runs/{run_id}")
    for url in ("/pipeline/runs", "/pipeline/runs?limit=0"):
        probe("GET", url)
    _drive_candles(probe)
    for path in ("/predict", "/pipeline/runs", "/predict/candles"):
        for body, headers in BAD_BODIES.values():
            probe("POST", path, content=body, headers=headers)
        # Over the body limit, sent without a Content-Length so that it reaches the operation (one
        # declared too long is refused before routing, like an unknown path: tests/test_candles_api.py).
        probe("POST", path, content=iter([b" " * (Settings().max_body_bytes + 1)]), headers=JSON)


def _walk(n: int) -> list[dict[str, Any]]:
    """n consistent daily bars (a random walk) on the 00:00 UTC grid, as a client sends them."""
    import numpy as np

    from tests.feature_frames import _bars

    frame = _bars(np.random.default_rng(3), n, 40.0)
    start = datetime(2019, 1, 1, tzinfo=UTC)
    cols = ("open", "high", "low", "close", "volume")
    return [
        {"ts": (start + timedelta(days=i)).isoformat(), **{c: float(frame[c].iloc[i]) for c in cols}} for i in range(n)
    ]


def _drive_candles(probe: Probe) -> None:
    """POST /predict/candles: an answer, silver's rules, the limits, and what is not there."""
    from serving.candles import MIN_BARS

    bars = _walk(MIN_BARS)
    probe("POST", "/predict/candles", json={"symbol": "NEW1", "candles": bars})
    probe("POST", "/predict/candles", json={"symbol": "NEW1", "candles": bars[:10]})  # too few
    probe("POST", "/predict/candles", json={"symbol": "NEW1", "candles": [{**bars[0], "low": 1e9}, *bars[1:]]})
    probe("POST", "/predict/candles", json={"symbol": "NEW1", "candles": bars, "interval": "1h"})  # not its interval
    probe("POST", "/predict/candles", json={"symbol": "NEW1", "candles": bars, "model": "20990101T000000Z"})


def _drive_an_empty_lake(probe: Probe) -> None:
    """Nothing published yet."""
    probe("GET", "/health")
    probe("GET", "/symbols")
    probe("GET", "/latest", params={"symbol": "SYN0001"})
    probe("POST", "/predict", json={"symbol": "SYN0001"})
    probe("POST", "/predict/candles", json={"symbol": "SYN0001", "candles": _walk(3)})
    probe("GET", "/predict/SYN0001")
    probe("GET", "/chart/SYN0001")
    probe("GET", "/quality")
    probe("GET", "/quality/report")
    probe("GET", "/models")
    for name in ("latest", "20990101T000000Z"):
        probe("GET", f"/models/{name}")


def _drive_an_unreadable_store(probe: Probe) -> None:
    """An s3:// lake whose bucket does not exist, and no state machine to run the pipeline on."""
    _drive_an_empty_lake(probe)
    probe("POST", "/pipeline/runs", json={"name": "r1"})
    probe("GET", "/pipeline/runs/r1")
    probe("GET", "/pipeline/runs")


def _aws_runs_app(lake_root: str) -> Any:
    """An app whose runs are Step Functions executions (moto), with no operator configured."""
    from tests.test_serving import moto_pipeline_machine

    _, arn = moto_pipeline_machine()
    return create_app(Settings(lake_root=lake_root, state_machine_arn=arn))


def _drive_runs_on_aws(probe: Probe) -> None:
    """On AWS only operators may start a run (tests/test_serving.py drives who is one)."""
    probe("POST", "/pipeline/runs", json={"name": "r2"})


def _drive_a_broken_app(probe: Probe, version: str) -> None:
    """Every call into the model cache and the run launcher raises something nobody expected."""
    probe("POST", "/predict", json={"symbol": "SYN0001"})
    probe("POST", "/predict/candles", json={"symbol": "SYN0001", "candles": _walk(3)})
    probe("POST", "/pipeline/runs", json={"name": "r9"})
    for url in (
        *("/health", "/symbols", "/latest?symbol=SYN0001", "/predict/SYN0001", "/chart/SYN0001", "/quality"),
        "/quality/report",
        *("/models", f"/models/{version}"),
    ):
        probe("GET", url)
    probe("GET", "/pipeline/runs/r9")
    probe("GET", "/pipeline/runs")


@pytest.fixture(scope="module")
def observed(published_lake, tmp_path_factory) -> dict[tuple[str, str], list[tuple[int, Any, str]]]:
    """(method, path template) → every (status, body, request) answered, under five conditions."""
    from moto import mock_aws

    folder = tmp_path_factory.mktemp("contract")
    shutil.copytree(published_lake.pristine_models, folder / "lake" / "gold" / "models")
    version = published_lake.version
    seen: dict[tuple[str, str], list[tuple[int, Any, str]]] = defaultdict(list)

    app = create_app(Settings(lake_root=str(folder / "lake")))
    app.state.runs = runs = _SleepingRuns(str(folder / "lake"))
    try:
        _drive_a_published_lake(Probe(app, seen), version)
    finally:
        for run in runs.runs.values():
            run.process.kill()
            run.process.wait()

    _drive_an_empty_lake(Probe(create_app(Settings(lake_root=str(folder / "empty"))), seen))

    from tests.ml_lake import unpublish

    shutil.copytree(published_lake.pristine_models, folder / "older" / "gold" / "models")
    unpublish(folder / "older", "quality/")  # a version exported before reports were published with it
    older = Probe(create_app(Settings(lake_root=str(folder / "older"))), seen)
    for url in ("/quality", "/quality/report"):
        older(url=url, method="GET")

    with pytest.MonkeyPatch.context() as patch:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
            patch.setenv(key, value)
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        with mock_aws():
            _drive_an_unreadable_store(Probe(create_app(Settings(lake_root="s3://candlelake-nothing/lake")), seen))
            _drive_runs_on_aws(Probe(_aws_runs_app(str(folder / "lake")), seen))

    with pytest.MonkeyPatch.context() as patch:
        broken = create_app(Settings(lake_root=str(folder / "lake")))

        def unexpected(*_: Any, **__: Any) -> Any:
            raise RuntimeError("something nobody expected")

        for name in ("current", "version", "status", "published_versions", "manifest"):
            patch.setattr(ModelCache, name, unexpected)
        for name in ("start", "get", "recent"):
            patch.setattr(LocalRuns, name, unexpected)
        _drive_a_broken_app(Probe(broken, seen), version)
    return dict(seen)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> dict[str, Any]:
    return create_app(Settings(lake_root=str(tmp_path_factory.mktemp("spec") / "lake"))).openapi()


def _operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): op for path, item in spec["paths"].items() for method, op in item.items()}


def test_every_operation_of_the_document_was_driven(spec, observed):
    assert set(_operations(spec)) == set(observed), "drive each operation of the document, and only those"


def test_every_status_an_operation_answers_is_documented_with_its_schema(spec, observed):
    undocumented = []
    for operation, answers in observed.items():
        documented = _operations(spec)[operation]["responses"]
        for status, body, request in answers:
            if str(status) not in documented:
                code = body.get("error", {}).get("code") if isinstance(body, dict) else None
                undocumented.append(f"{request} → {status} {code}")
    assert not undocumented, "answered but not in the OpenAPI document:\n" + "\n".join(sorted(set(undocumented)))


def test_error_statuses_are_documented_with_the_error_model(spec):
    for (method, path), op in _operations(spec).items():
        for status, response in op["responses"].items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}, (method, path, status)


def test_every_body_validates_against_the_schema_documented_for_its_status(spec, observed):
    """Checked against the document (JSON Schema 2020-12, as OpenAPI 3.1 defines it)."""
    for operation, answers in observed.items():
        documented = _operations(spec)[operation]["responses"]
        for status, body, request in answers:
            if str(status) not in documented:
                continue  # reported by the test above
            if isinstance(body, str):  # HTML (the quality report): documented as such
                assert "text/html" in documented[str(status)]["content"], (request, status)
                assert body.lstrip().lower().startswith("<!doctype html"), request
                continue
            schema = documented[str(status)]["content"]["application/json"]["schema"]
            validator = Draft202012Validator({**schema, "components": spec["components"]})
            errors = [e.message for e in validator.iter_errors(body)]
            assert not errors, (request, status, errors)
            if status >= 400:
                assert set(body) == {"error"} and body["error"]["code"] and body["error"]["request_id"], body


def test_every_documented_status_is_one_the_operation_answers(spec, observed):
    promised = []
    for operation, op in _operations(spec).items():
        answered = {status for status, _, _ in observed.get(operation, [])}
        promised += [f"{operation} {s}" for s in op["responses"] if int(s) not in answered]
    assert not promised, "documented but never answered (a false promise, or a case this test does not drive):\n" + (
        "\n".join(promised)
    )


@pytest.mark.parametrize("make_event", [http_api_v2, function_url], ids=["http-api-v2", "function-url"])
def test_a_bad_body_through_the_lambda_handler_gets_the_documented_status(published_lake, spec, tmp_path, make_event):
    """Through Mangum a bad body gets what it gets over HTTP (the same status and error code), and
    that status is documented for POST /predict. Bytes that are not UTF-8 arrive base64-encoded."""
    shutil.copytree(published_lake.pristine_models, tmp_path / "lake" / "gold" / "models")
    app = create_app(Settings(lake_root=str(tmp_path / "lake")))
    handler, client = Mangum(app, lifespan="off"), TestClient(app)
    documented = _operations(spec)[("post", "/predict")]["responses"]
    for name, (body, headers) in BAD_BODIES.items():
        over_http = client.post("/predict", content=body, headers=headers)
        out = handler(make_event("POST", "/predict", body, headers=headers, b64=True), LambdaContext())
        assert out["statusCode"] == over_http.status_code, name
        assert response_json(out)["error"]["code"] == over_http.json()["error"]["code"], name
        assert str(out["statusCode"]) in documented, (name, out["statusCode"], json.dumps(response_json(out)))


def test_the_recorder_sees_the_operation_the_router_matched(published_lake, tmp_path):
    """The test's own instrument: a URL the test builds for one template is recorded under the
    template the router matched (here /predict/{symbol}, not /predict), so a wrong guess shows."""
    shutil.copytree(published_lake.pristine_models, tmp_path / "lake" / "gold" / "models")
    seen: dict = defaultdict(list)
    probe = Probe(create_app(Settings(lake_root=str(tmp_path / "lake"))), seen)
    probe("GET", "/predict/SYN0001")
    assert list(seen) == [("get", "/predict/{symbol}")] and seen[("get", "/predict/{symbol}")][0][0] == 200
    with pytest.raises(AssertionError, match="reached no operation"):
        probe("GET", "/nowhere")
