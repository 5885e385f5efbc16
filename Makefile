# Two commands on a fresh machine: `make plan` and `make test`. Both create the venv when it is missing.
PYTHON ?= python3
VENV := venv
TOOLS := venv-tools
PY := $(VENV)/bin/python
STACK ?= dev

.PHONY: venv plan plans test lint clean promtool

# The install runs in infra/ exactly as Pulumi's pip toolchain does it (program directory = infra/).
$(VENV)/.installed: requirements.txt infra/requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	cd infra && ../$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(TOOLS)/.installed: requirements-tools.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet -r requirements-tools.txt
	touch $@

venv: $(VENV)/.installed

plan: $(VENV)/.installed
	$(PY) -m infra plan --stack $(STACK)

plans: $(VENV)/.installed
	for stack in dev staging prod; do $(PY) -m infra plan --stack $$stack || exit $$?; done

lint: $(VENV)/.installed
	$(PY) -m ruff check .

# promtool (alert rules) and amtool (Alertmanager configuration) come from Debian's packages.
promtool:
	command -v promtool >/dev/null && command -v amtool >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager)

test: $(VENV)/.installed $(TOOLS)/.installed promtool
	$(PY) -m ruff check .
	TOOLS_BIN=$(abspath $(TOOLS))/bin $(PY) -m pytest

clean:
	rm -rf build $(VENV) $(TOOLS)
