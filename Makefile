# candlelake — the documented entry points. `make help` lists them.
# Every target that needs Python or Spark depends on `setup`, which is idempotent: the first
# run creates .venv, installs the locked dependencies and fetches the JARs; later runs are no-ops.
# Bytecode is compiled at install (≈ 1 min once): these machines set PYTHONDONTWRITEBYTECODE=1, so
# otherwise every process compiles every module it imports (the API's cold start: 2.1 s → 0.96 s).

SHELL := /bin/bash
PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
STAMPS := .stamps
JARS := .jars
LOG_STORE_JAR := $(JARS)/delta-storage-s3-dynamodb-3.3.2.jar
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYSPARK_PYTHON := $(abspath $(PY))
export PYTHONUNBUFFERED := 1

# Pipeline options (see README "Configuration"); empty ones fall back to CANDLELAKE_* env / defaults.
ARGS ?=
# The full gold job on 10 M rows is cancelled after this many seconds (it is reported as timed out).
BENCH_ARGS ?= --full-timeout 600

.DEFAULT_GOAL := help
.PHONY: help setup run test test-fast check test-random validate-asl lint format lock inventory dq-report docs bench bench-features bench-window-sweep bench-incremental bench-silver bench-train bench-pooling bench-maintenance maintain clean clean-lake serve serving-requirements serving-size bench-api mlflow-ui query synth lambda-layer glue-lock glue-wheels dashboard bootstrap deploy destroy

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMPS)/deps $(STAMPS)/jars $(LOG_STORE_JAR) ## create .venv, install locked deps, fetch JARs (idempotent)

$(STAMPS)/npm: step_functions/package.json step_functions/package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --prefix step_functions --no-audit --no-fund --silent
	@touch $@

# The dashboard's chart library: an npm package copied next to the page (served from the API itself, no CDN).
DASHBOARD_VENDOR := serving/dashboard/static/vendor/lightweight-charts.standalone.production.js

$(DASHBOARD_VENDOR): serving/dashboard/package.json serving/dashboard/package-lock.json
	npm ci --prefix serving/dashboard --no-audit --no-fund --silent
	@mkdir -p $(dir $@)
	cp serving/dashboard/node_modules/lightweight-charts/dist/$(notdir $@) $@

dashboard: $(DASHBOARD_VENDOR) ## the dashboard's chart library (npm lightweight-charts) into serving/dashboard/static/vendor/

# Debian's Chromium and its driver, for the dashboard's browser test (root on these machines).
$(STAMPS)/chromium:
	@mkdir -p $(STAMPS)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }
	@touch $@

