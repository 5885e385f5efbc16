# Two commands on a fresh machine: `make plan` and `make test`. Both create the venv when it is missing.
PYTHON ?= python3
VENV := venv
PY := $(VENV)/bin/python
STACK ?= dev

.PHONY: plan plans test lint clean

# The install runs in infra/ exactly as Pulumi's pip toolchain does it (program directory = infra/).
$(VENV)/.installed: requirements.txt infra/requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	cd infra && ../$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

plan: $(VENV)/.installed
	$(PY) -m infra plan --stack $(STACK)

plans: $(VENV)/.installed
	for stack in dev staging prod; do $(PY) -m infra plan --stack $$stack || exit $$?; done

lint: $(VENV)/.installed
	$(PY) -m ruff check .

test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m pytest

clean:
	rm -rf build $(VENV)
