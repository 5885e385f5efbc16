# Two commands on a fresh machine: `make plan` and `make test`. Both create the venv when it is missing.
PYTHON ?= python3
VENV := venv
TOOLS := venv-tools
MLFLOW := venv-mlflow
MONITORING := venv-monitoring
MONITORING_SRC := images/model-monitoring
PY := $(VENV)/bin/python
STACK ?= dev

.PHONY: postgresql pushgateway groovy-lint venv plan plans test lint clean promtool bench

# pip says what it collects and installs, one line each: progress on a first install that a CI log keeps
# readable (no progress bars, no colour); a step line says which set is being installed.
PIP_INSTALL := -m pip install --progress-bar off --no-color --disable-pip-version-check
STEP = @printf '\n==> %s\n' 

# The install runs in infra/ exactly as Pulumi's pip toolchain does it (program directory = infra/).
$(VENV)/.installed: requirements.txt infra/requirements.txt requirements-dev.txt pyproject.toml
	$(STEP) "creating $(VENV)/ and installing the program's packages (infra/requirements.txt, about a minute the first time)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_INSTALL) --quiet --upgrade pip
	cd infra && ../$(PY) $(PIP_INSTALL) -r requirements.txt
	$(STEP) "installing the test packages (requirements-dev.txt)"
	$(PY) $(PIP_INSTALL) -r requirements-dev.txt
	touch $@
	$(STEP) "$(VENV)/ ready"

$(TOOLS)/.installed: requirements-tools.txt
	$(STEP) "creating $(TOOLS)/ and installing checkov, check-jsonschema, zizmor and the AWS CLI (requirements-tools.txt)"
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python $(PIP_INSTALL) --quiet --upgrade pip
	$(TOOLS)/bin/python $(PIP_INSTALL) -r requirements-tools.txt
	touch $@

$(MLFLOW)/.installed: requirements-mlflow.txt
	$(STEP) "creating $(MLFLOW)/ and installing the MLflow server the registry tests run (requirements-mlflow.txt)"
	test -x $(MLFLOW)/bin/python || $(PYTHON) -m venv $(MLFLOW)
	$(MLFLOW)/bin/python $(PIP_INSTALL) --quiet --upgrade pip
	$(MLFLOW)/bin/python $(PIP_INSTALL) -r requirements-mlflow.txt
	touch $@

# The model-monitoring package (capture proxy, drift job) as its image installs it, with its test packages.
$(MONITORING)/.installed: $(MONITORING_SRC)/requirements.txt $(MONITORING_SRC)/requirements-test.txt
	$(STEP) "creating $(MONITORING)/ and installing the model-monitoring image's packages ($(MONITORING_SRC)/requirements*.txt)"
	test -x $(MONITORING)/bin/python || $(PYTHON) -m venv $(MONITORING)
	$(MONITORING)/bin/python $(PIP_INSTALL) --quiet --upgrade pip
	$(MONITORING)/bin/python $(PIP_INSTALL) -r $(MONITORING_SRC)/requirements.txt -r $(MONITORING_SRC)/requirements-test.txt
	touch $@

venv: $(VENV)/.installed

plan: $(VENV)/.installed
	$(STEP) "planning stack $(STACK) offline (python -m infra plan)"
	$(PY) -m infra plan --stack $(STACK)

plans: $(VENV)/.installed
	for stack in dev staging prod; do $(PY) -m infra plan --stack $$stack || exit $$?; done

lint: $(VENV)/.installed
	$(PY) -m ruff check .

# promtool (alert rules) and amtool (Alertmanager configuration) come from Debian's packages.
promtool:
	command -v promtool >/dev/null && command -v amtool >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager)

# PostgreSQL, the self-hosted registry's database engine, for tests/behaviour/test_mlflow_server.py (Debian's package;
# the tests start their own server on loopback and stop it).
postgresql:
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql)

# The Pushgateway the drift job's tests push to (Debian's package; the tests start it on loopback and stop it).
pushgateway:
	command -v prometheus-pushgateway >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus-pushgateway)

test: $(VENV)/.installed $(TOOLS)/.installed $(MLFLOW)/.installed $(MONITORING)/.installed promtool postgresql pushgateway groovy-lint
	$(STEP) "ruff, then pytest on every core (about a minute)"
	$(PY) -m ruff check .
	TOOLS_BIN=$(abspath $(TOOLS))/bin MLFLOW_BIN=$(abspath $(MLFLOW))/bin MONITORING_BIN=$(abspath $(MONITORING))/bin \
		$(PY) -m pytest -n auto --dist loadfile
	$(STEP) "the model-monitoring package's own tests ($(MONITORING_SRC)/tests, in $(MONITORING)/)"
	cd $(MONITORING_SRC) && ../../$(MONITORING)/bin/python -m pytest

# npm-groovy-lint for the Jenkinsfile (tests/contract/test_ci_adapters.py), pinned in ci/lint/package-lock.json and
# installed with `npm ci`; it runs CodeNarc on the machine's Java (17 to 24), so nothing is downloaded at run time.
# Node.js 20 and npm come with the machine; a missing Java comes from Debian's package.
ci/lint/node_modules/.installed: ci/lint/package.json ci/lint/package-lock.json
	$(STEP) "installing npm-groovy-lint into ci/lint/node_modules (ci/lint/package-lock.json)"
	command -v java >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless)
	cd ci/lint && npm ci --no-audit --no-fund --loglevel=error
	touch $@

groovy-lint: ci/lint/node_modules/.installed

# Speeds against their goals (issue #15): first-deploy critical path, offline plan time, suite time (~4 min).
bench: $(VENV)/.installed $(TOOLS)/.installed promtool
	$(STEP) "benchmarks: first deploy, offline plan, test suite"
	$(PY) bench/bench.py

clean:
	rm -rf build $(VENV) $(TOOLS) $(MLFLOW) $(MONITORING) ci/lint/node_modules