validate-asl: $(STAMPS)/npm ## asl-validator on every state-machine definition
	cd step_functions && npx --no-install asl-validator $(foreach f,$(wildcard step_functions/*.asl.json),--json-path $(notdir $(f)))

$(PY):
	@$(PYTHON_BOOT) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed (AWS Glue 5.1), found {sys.version}"'
	$(PYTHON_BOOT) -m venv $(VENV)

$(STAMPS)/deps: requirements.lock pyproject.toml | $(PY)
	@mkdir -p $(STAMPS)
	$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install -q --compile-bytecode --require-hashes --python $(PY) -r requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	@touch $@

$(STAMPS)/jars: pom.xml
	@mkdir -p $(STAMPS) $(JARS)
	mvn -q -B dependency:copy-dependencies -DoutputDirectory=$(JARS)
	@touch $@

# Delta's DynamoDB log store (safe concurrent writers on S3): the registries reachable here do not serve
# io.delta:delta-storage-s3-dynamodb, so it is compiled from its vendored sources (infra/delta_logstore/).
$(LOG_STORE_JAR): $(STAMPS)/deps $(STAMPS)/jars infra/delta_logstore/build.sh $(shell find infra/delta_logstore/src -name '*.java')
	bash infra/delta_logstore/build.sh $@

lock: | $(PY) ## re-resolve requirements.lock from pyproject.toml
	$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip compile -q pyproject.toml --extra dev --extra serving --python-version 3.11 --generate-hashes -o requirements.lock

run: setup ## the pipeline's state machine end to end on the bundled offline data (ARGS="--symbols MSFT" …)
	$(PY) -m step_functions.run_local $(ARGS)

maintain: setup ## compact, set retention on and VACUUM every lake table via step_functions/maintenance.asl.json (ARGS="--lake-root …")
	$(PY) -m step_functions.run_local --definition step_functions/maintenance.asl.json $(ARGS)

inventory: setup ## print the lake's tables, versions and row counts
	$(PY) -m lakehouse.inventory $(ARGS)

dq-report: setup ## print the path of the latest data-quality HTML report
	@$(PY) -m lakehouse.quality.report $(ARGS)

docs: setup ## regenerate the feature table of docs/features.md from lakecontract/feature_spec.py
	$(PY) -m lakecontract.feature_spec --update-docs docs/features.md

bench: bench-features bench-window-sweep bench-incremental bench-train bench-maintenance bench-pooling bench-api ## all benchmarks (not part of `make test`)

bench-features: setup ## Spark gold features vs DuckDB on ≥10 M synthetic rows (BENCH_ARGS="--symbols 50 --bars 2000")
	CANDLELAKE_JAVA_OPTS="" $(PY) -m tests.benchmarks.bench_features $(BENCH_ARGS)

bench-window-sweep: setup ## one rolling mean + std at windows 5/20/60/250 on 5 M rows: cost flat in the window?
	CANDLELAKE_JAVA_OPTS="" $(PY) -m tests.benchmarks.bench_window_sweep $(BENCH_ARGS)

bench-incremental: setup ## append one bar to 200 symbols × 1,000 and × 10,000 bars: ingest → silver → features, T(10k)/T(1k)
	CANDLELAKE_JAVA_OPTS="" CANDLELAKE_DRIVER_MEMORY=8g $(PY) -m tests.benchmarks.bench_incremental $(BENCH_ARGS)

bench-silver: setup ## build_silver alone: full build, one more bar, nothing new (bronze rows read and seconds)
	CANDLELAKE_JAVA_OPTS="" $(PY) -m tests.benchmarks.bench_silver $(BENCH_ARGS)

bench-train: setup ## training driver peak RSS and time on ≥ 5 M synthetic gold rows: toPandas vs the row cap vs xgboost.spark
	CANDLELAKE_JAVA_OPTS="" CANDLELAKE_DRIVER_MEMORY=6g $(PY) -m tests.benchmarks.bench_train $(BENCH_ARGS)

bench-maintenance: setup ## 100 simulated daily runs on 200 symbols, then maintenance: files, bytes, gold read and named query before/after
	CANDLELAKE_JAVA_OPTS="" $(PY) -m tests.benchmarks.bench_maintenance $(BENCH_ARGS)

bench-pooling: setup ## pooled vs per-symbol models on the training folds (after `make run`)
	$(PY) -m tests.benchmarks.bench_pooling $(ARGS)

test: setup check validate-asl dashboard serving-size $(STAMPS)/chromium ## static checks, ASL validation, serving size check + the whole test suite (what CI runs)
	$(PY) -m pytest $(PYTEST_ARGS)

check: setup ## the static checks: ruff lint + format, import-linter contracts, mypy (all in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

test-fast: setup check ## the static checks + the tests that start no JVM (seconds, not minutes)
	$(PY) -m pytest -m "not spark" $(PYTEST_ARGS)

test-random: setup ## the pytest suite in a shuffled order (pytest-randomly; PYTEST_ARGS="--randomly-seed=N" replays one order)
	$(PY) -m pytest -p randomly $(PYTEST_ARGS)

lint: check ## the static checks (an alias of `make check`)

format: setup ## ruff format + autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean-lake: ## delete the local lake folder
	rm -rf lake

clean: ## delete the venv, JARs, stamps and build outputs (not the lake)
	rm -rf $(VENV) $(JARS) $(STAMPS) build .pytest_cache

# --- the prediction API (serving/) ---------------------------------------------------------------
# Lambda runtime the serving set is pinned and sized for (onnxruntime ≥ 1.20 wheels need glibc 2.28:
# python3.12 on Amazon Linux 2023, not python3.11 on Amazon Linux 2).
SERVING_PLATFORM := x86_64-manylinux_2_34
SERVING_PYTHON := 3.12

serve: setup dashboard ## the prediction API on http://127.0.0.1:8000 (docs at /docs) over the local lake
	CANDLELAKE_LAKE_ROOT=$${CANDLELAKE_LAKE_ROOT:-lake} $(VENV)/bin/uvicorn serving.app:app --host 127.0.0.1 --port 8000 --no-access-log

serving-requirements: | $(PY) ## re-pin serving/requirements.txt for the Lambda runtime
	$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip compile -q serving/requirements.in --python-version $(SERVING_PYTHON) \
		--python-platform $(SERVING_PLATFORM) --generate-hashes -o serving/requirements.txt

serving-size: setup dashboard ## install the serving set as Lambda would get it; fail at ≥ 250 MB
	$(PY) -m serving.size_check --python-version $(SERVING_PYTHON) --platform $(SERVING_PLATFORM)

bench-api: setup serving-size ## /predict p50/p99 through the Lambda handler and cold start (after `make run`)
	$(PY) -m tests.benchmarks.bench_api $(ARGS)

# --- MLflow (optional tracking of training runs, docs/mlflow.md) -----------------------------------
# The folder `MLFLOW_TRACKING_URI=mlruns make run` fills: a SQLite store (mlflow.db) and artifacts/.
# Job execution (GenAI scorers) is off: browsing runs needs none of its 7 background processes.
MLFLOW_DIR ?= mlruns
MLFLOW_VERSION := 3.17.2

mlflow-ui: setup ## the full MLflow UI on http://127.0.0.1:5000 over mlruns/ (MLFLOW_DIR=…), apart from .venv
	@mkdir -p $(MLFLOW_DIR)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=$${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false} \
		$(UV) tool run --from "mlflow==$(MLFLOW_VERSION)" mlflow ui \
		--backend-store-uri sqlite:///$(abspath $(MLFLOW_DIR))/mlflow.db \
		--default-artifact-root $(abspath $(MLFLOW_DIR))/artifacts --host 127.0.0.1 --port 5000 --workers 1

# --- Athena named queries, run locally ------------------------------------------------------------
NAME ?=

query: setup ## run a named Athena query (lakecontract/athena_queries) on the local gold tables: make query NAME=<name>
	@if [ -z "$(NAME)" ]; then $(PY) -m lakehouse.named_queries --list; exit 2; fi
	$(PY) -m lakehouse.named_queries $(NAME) $(ARGS)

# --- AWS: the CDK app in infra/ (see infra/README.md) ----------------------------------------------
CDK := infra/node_modules/.bin/cdk
CDK_APP := $(abspath $(PY)) -m infra.app
CDK_OUT := build/cdk.out
CDK_ARGS ?=
LAYER := build/lambda/layer
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

$(STAMPS)/npm-infra: infra/package.json infra/package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --prefix infra --no-audit --no-fund --silent
	@touch $@

# The Glue jobs' modules: hashed locks for Glue's platform (infra/glue/*.lock) and the wheel bundles
# each job installs with no index (infra/glue_wheels.py). Locking needs PyPI and the PyTorch CPU index.
GLUE_WHEELS := build/glue
GLUE_BUNDLES := $(GLUE_WHEELS)/etl.gluewheels.zip $(GLUE_WHEELS)/ml.gluewheels.zip

glue-lock: setup ## re-resolve infra/glue/{etl,ml}.lock (hashed; requirements.lock's versions) for Glue 5.1
	$(PY) -m infra.glue_wheels lock

glue-wheels: $(GLUE_BUNDLES) ## download the locked Glue wheels (hash-checked) into build/glue/<kind>.gluewheels.zip

$(GLUE_WHEELS)/%.gluewheels.zip: infra/glue/%.lock infra/glue_wheels.py | setup
	$(PY) -m infra.glue_wheels bundle --kind $* --out $(GLUE_WHEELS)

lambda-layer: setup ## the API's dependencies (serving/requirements.txt) for python3.12 x86_64 into build/lambda/layer
	rm -rf $(LAYER)
	$(UV) pip install -q --target $(LAYER)/python --python-version $(SERVING_PYTHON) \
		--python-platform $(SERVING_PLATFORM) --only-binary :all: --require-hashes -r serving/requirements.txt

synth: setup $(STAMPS)/npm-infra lambda-layer glue-wheels dashboard ## CloudFormation templates into build/cdk.out, checked by cdk-nag (no AWS needed)
	$(CDK) synth --app "$(CDK_APP)" --output $(CDK_OUT) --quiet $(CDK_ARGS)

bootstrap: setup $(STAMPS)/npm-infra ## once per account and region: cdk bootstrap (needs AWS credentials)
	$(CDK) bootstrap --app "$(CDK_APP)" $(CDK_ARGS)

deploy: setup $(STAMPS)/npm-infra lambda-layer glue-wheels dashboard ## cdk deploy every stack (needs AWS credentials; CDK_ARGS="-c workers=4")
	$(CDK) deploy --all --app "$(CDK_APP)" --output $(CDK_OUT) --require-approval broadening $(CDK_ARGS)

destroy: setup $(STAMPS)/npm-infra lambda-layer glue-wheels dashboard ## cdk destroy every stack (the lake and artifacts buckets are retained)
	$(CDK) destroy --all --app "$(CDK_APP)" --output $(CDK_OUT) $(CDK_ARGS)
